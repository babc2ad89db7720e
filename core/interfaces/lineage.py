"""Lineage values: typed node ids, nodes, edges, graphs, and model records.

Lineage nodes are addressed by typed ids (:func:`node_id`):

* ``artifact:<id>``: a recorded artifact (a URI plus its fingerprint),
* ``run:<id>`` and ``step:<id>``: a pipeline run and one of its step executions,
* ``trigger:<id>``: the trigger event that caused a run,
* ``model:<name>:<version>``: a registered model version,
* ``feature_view:<name>:<version>``: one definition version of a feature view that
  fed a model's training set (edge ``definition`` to the model).

Edges point in the direction data flows (``src`` is upstream of ``dst``).  The
metadata store keeps all of them; core records model versions there
(:meth:`~conveyor.interfaces.MetadataStore.record_model`) after the registry
committed, so no metadata store reads registry tables.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from attrs import Factory, field, frozen

from conveyor.convert import to_tuple
from conveyor.interfaces.registry import DatasetRef

NODE_KINDS = ("artifact", "run", "step", "trigger", "model", "feature_view")
Direction = Literal["upstream", "downstream"]

_NODE = re.compile(r"^(artifact|run|step|trigger|model|feature_view):(.+)$")


def node_id(kind: str, *parts: object) -> str:
    """The lineage id of a node: ``node_id("model", "churn", 3) == "model:churn:3"``."""
    if kind not in NODE_KINDS:
        raise ValueError(f"unknown lineage node kind {kind!r}; one of {', '.join(NODE_KINDS)}")
    return ":".join([kind, *(str(p) for p in parts)])


def parse_node(node: str) -> tuple[str, str]:
    """``"model:churn:3" -> ("model", "churn:3")``; ValueError for a malformed id."""
    match = _NODE.match(node)
    if match is None:
        raise ValueError(
            f"{node!r} is not a lineage node id; use artifact:ID, run:ID, step:ID, "
            "trigger:ID, model:NAME:VERSION or feature_view:NAME:VERSION"
        )
    return match.group(1), match.group(2)


# -- values ---------------------------------------------------------------------------


@frozen(kw_only=True)
class FeatureViewUse:
    """One feature view a model was trained on: its definition version and the features.

    Attributes:
        view: the feature view's name.
        version: the version of its definition (``kind="feature_view"`` in the
            metadata store's definitions) the training set was built with.
        features: the view's features the training set took, by name, in order
            (``"view:*"`` is recorded as every feature the view then had).
    """

    view: str
    version: int
    features: tuple[str, ...] = field(default=(), converter=to_tuple)

    @property
    def refs(self) -> list[str]:
        """The feature references (``"view:feature"``) the feature store reads."""
        return [f"{self.view}:{name}" for name in self.features]


@frozen(kw_only=True)
class ModelRecord:
    """A registered model version as lineage sees it (``model:<model>:<version>``).

    Attributes:
        model: the model's name.
        version: its version number.
        artifact_uri: the model file (edge ``registered_as`` from its artifact).
        sha256: the model file's SHA-256 (its artifact fingerprint).
        run_id: the run that produced it (edge ``produced``), if any.
        created: when it was registered.
        datasets: the data it was trained and judged on (edges ``trained_on``).
        features: the feature views whose definitions fed its training set (edges
            ``definition`` from ``feature_view:<view>:<version>``), in training order.
    """

    model: str
    version: int
    artifact_uri: str
    sha256: str
    run_id: str | None = None
    created: datetime
    datasets: tuple[DatasetRef, ...] = field(default=(), converter=to_tuple)
    features: tuple[FeatureViewUse, ...] = field(default=(), converter=to_tuple)


@frozen(kw_only=True)
class LineageNode:
    """A node of a lineage graph.

    Attributes:
        id: typed id (``run:...``, ``artifact:...``, ``model:name:3``, ...).
        kind: the part before the first colon.
        label: a short human-readable name.
        attributes: facts worth showing (uri, status, fingerprint, ...).
    """

    id: str
    kind: str
    label: str
    attributes: dict[str, Any] = Factory(dict)


@frozen(kw_only=True)
class LineageEdge:
    """Data flows from ``src`` to ``dst``; ``relation`` says how.

    Relations: ``input`` (artifact -> step), ``output`` (step -> artifact),
    ``contains`` (run -> step), ``triggered`` (trigger -> run), ``registered_as``
    (artifact -> model), ``produced`` (run -> model), ``trained_on`` (artifact -> model),
    ``definition`` (feature_view -> model).
    """

    src: str
    dst: str
    relation: str


@frozen(kw_only=True)
class LineageGraph:
    """What lies upstream or downstream of ``root``.

    Attributes:
        root: the node the query started from.
        direction: ``upstream`` or ``downstream``.
        nodes: every node reached (the root included), keyed by id.
        edges: the edges between them (direction of data flow).
        truncated: whether the depth or size limit cut the graph short.
    """

    root: str
    direction: str
    nodes: dict[str, LineageNode] = Factory(dict)
    edges: tuple[LineageEdge, ...] = field(default=(), converter=to_tuple)
    truncated: bool = False

    def neighbours(self, node: str) -> list[tuple[LineageEdge, str]]:
        """The edges leaving ``node`` in this graph's direction, with the node reached."""
        if self.direction == "upstream":
            return [(e, e.src) for e in self.edges if e.dst == node]
        return [(e, e.dst) for e in self.edges if e.src == node]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (``conveyor lineage --json``)."""
        return {
            "root": self.root,
            "direction": self.direction,
            "truncated": self.truncated,
            "nodes": [
                {"id": n.id, "kind": n.kind, "label": n.label, "attributes": n.attributes}
                for n in self.nodes.values()
            ],
            "edges": [{"src": e.src, "dst": e.dst, "relation": e.relation} for e in self.edges],
        }
