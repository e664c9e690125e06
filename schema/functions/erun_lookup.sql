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
