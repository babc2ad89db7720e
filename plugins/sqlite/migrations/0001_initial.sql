-- Conveyor metadata store and model registry, schema version 1.
-- Times are ISO-8601 UTC text with microseconds (fixed width: sorts as time sorts).
-- JSON columns hold canonical JSON (sorted keys).

CREATE TABLE pipelines (
    name             TEXT PRIMARY KEY,
    code_fingerprint TEXT,
    git_commit       TEXT,
    created          TEXT NOT NULL,
    updated          TEXT NOT NULL
);

CREATE TABLE trigger_events (
    id       TEXT PRIMARY KEY,
    trigger  TEXT NOT NULL,
    reason   TEXT NOT NULL,
    details  TEXT NOT NULL DEFAULT '{}',
    key      TEXT,
    fired    INTEGER NOT NULL DEFAULT 1 CHECK (fired IN (0, 1)),
    created  TEXT NOT NULL,
    UNIQUE (trigger, key)
);
CREATE INDEX trigger_events_created ON trigger_events (created);

CREATE TABLE runs (
    id               TEXT PRIMARY KEY,
    pipeline         TEXT NOT NULL REFERENCES pipelines (name),
    status           TEXT NOT NULL
                     CHECK (status IN ('running', 'succeeded', 'failed', 'refused', 'cancelled')),
    started          TEXT NOT NULL,
    ended            TEXT,
    parameters       TEXT NOT NULL DEFAULT '{}',
    trigger_event    TEXT REFERENCES trigger_events (id),
    code_fingerprint TEXT,
    git_commit       TEXT,
    error            TEXT
);
CREATE INDEX runs_started ON runs (started);
CREATE INDEX runs_pipeline_started ON runs (pipeline, started);
CREATE INDEX runs_trigger_event ON runs (trigger_event);

CREATE TABLE artifacts (
    id          TEXT PRIMARY KEY,
    uri         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    kind        TEXT NOT NULL,
    size        INTEGER,
    media_type  TEXT,
    metadata    TEXT NOT NULL DEFAULT '{}',
    created     TEXT NOT NULL,
    UNIQUE (uri, fingerprint)
);
CREATE INDEX artifacts_fingerprint ON artifacts (fingerprint);
CREATE INDEX artifacts_created ON artifacts (created);

CREATE TABLE steps (
    id        TEXT PRIMARY KEY,
    run_id    TEXT NOT NULL REFERENCES runs (id),
    name      TEXT NOT NULL,
    status    TEXT NOT NULL
              CHECK (status IN ('running', 'succeeded', 'failed', 'cached', 'skipped')),
    started   TEXT NOT NULL,
    ended     TEXT,
    logs_uri  TEXT,
    cache_key TEXT,
    cache_hit INTEGER NOT NULL DEFAULT 0 CHECK (cache_hit IN (0, 1)),
    error     TEXT
);
CREATE INDEX steps_run ON steps (run_id, started);
CREATE INDEX steps_cache_key ON steps (cache_key, ended) WHERE cache_key IS NOT NULL;

CREATE TABLE step_artifacts (
    step_id     TEXT NOT NULL REFERENCES steps (id),
    direction   TEXT NOT NULL CHECK (direction IN ('input', 'output')),
    name        TEXT NOT NULL,
    artifact_id TEXT NOT NULL REFERENCES artifacts (id),
    PRIMARY KEY (step_id, direction, name)
) WITHOUT ROWID;
CREATE INDEX step_artifacts_artifact ON step_artifacts (artifact_id, direction);

CREATE TABLE metrics (
    id      INTEGER PRIMARY KEY,
    run_id  TEXT NOT NULL REFERENCES runs (id),
    step_id TEXT REFERENCES steps (id),
    key     TEXT NOT NULL,
    value   REAL,
    idx     INTEGER NOT NULL DEFAULT 0,
    at      TEXT NOT NULL
);
CREATE INDEX metrics_run_key ON metrics (run_id, key);

CREATE TABLE definitions (
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL CHECK (version >= 1),
    spec        TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created     TEXT NOT NULL,
    PRIMARY KEY (kind, name, version)
);

-- model registry -----------------------------------------------------------------------

CREATE TABLE models (
    name           TEXT PRIMARY KEY,
    latest_version INTEGER NOT NULL,
    created        TEXT NOT NULL,
    updated        TEXT NOT NULL
);

