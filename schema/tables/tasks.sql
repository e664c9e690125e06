-- Example domain for the demo and the benchmarks.
CREATE TABLE tasks (
    task_id     uuid        NOT NULL DEFAULT uuidv7(),
    tenant_id   uuid        NOT NULL DEFAULT erun_current_tenant_id(),
    project_id  uuid        NOT NULL,
    title       text        NOT NULL,
    done        boolean     NOT NULL DEFAULT false,
    assignee_id uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tasks_pkey PRIMARY KEY (task_id),
    CONSTRAINT tasks_tenant_id_task_id_key UNIQUE (tenant_id, task_id)
);
