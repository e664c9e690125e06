-- Resolution root, like tenants: read by erun_resolve_issuer().
GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_issuers TO erun_operations;
