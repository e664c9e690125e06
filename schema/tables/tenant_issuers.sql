-- Issuer mode: a JWT's iss claim names its tenant. Part of the resolution
-- root (read through erun_resolve_issuer), so not under tenant RLS; an
-- issuer belongs to exactly one tenant.
CREATE TABLE tenant_issuers (
    tenant_issuer_id uuid        NOT NULL DEFAULT uuidv7(),
    tenant_id        uuid        NOT NULL,
    issuer           text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tenant_issuers_pkey PRIMARY KEY (tenant_issuer_id),
    CONSTRAINT tenant_issuers_issuer_key UNIQUE (issuer)
);
