-- Resolution root: operations manage tenants; tenants get no privilege, so
-- no tenant policy is needed (and none could apply).
GRANT SELECT, INSERT, UPDATE, DELETE ON tenants TO erun_operations;
