-- Schema version 3: monitoring results (drift, skew, performance per model version
-- and window), which the drift and performance triggers read, newest first.
--
-- The id is the result's stable id (kind:model:version:start:end): recomputing a
-- window replaces its row, so a trigger keyed on the id fires once per window.

CREATE TABLE monitoring_results (
    id           TEXT PRIMARY KEY,
    model        TEXT NOT NULL,
    version      INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    window_start TEXT NOT NULL,
    window_end   TEXT NOT NULL,
    rows         INTEGER NOT NULL,
    scores       TEXT NOT NULL,
    breached     TEXT NOT NULL,
    details      TEXT NOT NULL,
    created      TEXT NOT NULL
);
CREATE INDEX monitoring_results_newest ON monitoring_results (model, version, kind, created);
