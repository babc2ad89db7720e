-- Schema version 2: model versions as lineage records of the metadata store, and
-- an index for the registry's change feed.
--
-- Core records each registered version through MetadataStore.record_model, so the
-- metadata store no longer reads the registry's tables (the two may live in
-- different files).  Versions registered before this migration, when both
-- shared this file, are copied over below.

CREATE TABLE lineage_models (
    name         TEXT NOT NULL,
    version      INTEGER NOT NULL CHECK (version >= 1),
    artifact_id  TEXT NOT NULL REFERENCES artifacts (id),
    artifact_uri TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    run_id       TEXT,
    created      TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE INDEX lineage_models_artifact ON lineage_models (artifact_id);
CREATE INDEX lineage_models_run ON lineage_models (run_id);

CREATE TABLE lineage_model_datasets (
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    artifact_id TEXT NOT NULL REFERENCES artifacts (id),
    role        TEXT NOT NULL,
    start       TEXT,
    "end"       TEXT,
    PRIMARY KEY (name, version, role, artifact_id),
    FOREIGN KEY (name, version) REFERENCES lineage_models (name, version)
) WITHOUT ROWID;
CREATE INDEX lineage_model_datasets_artifact ON lineage_model_datasets (artifact_id);

INSERT INTO lineage_models (name, version, artifact_id, artifact_uri, sha256, run_id, created)
SELECT name, version, artifact_id, artifact_uri, sha256, run_id, created FROM model_versions;

INSERT INTO lineage_model_datasets (name, version, artifact_id, role, start, "end")
SELECT name, version, artifact_id, role, start, "end" FROM model_datasets;

-- changes_since(audit_id, model=...): one range scan per poll
CREATE INDEX alias_audit_name_id ON alias_audit (name, id);
