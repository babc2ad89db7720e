"""Conformance suite for registry backends, with core's rules over them.

Subclass :class:`ModelRegistryContract` and provide two fixtures:

* ``backend``: a fresh, empty :class:`~conveyor.interfaces.RegistryBackend` per test;
* ``artifact_store``: the artifact store registered URIs must lie in.

The suite wraps the backend in core's :class:`conveyor.registry.ModelRegistry`
and checks the whole behaviour, policy included (names, reserved aliases,
verdicts, approvals, forced reasons, confinement, events after commit), so a
backend that implements the primitives correctly gets every rule for free.
Optional fixtures unlock more tests (they are skipped otherwise):

* ``reopen``: a callable returning a second backend instance on the same storage
  (what another process would open): the change feed and events are read
  through it, so they prove the writes committed;
* ``metadata``: a metadata store kept somewhere else than the registry (another
  database file), for model lineage recorded through core;
* ``project_dir``: a project folder whose ``conveyor.toml`` selects this backend
  and that artifact store, for the multi-process tests (8 processes x 25
  concurrent registrations; promoters racing readers).  Worker processes open
  it with ``Conveyor.load(cwd=project_dir)``.

The worker processes of the multi-process tests are
:mod:`conveyor.testing.registry_workers`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conveyor.errors import (
    ConfinementError,
    ConveyorError,
    IntegrityError,
    NotFoundError,
    ValidationError,
)
from conveyor.interfaces.registry import (
    AliasChange,
    DatasetRef,
    FeatureSpec,
    Governance,
    ModelVersion,
    RegistryBackend,
    Signature,
)
from conveyor.registry import ModelRegistry, PromotionPolicy
from conveyor.testing.registry_policy import RegistryPolicyContract
from conveyor.testing.registry_workers import run_workers

__all__ = ["MODEL_BYTES", "ModelRegistryContract", "run_workers"]

MODEL_BYTES = b"tree\nversion=v4\nnum_class=1\n"


class ModelRegistryContract(RegistryPolicyContract):
    """The behaviour core's registry must show over any :class:`RegistryBackend`."""

    @pytest.fixture
    def backend(self) -> RegistryBackend:
        raise NotImplementedError("a ModelRegistryContract subclass must define `backend`")

    @pytest.fixture
    def artifact_store(self) -> Any:
        raise NotImplementedError("a ModelRegistryContract subclass must define `artifact_store`")

    @pytest.fixture
    def reopen(self) -> Callable[[], RegistryBackend]:
        pytest.skip("cross-instance tests need a `reopen` fixture")

    @pytest.fixture
    def project_dir(self) -> Path:
        pytest.skip("multi-process tests need a `project_dir` fixture")

    @pytest.fixture
    def metadata(self) -> Any:
        pytest.skip(
            "model lineage needs a `metadata` fixture (a metadata store kept apart "
            "from the registry)"
        )

    @pytest.fixture
    def events(self) -> list[tuple[str, Any]]:
        """``(hook name, event)`` of every event the ``registry`` fixture emitted."""
        return []

    @pytest.fixture
    def registry(
        self, backend: RegistryBackend, artifact_store: Any, events: list[tuple[str, Any]]
    ) -> ModelRegistry:
        return ModelRegistry(
            backend,
            artifacts=artifact_store,
            policy=PromotionPolicy(),
            emit=lambda hook, event: events.append((hook, event)),
        )

    def _with(self, backend: RegistryBackend, artifact_store: Any, **kwargs: Any) -> ModelRegistry:
        return ModelRegistry(backend, artifacts=artifact_store, **kwargs)

    @pytest.fixture
    def model_file(self, artifact_store: Any) -> Any:
        return artifact_store.put_bytes("models/churn/model.txt", MODEL_BYTES)

    def _register(
        self, registry: ModelRegistry, model_file: Any, name: str = "churn", **fields: Any
    ) -> ModelVersion:
        return registry.register(
            name, artifact_uri=model_file.uri, sha256=model_file.sha256, **fields
        )

    def _validated(
        self, registry: ModelRegistry, model_file: Any, n: int, name: str = "churn"
    ) -> list[ModelVersion]:
        versions = []
        for _ in range(n):
            mv = self._register(registry, model_file, name)
            registry.record_validation(name, mv.version, passed=True, summary="ok")
            versions.append(mv)
        return versions

    # -- registration --------------------------------------------------------------------

    def test_register_round_trips_every_field(
        self, registry: ModelRegistry, model_file: Any
    ) -> None:
        start = datetime(2024, 1, 1, tzinfo=UTC)
        signature = Signature(
            features=[
                FeatureSpec(name="age", dtype="float64", nullable=False),
                FeatureSpec(name="plan", dtype="category", categories=["basic", "pro"]),
            ],
            label="churned",
            objective="binary",
        )
        mv = self._register(
            registry,
            model_file,
            run_id="run-1",
            datasets=[
                DatasetRef(
                    uri="file:///train.parquet",
                    fingerprint="f" * 64,
                    start=start,
                    end=start + timedelta(days=30),
                )
            ],
            metrics={"auc": 0.91},
            params={"num_leaves": 31},
            governance=Governance(
                description="churn model",
                owner="ml-team",
                intended_use="retention",
                limitations="not for pricing",
            ),
            signature=signature,
            profile_uri="file:///profile.json",
            actor="alice",
        )
        assert isinstance(mv, ModelVersion)
        assert (mv.name, mv.version, mv.stage, mv.aliases) == ("churn", 1, "development", ())
        stored = registry.get("churn", 1)
        assert stored == mv
        assert stored.sha256 == model_file.sha256
        assert stored.signature.names == ("age", "plan")
        assert stored.signature.features[1].categories == ("basic", "pro")
        assert stored.signature == signature  # the label and objective too
        assert stored.datasets[0].end == start + timedelta(days=30)
        assert stored.governance.owner == "ml-team"
        assert (stored.metrics, stored.params) == ({"auc": 0.91}, {"num_leaves": 31})
        assert (stored.run_id, stored.profile_uri, stored.created_by) == (
            "run-1",
            "file:///profile.json",
            "alice",
        )

    def test_versions_count_up_per_model(self, registry: ModelRegistry, model_file: Any) -> None:
        assert [self._register(registry, model_file).version for _ in range(3)] == [1, 2, 3]
        assert self._register(registry, model_file, "other").version == 1
        assert registry.get("churn").version == 3
        assert [v.version for v in registry.list_versions("churn")] == [1, 2, 3]
        summary = {m.name: m for m in registry.list_models()}
        assert (summary["churn"].latest_version, summary["churn"].versions) == (3, 3)
        with pytest.raises(NotFoundError):
            registry.get("churn", 4)
        with pytest.raises(NotFoundError):
            registry.get("missing")

    def test_a_key_is_registered_as_the_stores_uri(
        self, registry: ModelRegistry, model_file: Any
    ) -> None:
        mv = registry.register("churn", artifact_uri=model_file.key, sha256=model_file.sha256)
        assert mv.artifact_uri == model_file.uri

    @pytest.mark.parametrize(
        "bad",
        [
            "file:///etc/passwd",
            "s3://elsewhere/model.txt",
            "../../etc/passwd",
            "/etc/passwd",
            "{root}/../outside.txt",
            "{root}/%2e%2e/outside.txt",
            "{root}/%252e%252e/outside.txt",
            "{root}/models/../../outside.txt",
        ],
    )
    def test_uris_outside_the_store_are_refused(
        self, registry: ModelRegistry, artifact_store: Any, model_file: Any, bad: str
    ) -> None:
        uri = bad.format(root=artifact_store.uri.rstrip("/"))
        with pytest.raises((ConfinementError, NotFoundError)):
            registry.register("churn", artifact_uri=uri, sha256=model_file.sha256)
        with pytest.raises(NotFoundError):
            registry.get("churn")

    def test_hash_must_match_the_store(
        self, registry: ModelRegistry, model_file: Any, artifact_store: Any
    ) -> None:
        with pytest.raises(IntegrityError):
            registry.register("churn", artifact_uri=model_file.uri, sha256="0" * 64)
        with pytest.raises(ConveyorError):
            registry.register("churn", artifact_uri=model_file.uri, sha256="not-a-hash")
        with pytest.raises(NotFoundError):
            registry.register(
                "churn", artifact_uri="models/never/written.txt", sha256=model_file.sha256
            )

    def test_only_text_model_formats(self, registry: ModelRegistry, model_file: Any) -> None:
        with pytest.raises(ConveyorError, match="format"):
            self._register(registry, model_file, model_format="pickle")

    def test_bad_names_are_refused(self, registry: ModelRegistry, model_file: Any) -> None:
        for name in ("", "../x", "a b", "x" * 200):
            with pytest.raises(ConveyorError):
                self._register(registry, model_file, name)

    # -- aliases and stages --------------------------------------------------------------

    def test_production_needs_a_passing_verdict(
        self, registry: ModelRegistry, model_file: Any
    ) -> None:
        mv = self._register(registry, model_file)
        with pytest.raises(ValidationError):
            registry.set_alias("churn", "production", mv.version, actor="a")
        registry.record_validation("churn", mv.version, passed=False, summary="worse")
        with pytest.raises(ValidationError):
            registry.set_alias("churn", "production", mv.version, actor="a")
        assert registry.resolve("churn", "production") is None
        registry.record_validation(
            "churn", mv.version, passed=True, summary="better", details={"auc": 0.9}
        )
        change = registry.set_alias("churn", "production", mv.version, actor="a", reason="weekly")
        assert isinstance(change, AliasChange)
        assert (change.from_version, change.to_version, change.forced) == (None, 1, False)
        assert change.evidence["validation"]["summary"] == "better"
        resolved = registry.resolve("churn", "production")
        assert resolved is not None
        assert resolved.stage == "production"
        assert [v.passed for v in registry.validations("churn", 1)] == [False, True]

    def test_force_needs_a_reason_and_is_audited(
        self, registry: ModelRegistry, model_file: Any
    ) -> None:
        self._register(registry, model_file)
        with pytest.raises(ConveyorError):
            registry.set_alias("churn", "production", 1, actor="a", force=True)
        change = registry.set_alias(
            "churn", "production", 1, actor="a", force=True, reason="incident 42"
        )
        assert change.forced
        assert change.reason == "incident 42"
        assert registry.history("churn")[-1].forced

    def test_free_aliases_and_staging_need_no_verdict(
        self, registry: ModelRegistry, model_file: Any
    ) -> None:
        self._register(registry, model_file)
        self._register(registry, model_file)
        registry.set_alias("churn", "staging", 2, actor="ci")
        registry.set_alias("churn", "champion", 1, actor="ci")
        assert registry.aliases("churn") == {"champion": 1, "staging": 2}
        assert registry.get("churn", 2).stage == "staging"
        assert registry.get("churn", 1).aliases == ("champion",)
        registry.remove_alias("churn", "champion", actor="ci")
        assert registry.resolve("churn", "champion") is None
        with pytest.raises(NotFoundError):
            registry.remove_alias("churn", "champion", actor="ci")
        for reserved in ("archived", "development", "latest", "bad alias"):
            with pytest.raises(ConveyorError):
                registry.set_alias("churn", reserved, 1, actor="ci")
        with pytest.raises(NotFoundError):
            registry.set_alias("churn", "staging", 9, actor="ci")

    def test_moving_an_alias_is_one_flip_with_history(
        self, registry: ModelRegistry, model_file: Any
    ) -> None:
        self._validated(registry, model_file, 3)
        for version in (1, 2, 3):
            registry.set_alias("churn", "production", version, actor="a", reason=f"v{version}")
        history = registry.history("churn", alias="production")
        assert [(c.from_version, c.to_version) for c in history] == [(None, 1), (1, 2), (2, 3)]
        assert [c.reason for c in history] == ["v1", "v2", "v3"]
        assert all(b.at >= a.at and b.id > a.id for a, b in itertools.pairwise(history))
        assert [v.stage for v in registry.list_versions("churn")] == [
            "development",
            "development",
            "production",
        ]
        same = registry.set_alias("churn", "production", 3, actor="a")
        assert same.id == history[-1].id  # already there: nothing is written
        assert len(registry.history("churn")) == 3

    def test_rollback_walks_back_through_history(
        self, registry: ModelRegistry, model_file: Any
    ) -> None:
        self._validated(registry, model_file, 3)
        with pytest.raises(ConveyorError):
            registry.rollback("churn", "production", actor="a")
        for version in (1, 2, 3):
            registry.set_alias("churn", "production", version, actor="a")
        back = registry.rollback("churn", "production", actor="oncall", reason="bad latency")
        assert (back.action, back.from_version, back.to_version) == ("rollback", 3, 2)
        resolved = registry.resolve("churn", "production")
        assert resolved is not None
        assert resolved.version == 2
        assert registry.rollback("churn", "production", actor="oncall").to_version == 1
        with pytest.raises(ConveyorError):
            registry.rollback("churn", "production", actor="oncall")
        assert not [f for f in registry.check() if f.blocking]

    def test_alias_at_a_time(self, registry: ModelRegistry, model_file: Any) -> None:
        self._validated(registry, model_file, 2)
        before = datetime.now(UTC) - timedelta(seconds=1)
        registry.set_alias("churn", "production", 1, actor="a")
        first = registry.history("churn")[-1].at
        registry.set_alias("churn", "production", 2, actor="a")
        second = registry.history("churn")[-1].at
        assert registry.alias_at("churn", "production", before) is None
        assert registry.alias_at("churn", "production", first) == 1
        assert registry.alias_at("churn", "production", second - timedelta(microseconds=1)) == 1
        assert registry.alias_at("churn", "production", second) == 2
        assert registry.alias_at("churn", "production", datetime.now(UTC)) == 2

    def test_archive(self, registry: ModelRegistry, model_file: Any) -> None:
        self._validated(registry, model_file, 2)
        registry.set_alias("churn", "production", 1, actor="a")
        with pytest.raises(ConveyorError):
            registry.archive("churn", 1, actor="a")
        registry.archive("churn", 2, actor="a", reason="superseded")
        assert registry.get("churn", 2).stage == "archived"
        registry.set_alias("churn", "production", 2, actor="a")  # unarchives, audited
        assert registry.get("churn", 2).stage == "production"
        assert [c.action for c in registry.history("churn")][-2:] == ["unarchive", "set"]
        assert not [f for f in registry.check() if f.blocking]

    def test_approvals(self, registry: ModelRegistry, model_file: Any) -> None:
        self._register(registry, model_file)
        approval = registry.approve("churn", 1, by="bob", comment="lgtm")
        assert (approval.by, approval.comment) == ("bob", "lgtm")
        assert [a.by for a in registry.get("churn", 1).governance.approvals] == ["bob"]
        with pytest.raises(ConveyorError):
            registry.approve("churn", 1, by="")
        with pytest.raises(NotFoundError):
            registry.approve("churn", 2, by="bob")

    def test_check_is_clean_after_normal_use(
        self, registry: ModelRegistry, model_file: Any
    ) -> None:
        self._validated(registry, model_file, 3)
        registry.set_alias("churn", "production", 1, actor="a")
        registry.set_alias("churn", "production", 3, actor="a")
        registry.rollback("churn", "production", actor="a")
        registry.set_alias("churn", "champion", 2, actor="a")
        registry.remove_alias("churn", "champion", actor="a")
        assert [f for f in registry.check(deep=True) if f.blocking] == []

    def test_check_finds_a_changed_artifact(
        self, registry: ModelRegistry, model_file: Any, artifact_store: Any
    ) -> None:
        self._register(registry, model_file)
        tampered = _tamper(artifact_store, model_file)
        if not tampered:
            pytest.skip("this artifact store offers no way to alter stored bytes")
        problems = [f for f in registry.check(deep=True) if f.blocking]
        assert problems
        assert problems[0].check == "registry.artifacts"

    # -- several processes ----------------------------------------------------------------

    def test_concurrent_registrations_from_8_processes(
        self, project_dir: Path, model_file: Any
    ) -> None:
        results = run_workers(
            project_dir, [["register", "concurrent", "25", model_file.uri, model_file.sha256]] * 8
        )
        versions = sorted(v for r in results for v in r["versions"])
        errors = [e for r in results for e in r["errors"]]
        assert errors == []
        assert versions == list(range(1, 201))

    def test_promoters_race_readers(
        self, project_dir: Path, registry: ModelRegistry, model_file: Any
    ) -> None:
        self._validated(registry, model_file, 4, name="raced")
        registry.set_alias("raced", "production", 1, actor="setup")
        results = run_workers(
            project_dir,
            [["promote", "raced", "20", str(seed)] for seed in range(4)]
            + [["resolve", "raced", "1.5"] for _ in range(2)],
        )
        errors = [e for r in results for e in r["errors"]]
        assert errors == []
        reads = [v for r in results[4:] for v in r["versions"]]
        assert reads
        assert set(reads) <= {1, 2, 3, 4}
        history = registry.history("raced", alias="production")
        by_id = {c.id: c for c in history}
        reported = {i for r in results[:4] for i in r["ids"]} - {history[0].id}
        assert reported <= set(by_id)  # every move a promoter saw is in the log...
        assert len(history) == 1 + len(reported)  # ...and the log has nothing else
        assert [f for f in registry.check() if f.blocking] == []


def _tamper(store: Any, info: Any) -> bool:
    """Overwrite the stored bytes of ``info`` behind the store's back, if possible."""
    root = getattr(store, "root", None)
    if root is None or not str(store.uri).startswith("file://"):
        return False
    path = Path(root) / "blobs" / info.sha256
    if not path.exists():
        return False
    path.chmod(0o600)
    path.write_bytes(b"tampered")
    return True
