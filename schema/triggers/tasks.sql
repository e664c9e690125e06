CREATE TRIGGER tasks_set_timestamps
    BEFORE INSERT OR UPDATE ON tasks
    FOR EACH ROW EXECUTE FUNCTION erun_set_timestamps();
