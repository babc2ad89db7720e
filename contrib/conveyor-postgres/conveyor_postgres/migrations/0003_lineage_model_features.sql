-- Schema version 3: the feature views (definition versions and features) each model
-- version was trained on, as ModelRecord.features gives them to record_model.
-- `position` keeps the order the training set joined them in; `features` is the JSON
-- list of the view's features it took.

CREATE TABLE lineage_model_features (
    name         text COLLATE "C" NOT NULL,
    version      integer NOT NULL,
    view         text COLLATE "C" NOT NULL,
    view_version integer NOT NULL CHECK (view_version >= 1),
    features     text COLLATE "C" NOT NULL DEFAULT '[]',
    position     integer NOT NULL,
    PRIMARY KEY (name, version, view),
    FOREIGN KEY (name, version) REFERENCES lineage_models (name, version)
);
CREATE INDEX lineage_model_features_view ON lineage_model_features (view, view_version);
