-- Shared trigger function behind every <table>_set_timestamps trigger:
-- created_at is set once on INSERT and can never be changed; updated_at is
-- the time of the transaction that last wrote the row.
CREATE FUNCTION erun_set_timestamps() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.created_at := now();
    ELSE
        NEW.created_at := OLD.created_at;
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
