-- Conveyor metadata store and model registry on PostgreSQL, schema version 1.
-- Times are timestamptz (microseconds, UTC).  JSON columns hold canonical JSON text
-- (sorted keys), exactly as the SQLite backends store it, so values read back
-- identically whichever backend wrote them.  Text compares bytewise (COLLATE "C"),
-- as in SQLite, so every listing comes back in the same order.

CREATE TABLE pipelines (
    name             text COLLATE "C" PRIMARY KEY,
    code_fingerprint text COLLATE "C",
    git_commit       text COLLATE "C",
    created          timestamptz NOT NULL,
    updated          timestamptz NOT NULL
);

CREATE TABLE trigger_events (
    id       text COLLATE "C" PRIMARY KEY,
    seq      bigserial UNIQUE,
    trigger  text COLLATE "C" NOT NULL,
    reason   text COLLATE "C" NOT NULL,
    details  text COLLATE "C" NOT NULL DEFAULT '{}',
    key      text COLLATE "C",
    fired    boolean NOT NULL DEFAULT true,
    created  timestamptz NOT NULL,
    UNIQUE (trigger, key)
);
CREATE INDEX trigger_events_created ON trigger_events (created);

CREATE TABLE runs (
    id               text COLLATE "C" PRIMARY KEY,
    seq              bigserial UNIQUE,
    pipeline         text COLLATE "C" NOT NULL REFERENCES pipelines (name),
    status           text COLLATE "C" NOT NULL
                     CHECK (status IN ('running', 'succeeded', 'failed', 'refused', 'cancelled')),
    started          timestamptz NOT NULL,
    ended            timestamptz,
    parameters       text COLLATE "C" NOT NULL DEFAULT '{}',
    trigger_event    text COLLATE "C" REFERENCES trigger_events (id),
    code_fingerprint text COLLATE "C",
    git_commit       text COLLATE "C",
    error            text COLLATE "C"
);
CREATE INDEX runs_started ON runs (started);
CREATE INDEX runs_pipeline_started ON runs (pipeline, started);
CREATE INDEX runs_trigger_event ON runs (trigger_event);
CREATE INDEX runs_id_prefix ON runs (id text_pattern_ops);

CREATE TABLE artifacts (
    id          text COLLATE "C" PRIMARY KEY,
    seq         bigserial UNIQUE,
    uri         text COLLATE "C" NOT NULL,
    fingerprint text COLLATE "C" NOT NULL,
    kind        text COLLATE "C" NOT NULL,
    size        bigint,
    media_type  text COLLATE "C",
    metadata    text COLLATE "C" NOT NULL DEFAULT '{}',
    created     timestamptz NOT NULL,
    UNIQUE (uri, fingerprint)
);
CREATE INDEX artifacts_fingerprint ON artifacts (fingerprint);
CREATE INDEX artifacts_created ON artifacts (created);

CREATE TABLE steps (
    id        text COLLATE "C" PRIMARY KEY,
    seq       bigserial UNIQUE,
    run_id    text COLLATE "C" NOT NULL REFERENCES runs (id),
    name      text COLLATE "C" NOT NULL,
    status    text COLLATE "C" NOT NULL
              CHECK (status IN ('running', 'succeeded', 'failed', 'cached', 'skipped')),
    started   timestamptz NOT NULL,
    ended     timestamptz,
    logs_uri  text COLLATE "C",
    cache_key text COLLATE "C",
    cache_hit boolean NOT NULL DEFAULT false,
    error     text COLLATE "C"
);
CREATE INDEX steps_run ON steps (run_id, started);
CREATE INDEX steps_cache_key ON steps (cache_key, ended) WHERE cache_key IS NOT NULL;

CREATE TABLE step_artifacts (
    step_id     text COLLATE "C" NOT NULL REFERENCES steps (id),
    direction   text COLLATE "C" NOT NULL CHECK (direction IN ('input', 'output')),
    name        text COLLATE "C" NOT NULL,
    artifact_id text COLLATE "C" NOT NULL REFERENCES artifacts (id),
    PRIMARY KEY (step_id, direction, name)
);
CREATE INDEX step_artifacts_artifact ON step_artifacts (artifact_id, direction);

