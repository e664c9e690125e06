CREATE INDEX tasks_tenant_id_project_id_idx ON tasks (tenant_id, project_id);
CREATE INDEX tasks_tenant_id_assignee_id_idx ON tasks (tenant_id, assignee_id);
