CREATE TRIGGER projects_set_timestamps
    BEFORE INSERT OR UPDATE ON projects
    FOR EACH ROW EXECUTE FUNCTION erun_set_timestamps();