CREATE TABLE metrics (
    id      bigserial PRIMARY KEY,
    run_id  text COLLATE "C" NOT NULL REFERENCES runs (id),
    step_id text COLLATE "C" REFERENCES steps (id),
    key     text COLLATE "C" NOT NULL,
    value   double precision,
    idx     bigint NOT NULL DEFAULT 0,
    at      timestamptz NOT NULL
);
CREATE INDEX metrics_run_key ON metrics (run_id, key);
CREATE INDEX metrics_step ON metrics (step_id) WHERE step_id IS NOT NULL;

CREATE TABLE definitions (
    kind        text COLLATE "C" NOT NULL,
    name        text COLLATE "C" NOT NULL,
    version     integer NOT NULL CHECK (version >= 1),
    spec        text COLLATE "C" NOT NULL,
    fingerprint text COLLATE "C" NOT NULL,
    created     timestamptz NOT NULL,
    PRIMARY KEY (kind, name, version)
);

CREATE TABLE lineage_models (
    name         text COLLATE "C" NOT NULL,
    version      integer NOT NULL CHECK (version >= 1),
    artifact_id  text COLLATE "C" NOT NULL REFERENCES artifacts (id),
    artifact_uri text COLLATE "C" NOT NULL,
    sha256       text NOT NULL,
    run_id       text COLLATE "C",
    created      timestamptz NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE INDEX lineage_models_artifact ON lineage_models (artifact_id);
CREATE INDEX lineage_models_run ON lineage_models (run_id);

CREATE TABLE lineage_model_datasets (
    name        text COLLATE "C" NOT NULL,
    version     integer NOT NULL,
    artifact_id text COLLATE "C" NOT NULL REFERENCES artifacts (id),
    role        text COLLATE "C" NOT NULL,
    start       timestamptz,
    "end"       timestamptz,
    PRIMARY KEY (name, version, role, artifact_id),
    FOREIGN KEY (name, version) REFERENCES lineage_models (name, version)
);
CREATE INDEX lineage_model_datasets_artifact ON lineage_model_datasets (artifact_id);

-- model registry -----------------------------------------------------------------------
-- The registry keeps its own artifact records: it may live in another database than
-- the metadata store.

CREATE TABLE registry_artifacts (
    id          text COLLATE "C" PRIMARY KEY,
    uri         text COLLATE "C" NOT NULL,
    fingerprint text COLLATE "C" NOT NULL,
    kind        text COLLATE "C" NOT NULL,
    metadata    text COLLATE "C" NOT NULL DEFAULT '{}',
    created     timestamptz NOT NULL
);

CREATE TABLE models (
    name           text COLLATE "C" PRIMARY KEY,
    latest_version integer NOT NULL,
    created        timestamptz NOT NULL,
    updated        timestamptz NOT NULL
);

CREATE TABLE model_versions (
    name         text COLLATE "C" NOT NULL REFERENCES models (name),
    version      integer NOT NULL CHECK (version >= 1),
    created      timestamptz NOT NULL,
    created_by   text COLLATE "C" NOT NULL DEFAULT '',
    artifact_uri text COLLATE "C" NOT NULL,
    sha256       text NOT NULL CHECK (length(sha256) = 64),
    artifact_id  text COLLATE "C" NOT NULL REFERENCES registry_artifacts (id),
    model_format text COLLATE "C" NOT NULL,
    archived     boolean NOT NULL DEFAULT false,
    metrics      text COLLATE "C" NOT NULL DEFAULT '{}',
    params       text COLLATE "C" NOT NULL DEFAULT '{}',
    governance   text COLLATE "C" NOT NULL DEFAULT '{}',
    signature    text COLLATE "C" NOT NULL DEFAULT '[]',
    profile_uri  text COLLATE "C",
    run_id       text COLLATE "C",
    PRIMARY KEY (name, version)
);
CREATE INDEX model_versions_run ON model_versions (run_id);

CREATE TABLE model_datasets (
    name        text COLLATE "C" NOT NULL,
    version     integer NOT NULL,
    artifact_id text COLLATE "C" NOT NULL REFERENCES registry_artifacts (id),
    role        text COLLATE "C" NOT NULL,
    start       timestamptz,
    "end"       timestamptz,
    PRIMARY KEY (name, version, role, artifact_id),
    FOREIGN KEY (name, version) REFERENCES model_versions (name, version)
);

-- One row: the audit log's clock.  Every audit append updates it first, so appends
-- are serialised by its row lock and ids and times increase in commit order (a
-- sequence alone hands out ids in allocation order, which a poller could overtake).
CREATE TABLE audit_clock (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),
    last_id bigint NOT NULL,
    last_at timestamptz
);
INSERT INTO audit_clock (one, last_id, last_at) VALUES (true, 0, NULL);

