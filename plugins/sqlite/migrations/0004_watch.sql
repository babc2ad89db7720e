-- Schema version 4: what `conveyor watch` needs to coordinate processes.
--
-- * runs may be `interrupted` (a watcher died mid-run and its lease lapsed): the
--   table is rebuilt for the wider CHECK, foreign keys deferred to the commit;
-- * at most one run per trigger event (the run key);
-- * leases (one holder per name, lapsing at `expires`) and per-trigger watcher state.

PRAGMA defer_foreign_keys = ON;

CREATE TEMP TABLE runs_v3 AS SELECT * FROM runs;
DROP TABLE runs;
CREATE TABLE runs (
    id               TEXT PRIMARY KEY,
    pipeline         TEXT NOT NULL REFERENCES pipelines (name),
    status           TEXT NOT NULL
                     CHECK (status IN ('running', 'succeeded', 'failed', 'refused', 'cancelled',
                                       'interrupted')),
    started          TEXT NOT NULL,
    ended            TEXT,
    parameters       TEXT NOT NULL DEFAULT '{}',
    trigger_event    TEXT REFERENCES trigger_events (id),
    code_fingerprint TEXT,
    git_commit       TEXT,
    error            TEXT
);
-- re-inserting the parents settles the deferred references of steps and metrics
INSERT INTO runs (id, pipeline, status, started, ended, parameters, trigger_event,
                  code_fingerprint, git_commit, error)
SELECT id, pipeline, status, started, ended, parameters, trigger_event, code_fingerprint,
       git_commit, error FROM runs_v3 ORDER BY rowid;
DROP TABLE runs_v3;
CREATE INDEX runs_started ON runs (started);
CREATE INDEX runs_pipeline_started ON runs (pipeline, started);
CREATE UNIQUE INDEX runs_trigger_event ON runs (trigger_event) WHERE trigger_event IS NOT NULL;
CREATE INDEX runs_status ON runs (status, pipeline);

CREATE TABLE leases (
    name     TEXT PRIMARY KEY,
    holder   TEXT NOT NULL,
    key      TEXT,
    acquired TEXT NOT NULL,
    expires  TEXT NOT NULL
);

CREATE TABLE watch_state (
    name    TEXT PRIMARY KEY,
    state   TEXT NOT NULL DEFAULT '{}',
    updated TEXT NOT NULL
);
