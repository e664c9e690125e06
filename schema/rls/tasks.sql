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
