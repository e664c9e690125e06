ALTER TABLE user_external_ids
    ADD CONSTRAINT user_external_ids_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (tenant_id),
    ADD CONSTRAINT user_external_ids_user_fkey FOREIGN KEY (tenant_id, user_id)
        REFERENCES users (tenant_id, user_id) ON DELETE CASCADE;
