-- The ERun multi-tenant blueprint: roles, private schema, functions, tables,
-- indexes, triggers, row-level security and foreign keys.
--
-- Written by hand, not by `atlas migrate diff`: open-source Atlas does not
-- manage roles, functions, triggers, RLS or policies and would drop them
-- silently. The statements are those of schema/ in the order of atlas.hcl;
-- schema's tests migrate an empty database and compare its catalog with the
-- declarative schema's.

-- roles.sql
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

-- extensions.sql
-- erun_private holds what no client role may touch: the context signing
-- keys and pgcrypto, used only by SECURITY DEFINER functions.
CREATE SCHEMA erun_private;
REVOKE ALL ON SCHEMA erun_private FROM PUBLIC;

CREATE EXTENSION pgcrypto WITH SCHEMA erun_private;

-- functions/erun_current_tenant_id.sql
-- The tenant of the current transaction, verified.
--
-- A client can always run set_config('erun.tenant_id', '<any uuid>', true),
-- so the id alone proves nothing. pgtenant also sets
--   erun.tenant_proof = '<key id>:<hex HMAC-SHA256(key, tenant id)>'
-- and this function returns the tenant only when that proof verifies against
-- a key in erun_private.context_keys, which no client role can read. Any
-- other case raises insufficient_privilege (42501); it never falls back to
-- another tenant or to NULL.
--
-- STABLE and called as (SELECT erun_current_tenant_id()) in policies, so it
-- runs once per statement as an initplan, not once per row.
CREATE FUNCTION erun_current_tenant_id() RETURNS uuid
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    claimed    text := current_setting('erun.tenant_id', true);
    proof      text := current_setting('erun.tenant_proof', true);
    key_secret bytea;
BEGIN
    IF claimed IS NULL OR claimed = '' THEN
        RAISE EXCEPTION 'no tenant context: erun.tenant_id is not set in this transaction'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Connect through pgtenant, or SET LOCAL erun.tenant_id and erun.tenant_proof.';
    END IF;
    -- Canonical lower-case form only: the proof is computed over this text.
    IF claimed !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
        RAISE EXCEPTION 'invalid tenant context: erun.tenant_id must be a lower-case UUID'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF proof IS NULL OR proof = '' THEN
        RAISE EXCEPTION 'no tenant proof: erun.tenant_proof is not set in this transaction'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'The tenant context must be set by pgtenant.';
    END IF;
    IF proof !~ '^[A-Za-z0-9_.-]{1,64}:[0-9a-f]{64}$' THEN
        RAISE EXCEPTION 'invalid tenant proof: expected <key id>:<64 hex digits>'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT k.secret INTO key_secret
      FROM erun_private.context_keys AS k
     WHERE k.key_id = split_part(proof, ':', 1)
       AND k.revoked_at IS NULL;
    IF key_secret IS NULL THEN
        RAISE EXCEPTION 'invalid tenant proof: context key "%" is unknown or revoked', split_part(proof, ':', 1)
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF erun_private.hmac(convert_to(claimed, 'UTF8'), key_secret, 'sha256') <> decode(split_part(proof, ':', 2), 'hex') THEN
        RAISE EXCEPTION 'invalid tenant proof: the proof does not match erun.tenant_id'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN claimed::uuid;
END
$$;

REVOKE ALL ON FUNCTION erun_current_tenant_id() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION erun_current_tenant_id() TO erun_tenant, erun_operations;

-- functions/erun_lookup.sql
-- Credential resolution happens before any tenant context exists, so it
-- goes through these two SECURITY DEFINER functions instead of table grants.
-- They are owned by erun_operations, whose policies see every tenant, so
-- they work without superuser or BYPASSRLS. Nobody may execute them until
-- `pgtenant setup-roles` grants EXECUTE to the proxy's operations login.

-- Issuer mode: which tenant does this JWT issuer belong to?
CREATE FUNCTION erun_resolve_issuer(p_issuer text) RETURNS uuid
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (SELECT ti.tenant_id FROM public.tenant_issuers AS ti WHERE ti.issuer = p_issuer);
END
$$;

ALTER FUNCTION erun_resolve_issuer(text) OWNER TO erun_operations;
REVOKE ALL ON FUNCTION erun_resolve_issuer(text) FROM PUBLIC;

