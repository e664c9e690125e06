-- API keys have the form pgt_<key_id>_<secret>. Only a SHA-256 hash of the
-- secret is stored (the secret is 256 random bits, so a slow hash adds
-- nothing). key_id is unique across tenants: it is looked up before the
-- tenant is known.
CREATE TABLE api_keys (
    api_key_id   uuid        NOT NULL DEFAULT uuidv7(),
    tenant_id    uuid        NOT NULL DEFAULT erun_current_tenant_id(),
    key_id       text        NOT NULL,
    secret_hash  bytea       NOT NULL,
    name         text        NOT NULL DEFAULT '',
    role         text        NOT NULL,
    scopes       text[]      NOT NULL DEFAULT '{}',
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT api_keys_pkey PRIMARY KEY (api_key_id),
    CONSTRAINT api_keys_key_id_key UNIQUE (key_id),
    CONSTRAINT api_keys_tenant_id_name_key UNIQUE (tenant_id, name),
    CONSTRAINT api_keys_key_id_check CHECK (key_id ~ '^[a-z0-9]{8,32}$'),
    CONSTRAINT api_keys_secret_hash_check CHECK (octet_length(secret_hash) = 32)
);
