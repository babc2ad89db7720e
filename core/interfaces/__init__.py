"""The typed interface every backend kind implements (one module per kind).

Plugins subclass these ABCs; core only ever talks to a backend through them.
The artifact store's interface lives in :mod:`conveyor.artifacts`.
"""

from conveyor.interfaces.features import FeatureStore, OnlineStore
from conveyor.interfaces.metadata import (
    ArtifactRecord,
    Definition,
    LineageGraph,
    MetadataStore,
    Run,
    StepExecution,
    TriggerEvent,
)
from conveyor.interfaces.orchestrator import Orchestrator
from conveyor.interfaces.registry import (
    AliasChange,
    Approval,
    ModelVersion,
    RegistryBackend,
    ValidationVerdict,
)
from conveyor.interfaces.server import Server
from conveyor.interfaces.triggers import Trigger, TriggerDecision

__all__ = [
    "AliasChange",
    "Approval",
    "ArtifactRecord",
    "Definition",
    "FeatureStore",
    "LineageGraph",
    "MetadataStore",
    "ModelVersion",
    "OnlineStore",
    "Orchestrator",
    "RegistryBackend",
    "Run",
    "Server",
    "StepExecution",
    "Trigger",
    "TriggerDecision",
    "TriggerEvent",
    "ValidationVerdict",
]
