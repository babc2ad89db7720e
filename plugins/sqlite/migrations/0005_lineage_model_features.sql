-- Schema version 5: the feature views (definition versions and features) each model
-- version was trained on, as ModelRecord.features gives them to record_model.
--
-- A model uses a view once; `position` keeps the order the training set joined them
-- in, `features` is the JSON list of the view's features it took.  Versions recorded
-- before this migration have no rows: they were recorded without feature views.

CREATE TABLE lineage_model_features (
    name         TEXT NOT NULL,
    version      INTEGER NOT NULL,
    view         TEXT NOT NULL,
    view_version INTEGER NOT NULL CHECK (view_version >= 1),
    features     TEXT NOT NULL DEFAULT '[]',
    position     INTEGER NOT NULL,
    PRIMARY KEY (name, version, view),
    FOREIGN KEY (name, version) REFERENCES lineage_models (name, version)
) WITHOUT ROWID;
-- feature_view:<view>:<version> downstream: which models trained on it
CREATE INDEX lineage_model_features_view ON lineage_model_features (view, view_version);
