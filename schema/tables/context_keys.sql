-- Keys that sign the tenant context (DESIGN §1.2). No grants: only the
-- SECURITY DEFINER erun_current_tenant_id() reads them. Rotate by adding a
-- key with a new id, moving pgtenant to it, then setting revoked_at.
CREATE TABLE erun_private.context_keys (
    key_id     text        NOT NULL,
    secret     bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    CONSTRAINT context_keys_pkey PRIMARY KEY (key_id),
    CONSTRAINT context_keys_key_id_check CHECK (key_id ~ '^[A-Za-z0-9_.-]{1,64}$'),
    CONSTRAINT context_keys_secret_check CHECK (octet_length(secret) >= 32)
);

REVOKE ALL ON erun_private.context_keys FROM PUBLIC;
