"""Audit replay: the append-only log must replay to the current alias holders."""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.checks import Finding
from conveyor.interfaces.registry import ALIAS_ACTIONS, AliasChange, AuditSnapshot


def replay(records: Sequence[AliasChange]) -> tuple[list[int | None], list[str]]:
    """Replay one alias's audit records: the stack of holders, and any inconsistency.

    ``set`` and ``remove`` push the new holder; ``rollback`` pops back to the one
    before.  Each record's ``from_version`` must equal the holder before it.
    """
    stack: list[int | None] = []
    problems: list[str] = []
    holder: int | None = None
    for record in records:
        if record.action not in ALIAS_ACTIONS:
            continue
        if record.from_version != holder:
            problems.append(
                f"record {record.id} moves {record.alias!r} from "
                f"v{record.from_version} but the holder was v{holder}"
            )
        if record.action == "rollback":
            if len(stack) >= 2 and stack[-2] == record.to_version:
                stack.pop()
            else:
                problems.append(
                    f"record {record.id} rolls back to v{record.to_version}, "
                    "which was not the previous holder"
                )
                stack.append(record.to_version)
        else:
            stack.append(record.to_version)
        holder = record.to_version
    return stack, problems


def _check_audit(
    name: str,
    records: list[AliasChange],
    holders: dict[tuple[str, str], tuple[int, int]],
    archived: set[tuple[str, int]],
) -> list[Finding]:
    findings: list[Finding] = []
    by_alias: dict[str, list[AliasChange]] = {}
    flags: dict[int, bool] = {}
    for record in records:
        if record.action in ALIAS_ACTIONS:
            by_alias.setdefault(record.alias, []).append(record)
        elif record.action == "archive" and record.to_version is not None:
            flags[record.to_version] = True
        elif record.action == "unarchive" and record.from_version is not None:
            flags[record.from_version] = False
    aliases = {a for (n, a) in holders if n == name} | set(by_alias)
    for alias in sorted(aliases):
        chain = by_alias.get(alias, [])
        stack, problems = replay(chain)
        for problem in problems:
            findings.append(
                Finding(check="registry.audit_replay", subject=f"{name}/{alias}", message=problem)
            )
        replayed = stack[-1] if stack else None
        current, audit_id = holders.get((name, alias), (None, None))
        if replayed != current:
            findings.append(
                Finding(
                    check="registry.audit_replay",
                    subject=f"{name}/{alias}",
                    message=f"the audit log says {alias!r} of {name!r} is held by v{replayed}, "
                    f"but the alias points at v{current}",
                )
            )
        elif current is not None and chain and audit_id != chain[-1].id:
            findings.append(
                Finding(
                    check="registry.audit_replay",
                    subject=f"{name}/{alias}",
                    message=f"alias {alias!r} of {name!r} was set by audit record {audit_id}, "
                    f"but the last record for it is {chain[-1].id}",
                )
            )
    replayed_archived = {(name, v) for v, flag in flags.items() if flag}
    stored = {(n, v) for n, v in archived if n == name}
    for n, v in sorted(replayed_archived ^ stored):
        findings.append(
            Finding(
                check="registry.audit_replay",
                subject=f"{n}:{v}",
                message=f"{n} v{v} is {'not ' if (n, v) in replayed_archived else ''}archived, "
                "but the audit log says otherwise",
            )
        )
    return findings


def check_audit_log(snapshot: AuditSnapshot) -> list[Finding]:
    """Every way the audit log disagrees with the holders and archive flags."""
    audit: dict[str, list[AliasChange]] = {}
    for change in snapshot.changes:
        audit.setdefault(change.model, []).append(change)
    models = sorted(
        {n for n, _v, _u, _s in snapshot.artifacts} | set(audit) | {n for n, _a in snapshot.holders}
    )
    findings: list[Finding] = []
    for name in models:
        findings.extend(
            _check_audit(name, audit.get(name, []), snapshot.holders, set(snapshot.archived))
        )
    for (name, alias), (version, _aid) in snapshot.holders.items():
        if name not in audit:
            findings.append(
                Finding(
                    check="registry.audit",
                    subject=f"{name}/{alias}",
                    message=f"alias {alias!r} -> v{version} has no audit record",
                )
            )
    return findings


def check_numbering(name: str, numbers: Sequence[int], latest: int) -> Finding | None:
    """A finding when the versions of ``name`` are not exactly ``1..latest``.

    For backends' :meth:`~conveyor.interfaces.RegistryBackend.check_storage`.
    """
    if list(numbers) == list(range(1, latest + 1)):
        return None
    shown = ", ".join(str(n) for n in numbers[:20])
    shown = shown + (", ..." if len(numbers) > 20 else "") if numbers else "none"
    return Finding(
        check="registry.versions",
        subject=name,
        message=f"versions of {name!r} are not exactly 1..{latest}: {shown}",
    )
