CREATE INDEX tenant_issuers_tenant_id_idx ON tenant_issuers (tenant_id);