-- API keys: the row for a key id (the secret is compared by the caller, in
-- constant time, against secret_hash).
CREATE FUNCTION erun_lookup_api_key(p_key_id text)
    RETURNS TABLE (api_key_id uuid, tenant_id uuid, role text, secret_hash bytea,
                   scopes text[], expires_at timestamptz, revoked_at timestamptz)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY
        SELECT k.api_key_id, k.tenant_id, k.role, k.secret_hash, k.scopes, k.expires_at, k.revoked_at
          FROM public.api_keys AS k
         WHERE k.key_id = p_key_id;
END
$$;

ALTER FUNCTION erun_lookup_api_key(text) OWNER TO erun_operations;
REVOKE ALL ON FUNCTION erun_lookup_api_key(text) FROM PUBLIC;

-- functions/erun_set_timestamps.sql
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

-- tables/api_keys.sql
-- API keys have the form pgt_<key_id>_<secret>. Only a SHA-256 hash of the
-- secret is stored (the secret is 256 random bits, so a slow hash adds
-- nothing). key_id is unique across tenants: it is looked up before the
-- tenant is known.
CREATE TABLE api_keys (
    api_key_id   uuid        NOT NULL DEFAULT uuidv7(),
    tenant_id    uuid        NOT NULL DEFAULT erun_current_tenant_id(),
    key_id       text        NOT NULL,
    secret_hash  bytea       NOT NULL,
    name         text        NOT NULL DEFAULT '',
    role         text        NOT NULL,
    scopes       text[]      NOT NULL DEFAULT '{}',
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT api_keys_pkey PRIMARY KEY (api_key_id),
    CONSTRAINT api_keys_key_id_key UNIQUE (key_id),
    CONSTRAINT api_keys_tenant_id_name_key UNIQUE (tenant_id, name),
    CONSTRAINT api_keys_key_id_check CHECK (key_id ~ '^[a-z0-9]{8,32}$'),
    CONSTRAINT api_keys_secret_hash_check CHECK (octet_length(secret_hash) = 32)
);

-- tables/context_keys.sql
-- Keys that sign the tenant context (DESIGN §1.2). No grants: only the
-- SECURITY DEFINER erun_current_tenant_id() reads them. Rotate by adding a
-- key with a new id, moving pgtenant to it, then setting revoked_at.
CREATE TABLE erun_private.context_keys (
    key_id     text        NOT NULL,
    secret     bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    CONSTRAINT context_keys_pkey PRIMARY KEY (key_id),
    CONSTRAINT context_keys_key_id_check CHECK (key_id ~ '^[A-Za-z0-9_.-]{1,64}$'),
    CONSTRAINT context_keys_secret_check CHECK (octet_length(secret) >= 32)
);

REVOKE ALL ON erun_private.context_keys FROM PUBLIC;

-- tables/projects.sql
-- Example domain for the demo and the benchmarks.
CREATE TABLE projects (
    project_id  uuid        NOT NULL DEFAULT uuidv7(),
    tenant_id   uuid        NOT NULL DEFAULT erun_current_tenant_id(),
    name        text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT projects_pkey PRIMARY KEY (project_id),
    CONSTRAINT projects_tenant_id_project_id_key UNIQUE (tenant_id, project_id),
    CONSTRAINT projects_tenant_id_name_key UNIQUE (tenant_id, name)
);

-- tables/tasks.sql
-- Example domain for the demo and the benchmarks.
CREATE TABLE tasks (
    task_id     uuid        NOT NULL DEFAULT uuidv7(),
    tenant_id   uuid        NOT NULL DEFAULT erun_current_tenant_id(),
    project_id  uuid        NOT NULL,
    title       text        NOT NULL,
    done        boolean     NOT NULL DEFAULT false,
    assignee_id uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tasks_pkey PRIMARY KEY (task_id),
    CONSTRAINT tasks_tenant_id_task_id_key UNIQUE (tenant_id, task_id)
);

-- tables/tenant_issuers.sql
-- Issuer mode: a JWT's iss claim names its tenant. Part of the resolution
-- root (read through erun_resolve_issuer), so not under tenant RLS; an
-- issuer belongs to exactly one tenant.
CREATE TABLE tenant_issuers (
    tenant_issuer_id uuid        NOT NULL DEFAULT uuidv7(),
    tenant_id        uuid        NOT NULL,
    issuer           text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tenant_issuers_pkey PRIMARY KEY (tenant_issuer_id),
    CONSTRAINT tenant_issuers_issuer_key UNIQUE (issuer)
);

