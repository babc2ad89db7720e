-- Schema version 2: monitoring results (read by the drift and performance triggers),
-- the run key (a trigger event starts at most one run), the 'interrupted' run status,
-- and the leases and watcher state of `conveyor watch`.

CREATE TABLE monitoring_results (
    id           text COLLATE "C" PRIMARY KEY,
    seq          bigserial UNIQUE,
    model        text COLLATE "C" NOT NULL,
    version      integer NOT NULL,
    kind         text COLLATE "C" NOT NULL,
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    rows         bigint NOT NULL,
    scores       text COLLATE "C" NOT NULL,
    breached     text COLLATE "C" NOT NULL,
    details      text COLLATE "C" NOT NULL,
    created      timestamptz NOT NULL
);
CREATE INDEX monitoring_results_newest ON monitoring_results (model, version, kind, created);

ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('running', 'succeeded', 'failed', 'refused', 'cancelled', 'interrupted'));
DROP INDEX runs_trigger_event;
CREATE UNIQUE INDEX runs_trigger_event ON runs (trigger_event) WHERE trigger_event IS NOT NULL;
CREATE INDEX runs_status ON runs (status, pipeline);

CREATE TABLE leases (
    name     text COLLATE "C" PRIMARY KEY,
    holder   text COLLATE "C" NOT NULL,
    key      text COLLATE "C",
    acquired timestamptz NOT NULL,
    expires  timestamptz NOT NULL
);

CREATE TABLE watch_state (
    name    text COLLATE "C" PRIMARY KEY,
    state   text COLLATE "C" NOT NULL DEFAULT '{}',
    updated timestamptz NOT NULL
);
