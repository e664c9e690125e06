-- The tenant of the current transaction, verified (DESIGN §1.2).
--
-- A client can always run set_config('erun.tenant_id', '<any uuid>', true),
-- and it can always act as the login role of its server connection, so the
-- id alone proves nothing and neither does anything the login role can
-- write. pgtenant also sets
--   erun.tenant_proof = '<key id>:<serial>:<hex HMAC-SHA256(key, "<tenant id>:<backend pid>:<serial>")>'
-- and this function returns the tenant only when
--   * the HMAC verifies against a key in erun_private.context_keys, which
--     no client role can read, so nobody but pgtenant can make a proof;
--   * the backend pid in it is this backend's, so a proof made for another
--     server connection is worthless here;
--   * the serial is the current value of this connection's context serial
--     (pg_temp.erun_context_serial, see erun_open_context_serial()). pgtenant
--     advances it after every loan of the connection and checks the result
--     before lending the connection again, so a proof dies with the loan it
--     was made for: replayed in a later transaction it no longer matches.
-- Any other case raises insufficient_privilege (42501); it never falls back
-- to another tenant or to NULL.
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
    parts      text[];
    serial     bigint;
    key_secret bytea;
BEGIN
    IF claimed IS NULL OR claimed = '' THEN
        RAISE EXCEPTION 'no tenant context: erun.tenant_id is not set in this transaction'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Connect through pgtenant; the tenant context is set by pgtenant only.';
    END IF;
    -- Canonical lower-case form only: the proof is computed over this text.
    -- (No regular expressions here: matching counted repetitions cost
    -- PostgreSQL about 10 µs each, on every statement.)
    IF NOT pg_input_is_valid(claimed, 'uuid') OR claimed::uuid::text <> claimed THEN
        RAISE EXCEPTION 'invalid tenant context: erun.tenant_id must be a lower-case UUID'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF proof IS NULL OR proof = '' THEN
        RAISE EXCEPTION 'no tenant proof: erun.tenant_proof is not set in this transaction'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'The tenant context must be set by pgtenant.';
    END IF;
    parts := string_to_array(proof, ':');
    IF cardinality(parts) <> 3 OR length(parts[1]) NOT BETWEEN 1 AND 64 OR length(parts[3]) <> 64 THEN
        RAISE EXCEPTION 'invalid tenant proof: expected <key id>:<serial>:<64 hex digits>'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- NULL when the sequence is missing: a connection pgtenant did not open,
    -- or one whose temporary objects were discarded.
    serial := pg_sequence_last_value(to_regclass('pg_temp.erun_context_serial'));
    IF serial IS NULL THEN
        RAISE EXCEPTION 'no tenant context on this server connection: it has no context serial'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Only connections opened by pgtenant carry a tenant context.';
    END IF;
    SELECT k.secret INTO key_secret
      FROM erun_private.context_keys AS k
     WHERE k.key_id = parts[1]
       AND k.revoked_at IS NULL;
    IF key_secret IS NULL THEN
        RAISE EXCEPTION 'invalid tenant proof: context key "%" is unknown or revoked', parts[1]
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF encode(erun_private.hmac(convert_to(claimed || ':' || pg_backend_pid() || ':' || parts[2], 'UTF8'), key_secret, 'sha256'), 'hex')
       <> parts[3] THEN
        RAISE EXCEPTION 'invalid tenant proof: it does not match erun.tenant_id on this server connection'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- Last, so that a proof made for another connection is named as such.
    IF parts[2] <> serial::text THEN
        RAISE EXCEPTION 'stale tenant proof: it was made for an earlier transaction on this server connection'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN claimed::uuid;
END
$$;

REVOKE ALL ON FUNCTION erun_current_tenant_id() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION erun_current_tenant_id() TO erun_tenant, erun_operations;

-- Opens the context serial of a new server connection; pgtenant calls it
-- once, right after connecting and before any client uses the connection.
--
-- The serial is a temporary sequence owned by this function's owner: it
-- lives exactly as long as the backend, and the login role gets USAGE
-- (nextval, which only moves it forward) but not UPDATE (setval), so no
-- client can move it back to a value an old proof was made for. The start
-- is random so that two backends that ever share a pid do not share
-- serials either. Tenants may not create temporary objects (see
-- schema/database.sql), so nobody can put a sequence of their own in its
-- place; and once this backend has a temporary schema it refuses to run
-- again, so discarding the sequence (DISCARD TEMP) only leaves the
-- connection without any tenant context, and pgtenant then closes it.
CREATE FUNCTION erun_open_context_serial() RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    start bigint;
BEGIN
    IF pg_my_temp_schema() <> 0 THEN
        RAISE EXCEPTION 'this server connection already has temporary objects: a context serial is opened only on a new connection'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    start := ('x' || encode(erun_private.gen_random_bytes(7), 'hex'))::bit(56)::bigint + 1;
    EXECUTE format('CREATE TEMPORARY SEQUENCE pg_temp.erun_context_serial START %s NO CYCLE', start);
    GRANT USAGE ON SEQUENCE pg_temp.erun_context_serial TO PUBLIC;
    RETURN nextval('pg_temp.erun_context_serial');
END
$$;

REVOKE ALL ON FUNCTION erun_open_context_serial() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION erun_open_context_serial() TO PUBLIC;