-- tables/tenants.sql
-- The resolution root: one row per tenant. Not tenant-owned and not under
-- tenant RLS; erun_tenant has no privilege on it at all.
CREATE TABLE tenants (
    tenant_id  uuid        NOT NULL DEFAULT uuidv7(),
    slug       text        NOT NULL,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tenants_pkey PRIMARY KEY (tenant_id),
    CONSTRAINT tenants_slug_key UNIQUE (slug),
    CONSTRAINT tenants_slug_check CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$')
);

-- tables/user_external_ids.sql
-- A user's identity at an external issuer (the JWT sub claim).
CREATE TABLE user_external_ids (
    user_external_id uuid        NOT NULL DEFAULT uuidv7(),
    tenant_id        uuid        NOT NULL DEFAULT erun_current_tenant_id(),
    user_id          uuid        NOT NULL,
    issuer           text        NOT NULL,
    subject          text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT user_external_ids_pkey PRIMARY KEY (user_external_id),
    CONSTRAINT user_external_ids_tenant_id_issuer_subject_key UNIQUE (tenant_id, issuer, subject)
);

-- tables/users.sql
CREATE TABLE users (
    user_id      uuid        NOT NULL DEFAULT uuidv7(),
    tenant_id    uuid        NOT NULL DEFAULT erun_current_tenant_id(),
    email        text        NOT NULL,
    display_name text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_pkey PRIMARY KEY (user_id),
    CONSTRAINT users_tenant_id_user_id_key UNIQUE (tenant_id, user_id),
    CONSTRAINT users_tenant_id_email_key UNIQUE (tenant_id, email)
);

-- indexes/tasks.sql
CREATE INDEX tasks_tenant_id_project_id_idx ON tasks (tenant_id, project_id);
CREATE INDEX tasks_tenant_id_assignee_id_idx ON tasks (tenant_id, assignee_id);

-- indexes/tenant_issuers.sql
CREATE INDEX tenant_issuers_tenant_id_idx ON tenant_issuers (tenant_id);

-- indexes/user_external_ids.sql
CREATE INDEX user_external_ids_tenant_id_user_id_idx ON user_external_ids (tenant_id, user_id);

-- triggers/api_keys.sql
CREATE TRIGGER api_keys_set_timestamps
    BEFORE INSERT OR UPDATE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION erun_set_timestamps();

-- triggers/projects.sql
CREATE TRIGGER projects_set_timestamps
    BEFORE INSERT OR UPDATE ON projects
    FOR EACH ROW EXECUTE FUNCTION erun_set_timestamps();

-- triggers/tasks.sql
CREATE TRIGGER tasks_set_timestamps
    BEFORE INSERT OR UPDATE ON tasks
    FOR EACH ROW EXECUTE FUNCTION erun_set_timestamps();

-- triggers/tenant_issuers.sql
CREATE TRIGGER tenant_issuers_set_timestamps
    BEFORE INSERT OR UPDATE ON tenant_issuers
    FOR EACH ROW EXECUTE FUNCTION erun_set_timestamps();

-- triggers/tenants.sql
CREATE TRIGGER tenants_set_timestamps
    BEFORE INSERT OR UPDATE ON tenants
    FOR EACH ROW EXECUTE FUNCTION erun_set_timestamps();

-- triggers/user_external_ids.sql
CREATE TRIGGER user_external_ids_set_timestamps
    BEFORE INSERT OR UPDATE ON user_external_ids
    FOR EACH ROW EXECUTE FUNCTION erun_set_timestamps();

-- triggers/users.sql
CREATE TRIGGER users_set_timestamps
    BEFORE INSERT OR UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION erun_set_timestamps();

-- rls/api_keys.sql
-- A tenant can list and revoke its own keys but never mint one: a key's role
-- is trusted by the proxy, so creating keys is an operations task.
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;

CREATE POLICY api_keys_tenant_policy ON api_keys
    TO erun_tenant
    USING (tenant_id = (SELECT erun_current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT erun_current_tenant_id()));

CREATE POLICY api_keys_operations_policy ON api_keys
    TO erun_operations
    USING (true)
    WITH CHECK (true);

GRANT SELECT, UPDATE (revoked_at) ON api_keys TO erun_tenant;
GRANT SELECT, INSERT, UPDATE, DELETE ON api_keys TO erun_operations;