CREATE TABLE model_versions (
    name         TEXT NOT NULL REFERENCES models (name),
    version      INTEGER NOT NULL CHECK (version >= 1),
    created      TEXT NOT NULL,
    created_by   TEXT NOT NULL DEFAULT '',
    artifact_uri TEXT NOT NULL,
    sha256       TEXT NOT NULL CHECK (length(sha256) = 64),
    artifact_id  TEXT NOT NULL REFERENCES artifacts (id),
    model_format TEXT NOT NULL,
    archived     INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
    metrics      TEXT NOT NULL DEFAULT '{}',
    params       TEXT NOT NULL DEFAULT '{}',
    governance   TEXT NOT NULL DEFAULT '{}',
    signature    TEXT NOT NULL DEFAULT '[]',
    profile_uri  TEXT,
    run_id       TEXT,
    PRIMARY KEY (name, version)
);
CREATE INDEX model_versions_run ON model_versions (run_id);
CREATE INDEX model_versions_artifact ON model_versions (artifact_id);

CREATE TABLE model_datasets (
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    artifact_id TEXT NOT NULL REFERENCES artifacts (id),
    role        TEXT NOT NULL,
    start       TEXT,
    "end"       TEXT,
    PRIMARY KEY (name, version, role, artifact_id),
    FOREIGN KEY (name, version) REFERENCES model_versions (name, version)
) WITHOUT ROWID;
CREATE INDEX model_datasets_artifact ON model_datasets (artifact_id);

-- Append-only: the triggers below refuse UPDATE and DELETE.
CREATE TABLE alias_audit (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL REFERENCES models (name),
    alias        TEXT NOT NULL,
    from_version INTEGER,
    to_version   INTEGER,
    action       TEXT NOT NULL
                 CHECK (action IN ('set', 'rollback', 'remove', 'archive', 'unarchive')),
    actor        TEXT NOT NULL,
    at           TEXT NOT NULL,
    reason       TEXT NOT NULL DEFAULT '',
    forced       INTEGER NOT NULL DEFAULT 0 CHECK (forced IN (0, 1)),
    evidence     TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX alias_audit_name_alias ON alias_audit (name, alias, id);

CREATE TRIGGER alias_audit_no_update BEFORE UPDATE ON alias_audit
BEGIN
    SELECT RAISE(ABORT, 'alias_audit is append-only');
END;

CREATE TRIGGER alias_audit_no_delete BEFORE DELETE ON alias_audit
BEGIN
    SELECT RAISE(ABORT, 'alias_audit is append-only');
END;

-- Current holders; audit_id is the audit record that set each one.
CREATE TABLE aliases (
    name     TEXT NOT NULL,
    alias    TEXT NOT NULL,
    version  INTEGER NOT NULL,
    audit_id INTEGER NOT NULL REFERENCES alias_audit (id),
    PRIMARY KEY (name, alias),
    FOREIGN KEY (name, version) REFERENCES model_versions (name, version)
) WITHOUT ROWID;

CREATE TABLE validations (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    name    TEXT NOT NULL,
    version INTEGER NOT NULL,
    passed  INTEGER NOT NULL CHECK (passed IN (0, 1)),
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL DEFAULT '',
    run_id  TEXT,
    summary TEXT NOT NULL DEFAULT '',
    details TEXT NOT NULL DEFAULT '{}',
    FOREIGN KEY (name, version) REFERENCES model_versions (name, version)
);
CREATE INDEX validations_version ON validations (name, version, id);

CREATE TABLE approvals (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    name    TEXT NOT NULL,
    version INTEGER NOT NULL,
    by      TEXT NOT NULL,
    at      TEXT NOT NULL,
    comment TEXT NOT NULL DEFAULT '',
    FOREIGN KEY (name, version) REFERENCES model_versions (name, version)
);
CREATE INDEX approvals_version ON approvals (name, version, id);

CREATE TRIGGER validations_no_update BEFORE UPDATE ON validations
BEGIN
    SELECT RAISE(ABORT, 'validations are append-only');
END;

CREATE TRIGGER approvals_no_update BEFORE UPDATE ON approvals
BEGIN
    SELECT RAISE(ABORT, 'approvals are append-only');
END;
