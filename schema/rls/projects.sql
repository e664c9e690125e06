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
