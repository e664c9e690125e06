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
