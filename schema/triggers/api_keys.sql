CREATE TRIGGER api_keys_set_timestamps
    BEFORE INSERT OR UPDATE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION erun_set_timestamps();