-- rls/projects.sql
ALTER TABLE projects ENABLE ROW LEVEL SECURITY;
ALTER TABLE projects FORCE ROW LEVEL SECURITY;

CREATE POLICY projects_tenant_policy ON projects
    TO erun_tenant
    USING (tenant_id = (SELECT erun_current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT erun_current_tenant_id()));

CREATE POLICY projects_operations_policy ON projects
    TO erun_operations
    USING (true)
    WITH CHECK (true);

GRANT SELECT, INSERT, UPDATE, DELETE ON projects TO erun_tenant;
GRANT SELECT, INSERT, UPDATE, DELETE ON projects TO erun_operations;

-- rls/tasks.sql
ALTER TABLE tasks ENABLE ROW LEVEL SECURITY;
ALTER TABLE tasks FORCE ROW LEVEL SECURITY;

CREATE POLICY tasks_tenant_policy ON tasks
    TO erun_tenant
    USING (tenant_id = (SELECT erun_current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT erun_current_tenant_id()));

CREATE POLICY tasks_operations_policy ON tasks
    TO erun_operations
    USING (true)
    WITH CHECK (true);

GRANT SELECT, INSERT, UPDATE, DELETE ON tasks TO erun_tenant;
GRANT SELECT, INSERT, UPDATE, DELETE ON tasks TO erun_operations;

-- rls/tenant_issuers.sql
-- Resolution root, like tenants: read by erun_resolve_issuer().
GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_issuers TO erun_operations;

-- rls/tenants.sql
-- Resolution root: operations manage tenants; tenants get no privilege, so
-- no tenant policy is needed (and none could apply).
GRANT SELECT, INSERT, UPDATE, DELETE ON tenants TO erun_operations;

-- rls/user_external_ids.sql
ALTER TABLE user_external_ids ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_external_ids FORCE ROW LEVEL SECURITY;

CREATE POLICY user_external_ids_tenant_policy ON user_external_ids
    TO erun_tenant
    USING (tenant_id = (SELECT erun_current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT erun_current_tenant_id()));

CREATE POLICY user_external_ids_operations_policy ON user_external_ids
    TO erun_operations
    USING (true)
    WITH CHECK (true);

GRANT SELECT, INSERT, UPDATE, DELETE ON user_external_ids TO erun_tenant;
GRANT SELECT, INSERT, UPDATE, DELETE ON user_external_ids TO erun_operations;

-- rls/users.sql
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;

CREATE POLICY users_tenant_policy ON users
    TO erun_tenant
    USING (tenant_id = (SELECT erun_current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT erun_current_tenant_id()));

CREATE POLICY users_operations_policy ON users
    TO erun_operations
    USING (true)
    WITH CHECK (true);

GRANT SELECT, INSERT, UPDATE, DELETE ON users TO erun_tenant;
GRANT SELECT, INSERT, UPDATE, DELETE ON users TO erun_operations;

-- fks/api_keys.sql
ALTER TABLE api_keys
    ADD CONSTRAINT api_keys_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (tenant_id);

-- fks/projects.sql
ALTER TABLE projects
    ADD CONSTRAINT projects_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (tenant_id);

-- fks/tasks.sql
-- Foreign keys between tenant-owned tables carry tenant_id, so a row can
-- never point at another tenant's row even where RLS is bypassed.
ALTER TABLE tasks
    ADD CONSTRAINT tasks_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (tenant_id),
    ADD CONSTRAINT tasks_project_fkey FOREIGN KEY (tenant_id, project_id)
        REFERENCES projects (tenant_id, project_id) ON DELETE CASCADE,
    ADD CONSTRAINT tasks_assignee_fkey FOREIGN KEY (tenant_id, assignee_id)
        REFERENCES users (tenant_id, user_id) ON DELETE SET NULL (assignee_id);

-- fks/tenant_issuers.sql
ALTER TABLE tenant_issuers
    ADD CONSTRAINT tenant_issuers_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (tenant_id);

-- fks/user_external_ids.sql
ALTER TABLE user_external_ids
    ADD CONSTRAINT user_external_ids_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (tenant_id),
    ADD CONSTRAINT user_external_ids_user_fkey FOREIGN KEY (tenant_id, user_id)
        REFERENCES users (tenant_id, user_id) ON DELETE CASCADE;

-- fks/users.sql
ALTER TABLE users
    ADD CONSTRAINT users_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (tenant_id);
