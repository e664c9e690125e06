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
