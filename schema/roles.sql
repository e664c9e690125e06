-- Group roles of the blueprint. NOLOGIN: nobody connects as them; the
-- proxy's login roles are granted one each (pgtenant setup-roles).
-- Roles are cluster-wide, so creation is guarded to stay re-runnable.

-- erun_tenant: what a tenant's transactions run as (SET LOCAL ROLE).
-- Every tenant-owned table is visible to it only through RLS.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'erun_tenant') THEN
        CREATE ROLE erun_tenant NOLOGIN NOINHERIT;
    END IF;
END
$$;

-- erun_operations: back-office and support traffic, across all tenants.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'erun_operations') THEN
        CREATE ROLE erun_operations NOLOGIN NOINHERIT;
    END IF;
END
$$;
