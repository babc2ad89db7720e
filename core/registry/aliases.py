"""Moving a model's aliases, with core's rules: compare-and-set over the backend.

Every move reads the state, asks :class:`~conveyor.registry.policy.PromotionPolicy`
for the evidence it needs, and commits only if nobody moved the alias meanwhile
(``StaleAliasError`` from the backend); a lost race is decided again from a fresh
read, for up to :data:`CAS_PATIENCE_SECONDS`.  Events fire after the commit.
:class:`AliasMoves` is the part of :class:`~conveyor.registry.ModelRegistry` that
does it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from conveyor.errors import ConveyorError, NotFoundError
from conveyor.interfaces.registry import ALIAS_ACTIONS, AliasChange, StaleAliasError
from conveyor.registry.audit import replay
from conveyor.registry.policy import check_alias, check_name

if TYPE_CHECKING:
    from conveyor.interfaces.registry import ModelVersion, RegistryBackend
    from conveyor.registry.policy import PromotionPolicy

#: how long a compare-and-set keeps deciding again while other writers win the race
CAS_PATIENCE_SECONDS = 15.0


def _attempts() -> Iterator[int]:
    """Attempt numbers for a compare-and-set, until :data:`CAS_PATIENCE_SECONDS` pass.

    Bounded by time, not by a count: with several promoters in tight loops on a
    loaded machine a writer can lose eight races in a row, which is contention,
    not a reason to refuse the user's change.
    """
    deadline = time.monotonic() + CAS_PATIENCE_SECONDS
    attempt = 0
    while attempt == 0 or time.monotonic() < deadline:
        yield attempt
        attempt += 1


def _backoff(attempt: int) -> None:
    """A jittered pause before a compare-and-set is decided again (no lock-step livelock)."""
    time.sleep(random.uniform(0, 0.001 * 2 ** min(attempt, 6)))


class AliasMoves:
    """Set, remove, roll back and archive, and ``promote_by_policy`` (a mixin of
    :class:`~conveyor.registry.ModelRegistry`, which provides what is declared here)."""

    backend: RegistryBackend

    @property
    def policy(self) -> PromotionPolicy:
        raise NotImplementedError

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        raise NotImplementedError

    def _checkpoint(self, name: str) -> None:
        raise NotImplementedError

    def _emit_changes(self, changes: Sequence[AliasChange]) -> None:
        raise NotImplementedError

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        actor: str,
        reason: str = "",
        force: bool = False,
    ) -> AliasChange:
        """Move ``alias`` (a free alias or ``staging``/``production``) to ``version``.

        ``production`` needs a passing validation verdict, an alias whose
        ``[promotion]`` rule is ``approval`` an approval; ``force`` with a
        non-empty reason overrides both, audited.  Moving an alias to the version
        already holding it writes nothing and returns the record that put it there.
        """
        check_alias(alias)
        if force and not reason.strip():
            raise ConveyorError(
                "forcing a promotion needs a reason",
                hint="add --reason 'why the checks may be skipped'",
            )
        for _attempt in _attempts():
            target = self.backend.get_version(name, version)
            current = (
                target.version if alias in target.aliases else self.backend.aliases(name).get(alias)
            )
            if current == target.version:
                last = self.backend.history(name, alias=alias)
                if last and last[-1].to_version == target.version:
                    return last[-1]
                if last:
                    _backoff(_attempt)
                    continue  # moved since it was read: read again and decide again
            verdicts = self.backend.validations(name, target.version)
            evidence, forced = self.policy.evidence(
                target, alias, verdicts[-1] if verdicts else None, force=force, reason=reason
            )
            try:
                changes = self.backend.move_alias(
                    name,
                    alias,
                    target.version,
                    expected=current,
                    action="set",
                    actor=actor,
                    reason=reason,
                    forced=forced,
                    evidence=evidence,
                )
            except StaleAliasError:
                _backoff(_attempt)
                continue  # another writer moved it first: read again and decide again
            self._checkpoint("set.committed")
            self._emit_changes(changes)
            return changes[-1]
        raise self._contended(name, alias)

    def remove_alias(self, name: str, alias: str, *, actor: str, reason: str = "") -> AliasChange:
        """Unset ``alias``, audited."""
        check_name(alias, "alias")
        for _attempt in _attempts():
            current = self.backend.aliases(name).get(alias)
            if current is None:
                raise NotFoundError(
                    f"model {name!r} has no alias {alias!r}",
                    hint=f"`conveyor models show {name}` lists its aliases",
                )
            try:
                changes = self.backend.move_alias(
                    name, alias, None, expected=current, action="remove", actor=actor, reason=reason
                )
            except StaleAliasError:
                _backoff(_attempt)
                continue
            self._emit_changes(changes)
            return changes[-1]
        raise self._contended(name, alias)

    def rollback(self, name: str, alias: str, *, actor: str, reason: str = "") -> AliasChange:
        """Move ``alias`` back to the holder before the current one, audited.

        The alias's audit log replays as a stack (``set``/``remove`` push,
        ``rollback`` pops), so repeated rollbacks keep walking back.  It needs no
        new verdict: it is the emergency path.
        """
        check_name(alias, "alias")
        for _attempt in _attempts():
            records = self.backend.history(name, alias=alias)
            stack, _problems = replay(records)
            if len(stack) < 2:
                raise ConveyorError(
                    f"alias {alias!r} of model {name!r} has no earlier holder to roll back to",
                    hint=f"`conveyor models history {name}` shows what happened to it",
                )
            moves = [r for r in records if r.action in ALIAS_ACTIONS]
            try:
                changes = self.backend.move_alias(
                    name,
                    alias,
                    stack[-2],
                    expected=stack[-1],
                    action="rollback",
                    actor=actor,
                    reason=reason or f"rollback of {alias!r}",
                    after=moves[-1].id,
                )
            except StaleAliasError:
                _backoff(_attempt)
                continue
            self._checkpoint("rollback.committed")
            self._emit_changes(changes)
            return changes[-1]
        raise self._contended(name, alias)

    def archive(self, name: str, version: int, *, actor: str, reason: str = "") -> AliasChange:
        """Mark a version archived (refused while it holds an alias), audited."""
        for _attempt in _attempts():
            mv = self.backend.get_version(name, version)
            if mv.archived:
                last = [
                    c
                    for c in self.backend.history(name, alias="archived")
                    if version in (c.from_version, c.to_version)
                ]
                return last[-1]
            if mv.aliases:
                raise ConveyorError(
                    f"{name} version {version} still holds {', '.join(mv.aliases)}: it cannot "
                    "be archived",
                    hint="move those aliases to another version first",
                )
            try:
                change = self.backend.set_archived(name, version, True, actor=actor, reason=reason)
            except StaleAliasError:
                _backoff(_attempt)
                continue  # an alias moved to it meanwhile: the check above refuses now
            self._emit_changes([change])
            return change
        raise self._contended(name, "archived")

    @staticmethod
    def _contended(name: str, alias: str) -> ConveyorError:
        return ConveyorError(
            f"alias {alias!r} of model {name!r} kept moving while this change was decided "
            f"(for {CAS_PATIENCE_SECONDS:g} s)",
            hint="another process is moving it in a loop; try again once it stops",
        )

    def promote_by_policy(
        self, name: str, version: int, *, actor: str, reason: str = ""
    ) -> dict[str, str]:
        """Apply the ``[promotion]`` rules to a newly registered version.

        ``auto`` aliases move when the evidence allows, ``approval`` aliases only
        once the version was approved, ``never`` aliases stay.  Returns, per
        alias, what happened (``promoted``, ``already``, or why not).
        """
        outcome: dict[str, str] = {}
        for alias, rule in self.policy.rules.items():
            current = self.backend.resolve(name, alias)
            if current is not None and current.version == version:
                outcome[alias] = "already"
                continue
            if rule == "never":
                outcome[alias] = "not promoted ([promotion] says never)"
                continue
            if rule == "approval" and not self.get(name, version).governance.approvals:
                outcome[alias] = (
                    f"awaiting approval: conveyor models approve {name} "
                    f"{version} --by WHO, then conveyor models promote {name} "
                    f"{version} --to {alias}"
                )
                continue
            self.set_alias(
                name,
                alias,
                version,
                actor=actor,
                reason=reason or f"[promotion] {alias} = {rule!r}",
            )
            outcome[alias] = "promoted"
        return outcome
