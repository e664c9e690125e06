-- Foreign keys between tenant-owned tables carry tenant_id, so a row can
-- never point at another tenant's row even where RLS is bypassed.
ALTER TABLE tasks
    ADD CONSTRAINT tasks_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (tenant_id),
    ADD CONSTRAINT tasks_project_fkey FOREIGN KEY (tenant_id, project_id)
        REFERENCES projects (tenant_id, project_id) ON DELETE CASCADE,
    ADD CONSTRAINT tasks_assignee_fkey FOREIGN KEY (tenant_id, assignee_id)
        REFERENCES users (tenant_id, user_id) ON DELETE SET NULL (assignee_id);