-- Append-only: the trigger below refuses UPDATE and DELETE.
CREATE TABLE alias_audit (
    id           bigint PRIMARY KEY,
    name         text COLLATE "C" NOT NULL REFERENCES models (name),
    alias        text COLLATE "C" NOT NULL,
    from_version integer,
    to_version   integer,
    action       text COLLATE "C" NOT NULL
                 CHECK (action IN ('set', 'rollback', 'remove', 'archive', 'unarchive')),
    actor        text COLLATE "C" NOT NULL,
    at           timestamptz NOT NULL,
    reason       text COLLATE "C" NOT NULL DEFAULT '',
    forced       boolean NOT NULL DEFAULT false,
    evidence     text COLLATE "C" NOT NULL DEFAULT '{}'
);
CREATE INDEX alias_audit_name_alias ON alias_audit (name, alias, id);
CREATE INDEX alias_audit_name_id ON alias_audit (name, id);

-- Current holders; audit_id is the audit record that set each one.
CREATE TABLE aliases (
    name     text COLLATE "C" NOT NULL,
    alias    text COLLATE "C" NOT NULL,
    version  integer NOT NULL,
    audit_id bigint NOT NULL REFERENCES alias_audit (id),
    PRIMARY KEY (name, alias),
    FOREIGN KEY (name, version) REFERENCES model_versions (name, version)
);

CREATE TABLE validations (
    id      bigserial PRIMARY KEY,
    name    text COLLATE "C" NOT NULL,
    version integer NOT NULL,
    passed  boolean NOT NULL,
    at      timestamptz NOT NULL,
    actor   text COLLATE "C" NOT NULL DEFAULT '',
    run_id  text COLLATE "C",
    summary text COLLATE "C" NOT NULL DEFAULT '',
    details text COLLATE "C" NOT NULL DEFAULT '{}',
    FOREIGN KEY (name, version) REFERENCES model_versions (name, version)
);
CREATE INDEX validations_version ON validations (name, version, id);

CREATE TABLE approvals (
    id      bigserial PRIMARY KEY,
    name    text COLLATE "C" NOT NULL,
    version integer NOT NULL,
    by      text COLLATE "C" NOT NULL,
    at      timestamptz NOT NULL,
    comment text COLLATE "C" NOT NULL DEFAULT '',
    FOREIGN KEY (name, version) REFERENCES model_versions (name, version)
);
CREATE INDEX approvals_version ON approvals (name, version, id);

CREATE FUNCTION conveyor_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;

CREATE TRIGGER alias_audit_append_only BEFORE UPDATE OR DELETE ON alias_audit
    FOR EACH ROW EXECUTE FUNCTION conveyor_append_only();
CREATE TRIGGER validations_append_only BEFORE UPDATE OR DELETE ON validations
    FOR EACH ROW EXECUTE FUNCTION conveyor_append_only();
CREATE TRIGGER approvals_append_only BEFORE UPDATE OR DELETE ON approvals
    FOR EACH ROW EXECUTE FUNCTION conveyor_append_only();
