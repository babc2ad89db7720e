"""Registry contract, part two: policy over the primitives, events, change feed, lineage.

Mixed into :class:`conveyor.testing.registry.ModelRegistryContract`, which
provides the fixtures and helpers used here (``_with``, ``_register``,
``_validated``).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from conveyor.errors import ConveyorError, ValidationError
from conveyor.interfaces.registry import DatasetRef, RegistryBackend, StaleAliasError
from conveyor.registry import ModelRegistry, PromotionPolicy


class RegistryPolicyContract:
    """Core's rules enforced over any backend: what proves the policy is not the backend's."""

    _with: Any
    _register: Any
    _validated: Any

    def test_model_lineage_in_a_separate_metadata_store(
        self, backend: RegistryBackend, artifact_store: Any, model_file: Any, metadata: Any
    ) -> None:
        registry = self._with(backend, artifact_store, metadata=metadata)
        run_id = metadata.start_run("train")
        step = metadata.start_step(
            run_id,
            "train",
            inputs={"table": {"uri": "file:///train.parquet", "fingerprint": "f" * 64}},
        )
        metadata.finish_step(step, "succeeded", outputs={"model": model_file})
        self._register(
            registry,
            model_file,
            run_id=run_id,
            datasets=[
                DatasetRef(uri="file:///train.parquet", fingerprint="f" * 64),
                DatasetRef(uri="file:///holdout.parquet", fingerprint="h" * 64, role="holdout"),
            ],
        )
        up = metadata.lineage("model:churn:1")
        kinds = {node.split(":", 1)[0] for node in up.nodes}
        assert {"model", "artifact", "step", "run"} <= kinds
        relations = {e.relation for e in up.edges if e.dst == "model:churn:1"}
        assert relations == {"registered_as", "produced", "trained_on"}
        assert up.nodes["model:churn:1"].attributes["sha256"] == model_file.sha256
        train_data = next(
            n for n in up.nodes.values() if n.attributes.get("uri") == "file:///train.parquet"
        )
        down = metadata.lineage(train_data.id, direction="downstream")
        assert "model:churn:1" in down.nodes
        assert "model:churn:1" in metadata.lineage(f"run:{run_id}", direction="downstream").nodes
        holdout = next(
            n for n in up.nodes.values() if n.attributes.get("uri") == "file:///holdout.parquet"
        )
        assert holdout.attributes["artifact_kind"] == "dataset"

    # -- policy over the primitives ---------------------------------------------------

    def test_approval_rule_needs_an_approval(
        self, backend: RegistryBackend, artifact_store: Any, model_file: Any
    ) -> None:
        registry = self._with(
            backend,
            artifact_store,
            policy=PromotionPolicy(
                rules={"staging": "auto", "production": "approval", "champion": "approval"}
            ),
        )
        self._validated(registry, model_file, 1)
        with pytest.raises(ValidationError, match="approval"):
            registry.set_alias("churn", "production", 1, actor="a")
        with pytest.raises(ValidationError, match="approval"):
            registry.set_alias("churn", "champion", 1, actor="a")
        registry.set_alias("churn", "staging", 1, actor="a")  # auto: no approval needed
        assert registry.aliases("churn") == {"staging": 1}
        registry.approve("churn", 1, by="bob")
        change = registry.set_alias("churn", "production", 1, actor="a")
        assert not change.forced
        assert [a["by"] for a in change.evidence["approvals"]] == ["bob"]
        assert change.evidence["validation"]["passed"] is True

    def test_forcing_past_a_missing_approval_is_audited(
        self, backend: RegistryBackend, artifact_store: Any, model_file: Any
    ) -> None:
        registry = self._with(
            backend, artifact_store, policy=PromotionPolicy(rules={"production": "approval"})
        )
        self._register(registry, model_file)
        change = registry.set_alias(
            "churn", "production", 1, actor="oncall", force=True, reason="incident 7"
        )
        assert change.forced
        assert change.evidence["forced_reason"] == "incident 7"
        stored = registry.history("churn", alias="production")[-1]
        assert (stored.forced, stored.reason, stored.evidence) == (
            True,
            "incident 7",
            change.evidence,
        )

    def test_promote_by_policy(
        self, backend: RegistryBackend, artifact_store: Any, model_file: Any
    ) -> None:
        auto = self._with(backend, artifact_store, policy=PromotionPolicy())
        self._validated(auto, model_file, 2)
        assert auto.promote_by_policy("churn", 1, actor="run r1") == {
            "staging": "promoted",
            "production": "promoted",
        }
        assert auto.promote_by_policy("churn", 1, actor="run r1") == {
            "staging": "already",
            "production": "already",
        }
        cautious = self._with(
            backend,
            artifact_store,
            policy=PromotionPolicy(
                rules={"staging": "auto", "production": "approval", "shadow": "never"}
            ),
        )
        outcome = cautious.promote_by_policy("churn", 2, actor="run r2")
        assert outcome["staging"] == "promoted"
        assert outcome["production"].startswith("awaiting approval")
        assert "never" in outcome["shadow"]
        assert cautious.aliases("churn") == {"production": 1, "staging": 2}
        cautious.approve("churn", 2, by="carol")
        assert cautious.promote_by_policy("churn", 2, actor="run r3")["production"] == "promoted"
        failing = self._register(auto, model_file)
        auto.record_validation("churn", failing.version, passed=False, summary="worse")
        with pytest.raises(ValidationError):
            auto.promote_by_policy("churn", failing.version, actor="run r4")
        assert auto.aliases("churn") == {"production": 2, "staging": failing.version}

    def test_policy_config_is_checked(self) -> None:
        policy = PromotionPolicy.from_config({"production": "approval", "champion": "auto"})
        assert policy.rules == {"staging": "auto", "production": "approval", "champion": "auto"}
        assert policy.rule("other") == "never"
        for bad in ({"production": "sometimes"}, {"latest": "auto"}, {"a b": "auto"}):
            with pytest.raises(ConveyorError, match="promotion"):
                PromotionPolicy.from_config(bad)

    def test_compare_and_set_refuses_a_stale_holder(
        self, registry: ModelRegistry, backend: RegistryBackend, model_file: Any
    ) -> None:
        self._validated(registry, model_file, 2)
        registry.set_alias("churn", "staging", 1, actor="a")
        with pytest.raises(StaleAliasError):
            backend.move_alias("churn", "staging", 2, expected=None, action="set", actor="b")
        first = registry.history("churn", alias="staging")[-1]
        with pytest.raises(StaleAliasError):
            backend.move_alias(
                "churn", "staging", 2, expected=1, action="set", actor="b", after=first.id + 1000
            )
        assert registry.aliases("churn") == {"staging": 1}
        assert len(registry.history("churn")) == 1
        with pytest.raises(StaleAliasError):
            backend.set_archived("churn", 1, True, actor="b")
        assert not registry.get("churn", 1).archived

    # -- events and the change feed ---------------------------------------------------

    def test_events_fire_after_commit(
        self,
        backend: RegistryBackend,
        artifact_store: Any,
        model_file: Any,
        request: pytest.FixtureRequest,
    ) -> None:
        try:
            reader = request.getfixturevalue("reopen")()
        except pytest.skip.Exception:
            reader = backend
        seen: list[tuple[str, Any, Any]] = []

        def emit(hook: str, event: Any) -> None:
            if hook == "on_model_registered":
                seen.append((hook, event, reader.get_version(event.model, event.version)))
            else:
                seen.append((hook, event, reader.aliases(event.model)))

        registry = self._with(backend, artifact_store, emit=emit)
        mv = self._register(registry, model_file, run_id="r1")
        hook, event, stored = seen[0]
        assert (hook, event.model, event.version, event.run_id) == (
            "on_model_registered",
            "churn",
            1,
            "r1",
        )
        assert stored.sha256 == mv.sha256 == event.sha256
        with pytest.raises(ValidationError):
            registry.set_alias("churn", "production", 1, actor="a")
        registry.set_alias("churn", "staging", 1, actor="ci", reason="nightly")
        registry.set_alias("churn", "staging", 1, actor="ci")  # no move: no event
        assert [h for h, _e, _s in seen] == ["on_model_registered", "on_alias_changed"]
        hook, event, aliases = seen[1]
        assert (event.alias, event.from_version, event.to_version, event.reason) == (
            "staging",
            None,
            1,
            "nightly",
        )
        assert aliases == {"staging": 1}  # the move was committed before the event fired
        registry.remove_alias("churn", "staging", actor="ci")
        assert seen[-1][2] == {}

    def test_change_feed(
        self, registry: ModelRegistry, model_file: Any, request: pytest.FixtureRequest
    ) -> None:
        try:
            other = request.getfixturevalue("reopen")()
        except pytest.skip.Exception:
            other = None
        self._validated(registry, model_file, 3)
        self._validated(registry, model_file, 1, name="other")
        assert registry.changes_since(0) == []
        registry.set_alias("churn", "production", 1, actor="a")
        registry.set_alias("other", "staging", 1, actor="a")
        registry.set_alias("churn", "production", 2, actor="a")
        feed = registry.changes_since(0)
        assert [(c.model, c.alias, c.to_version) for c in feed] == [
            ("churn", "production", 1),
            ("other", "staging", 1),
            ("churn", "production", 2),
        ]
        assert all(b.id > a.id and b.at >= a.at for a, b in itertools.pairwise(feed))
        assert registry.changes_since(feed[0].id) == feed[1:]
        assert registry.changes_since(0, model="churn") == [feed[0], feed[2]]
        assert registry.changes_since(0, limit=1) == feed[:1]
        assert registry.changes_since(feed[-1].id) == []
        if other is not None:  # another instance on the same storage sees the same feed
            assert other.changes_since(0) == feed
            registry.rollback("churn", "production", actor="oncall")
            (back,) = other.changes_since(feed[-1].id)
            assert (back.action, back.to_version) == ("rollback", 1)
