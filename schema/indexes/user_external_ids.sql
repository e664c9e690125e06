CREATE INDEX user_external_ids_tenant_id_user_id_idx ON user_external_ids (tenant_id, user_id);
