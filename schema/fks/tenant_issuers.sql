ALTER TABLE tenant_issuers
    ADD CONSTRAINT tenant_issuers_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (tenant_id);
