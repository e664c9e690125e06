-- Only operations may create temporary objects: pgtenant lends a server
-- connection to many tenants in turn, and a temporary table outlives the
-- transaction that created it (see schema/database.sql).
--
-- Written by hand: open-source Atlas does not manage database privileges.
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO erun_operations', current_database());
END
$$;
