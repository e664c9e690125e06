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
