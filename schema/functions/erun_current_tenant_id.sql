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
