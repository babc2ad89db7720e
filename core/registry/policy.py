"""Registry rules: names, reserved aliases, and the one promotion policy.

The policy is configured once, in ``[promotion]`` (profiles override it like
any section), one rule per alias::

    [promotion]
    staging = "auto"          # the pipeline's promote step moves it after a passing gate
    production = "approval"   # ... only once someone approved the version

Rules: ``auto`` (the ``promote`` step moves the alias to each new version the
evidence allows), ``approval`` (the alias moves, by the step or by hand, only
once the version was approved; ``--force --reason`` overrides, audited) and
``never`` (the step leaves it alone; ``conveyor models promote`` moves it).
Independently of the rule, ``production`` needs the version's latest
validation verdict to have passed, unless forced with a reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from attrs import Factory, frozen

from conveyor.errors import ConfigError, ConveyorError, ValidationError
from conveyor.interfaces.registry import NAME_PATTERN, ModelVersion, ValidationVerdict

#: Names an alias may not take: stages that are not aliases, and reserved words.
RESERVED_ALIASES = ("development", "archived", "latest")
#: Promotion rules an alias may have.
RULES = ("auto", "approval", "never")
#: The rules in force when ``[promotion]`` says nothing.
DEFAULT_RULES = {"staging": "auto", "production": "auto"}
#: Aliases that need a passing validation verdict, whatever their rule.
VERDICT_ALIASES = ("production",)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def check_name(value: str, what: str) -> str:
    """``value`` if it is a valid model or alias name; ConveyorError otherwise."""
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise ConveyorError(
            f"{what} {value!r} is not a valid name",
            hint="use letters, digits, '_', '.' and '-' (starting with a letter or digit), "
            "at most 128 characters",
        )
    return value


def check_alias(alias: str) -> str:
    """``alias`` if a version may take it; ConveyorError naming the fix otherwise."""
    check_name(alias, "alias")
    if alias in RESERVED_ALIASES:
        raise ConveyorError(
            f"{alias!r} cannot be used as an alias",
            hint="archive a version with `conveyor models promote NAME VERSION --to archived`"
            if alias == "archived"
            else "a version without aliases is in development; remove its aliases instead"
            if alias == "development"
            else "'latest' always means the newest version; choose another alias name",
        )
    return alias


def check_sha256(value: str) -> str:
    """The lower-case hex SHA-256, or ConveyorError."""
    sha256 = str(value).lower()
    if not _SHA256.match(sha256):
        raise ConveyorError(
            f"{value!r} is not a hex SHA-256", hint="pass the sha256 the artifact store recorded"
        )
    return sha256


@frozen(kw_only=True)
class PromotionPolicy:
    """The ``[promotion]`` rules: alias -> ``auto``, ``approval`` or ``never``.

    Attributes:
        rules: one rule per alias, in the order the ``promote`` step applies them.
    """

    rules: dict[str, str] = Factory(lambda: dict(DEFAULT_RULES))

    @classmethod
    def from_config(cls, table: Mapping[str, Any], *, where: str = "the config") -> PromotionPolicy:
        """The policy of a ``[promotion]`` table (the defaults filled in)."""
        rules = dict(DEFAULT_RULES)
        for alias, rule in table.items():
            try:
                check_alias(alias)
            except ConveyorError as exc:
                raise ConfigError(
                    f"{where}: '$.promotion.{alias}': {exc.message}", hint=exc.hint
                ) from None
            if rule not in RULES:
                raise ConfigError(
                    f"{where}: '$.promotion.{alias}' is {rule!r}, not a promotion rule",
                    hint=f"use one of: {', '.join(RULES)}",
                )
            rules[alias] = rule
        return cls(rules=rules)

    def rule(self, alias: str) -> str:
        """The rule of ``alias`` (an alias without one is moved by hand only)."""
        return self.rules.get(alias, "never")

    def evidence(
        self,
        version: ModelVersion,
        alias: str,
        verdict: ValidationVerdict | None,
        *,
        force: bool,
        reason: str,
    ) -> tuple[dict[str, Any], bool]:
        """What allows ``version`` to take ``alias``, and whether that needed ``force``.

        Raises :class:`~conveyor.errors.ValidationError` naming what is missing
        when nothing allows it and it is not forced.
        """
        name, number = version.name, version.version
        evidence: dict[str, Any] = {}
        forced = False
        if alias in VERDICT_ALIASES:
            if verdict is not None:
                evidence["validation"] = {
                    "id": verdict.id,
                    "passed": verdict.passed,
                    "at": verdict.at.isoformat(),
                    "actor": verdict.actor,
                    "run_id": verdict.run_id,
                    "summary": verdict.summary,
                }
            if verdict is None or not verdict.passed:
                if not force:
                    what = (
                        "no validation verdict"
                        if verdict is None
                        else f"a failing validation verdict ({verdict.summary or 'no summary'})"
                    )
                    raise ValidationError(
                        f"{name} version {number} has {what}: it cannot be promoted to {alias}",
                        hint="validate it first (a pipeline run records the verdict), or "
                        "force it with --force and a --reason (the force is audited)",
                    )
                forced = True
        if self.rule(alias) == "approval":
            approvals = version.governance.approvals
            if approvals:
                evidence["approvals"] = [{"by": a.by, "at": a.at.isoformat()} for a in approvals]
            elif not force:
                raise ValidationError(
                    f"{name} version {number} needs an approval before it can take {alias!r} "
                    "([promotion] says approval)",
                    hint=f"conveyor models approve {name} {number} --by WHO",
                )
            else:
                forced = True
        if forced:
            evidence["forced_reason"] = reason
        return evidence, forced
