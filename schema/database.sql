-- Database-level privileges. Temporary objects live as long as the server
-- connection, and pgtenant lends one connection to many tenants in turn:
-- a temporary table left by one tenant would be readable by the next.
-- So only operations may create them (operations traffic has a login, and
-- so a pool, of its own). The statement names the current database
-- because the schema is applied to databases of any name.
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO erun_operations', current_database());
END
$$;
