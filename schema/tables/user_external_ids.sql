-- A user's identity at an external issuer (the JWT sub claim).
CREATE TABLE user_external_ids (
    user_external_id uuid        NOT NULL DEFAULT uuidv7(),
    tenant_id        uuid        NOT NULL DEFAULT erun_current_tenant_id(),
    user_id          uuid        NOT NULL,
    issuer           text        NOT NULL,
    subject          text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT user_external_ids_pkey PRIMARY KEY (user_external_id),
    CONSTRAINT user_external_ids_tenant_id_issuer_subject_key UNIQUE (tenant_id, issuer, subject)
);
