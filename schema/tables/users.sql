CREATE TABLE users (
    user_id      uuid        NOT NULL DEFAULT uuidv7(),
    tenant_id    uuid        NOT NULL DEFAULT erun_current_tenant_id(),
    email        text        NOT NULL,
    display_name text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_pkey PRIMARY KEY (user_id),
    CONSTRAINT users_tenant_id_user_id_key UNIQUE (tenant_id, user_id),
    CONSTRAINT users_tenant_id_email_key UNIQUE (tenant_id, email)
);
