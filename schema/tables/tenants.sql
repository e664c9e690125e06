-- The resolution root: one row per tenant. Not tenant-owned and not under
-- tenant RLS; erun_tenant has no privilege on it at all.
CREATE TABLE tenants (
    tenant_id  uuid        NOT NULL DEFAULT uuidv7(),
    slug       text        NOT NULL,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tenants_pkey PRIMARY KEY (tenant_id),
    CONSTRAINT tenants_slug_key UNIQUE (slug),
    CONSTRAINT tenants_slug_check CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$')
);
