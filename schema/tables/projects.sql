-- Example domain for the demo and the benchmarks.
CREATE TABLE projects (
    project_id  uuid        NOT NULL DEFAULT uuidv7(),
    tenant_id   uuid        NOT NULL DEFAULT erun_current_tenant_id(),
    name        text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT projects_pkey PRIMARY KEY (project_id),
    CONSTRAINT projects_tenant_id_project_id_key UNIQUE (tenant_id, project_id),
    CONSTRAINT projects_tenant_id_name_key UNIQUE (tenant_id, name)
);
