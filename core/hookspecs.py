"""Every hook Conveyor calls.  Plugins implement them with ``@conveyor.hookimpl``.

Hooks are collect-all: every plugin's implementation runs and none of them wins.
Backends are never chosen by hook order: each ``register_<kind>s`` hook hands the
plugin a ``register`` callback, core collects the registrations into a catalogue,
and config chooses one entry by name or URL scheme.

``docs/plugins/hooks.md`` has a heading for every hook here (a test keeps it so).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from conveyor import hookspec

if TYPE_CHECKING:
    import click

    from conveyor.app import Conveyor
    from conveyor.backends import Register
    from conveyor.checks import DataCheckContext, Finding, ModelCheckContext
    from conveyor.events import (
        AliasChanged,
        DriftDetected,
        ModelRegistered,
        ModelSwapFailed,
        PerformanceDecayed,
        RunFinished,
        RunStarted,
        StepFinished,
        TriggerFired,
    )
    from conveyor.materializers import Materializer

# -- backends -----------------------------------------------------------------------
# Each hook gets ``register`` (:class:`conveyor.backends.Register`):
# ``register(name, *, factory, config_class, schemes=(), extras=(), description="")``.
# ``factory`` is a "module:attr" string imported on first use; ``config_class`` the
# attrs class of the backend's config section, or its "module:Class" name (imported
# only when the backend is configured, so start-up imports no config classes).


@hookspec
def register_artifact_stores(register: Register) -> None:
    """Register artifact stores (:class:`conveyor.artifacts.ArtifactStore`).

    An artifact store keeps bytes and tables under keys, atomically, with a SHA-256
    recorded at write and verified at read.  Collect-all.
    """


@hookspec
def register_metadata_stores(register: Register) -> None:
    """Register metadata stores (:class:`conveyor.interfaces.MetadataStore`).

    A metadata store records pipelines, runs, steps, artifacts, metrics, trigger
    events and the lineage between them.  Collect-all.
    """


@hookspec
def register_model_registries(register: Register) -> None:
    """Register model-registry backends (:class:`conveyor.interfaces.RegistryBackend`).

    A backend stores model versions, aliases, verdicts, approvals and an append-only
    audit log (an alias moves by one atomic compare-and-set); core's
    ``conveyor.registry.ModelRegistry`` enforces every rule over it.  Collect-all.
    """


@hookspec
def register_feature_stores(register: Register) -> None:
    """Register feature stores (:class:`conveyor.interfaces.FeatureStore`).

    A feature store keeps feature-view definitions and their offline data, answers
    point-in-time-correct historical queries and materializes to an online store.
    Collect-all.
    """


@hookspec
def register_online_stores(register: Register) -> None:
    """Register online stores (:class:`conveyor.interfaces.OnlineStore`).

    An online store holds the latest feature values per entity key for low-latency
    lookups at serving time.  Collect-all.
    """


@hookspec
def register_orchestrators(register: Register) -> None:
    """Register orchestrators (:class:`conveyor.interfaces.Orchestrator`).

    An orchestrator runs a pipeline's steps in dependency order with caching and
    retries, recording everything in the metadata store.  Collect-all.
    """


@hookspec
def register_triggers(register: Register) -> None:
    """Register trigger kinds (:class:`conveyor.interfaces.Trigger`).

    A trigger decides, from the time and its last event, whether a retraining
    should run now, and says why; core applies the ``[triggers.<name>]`` binding
    (enabled, cooldown, single flight) and records the outcome.  Collect-all.
    """


@hookspec
def register_servers(register: Register) -> None:
    """Register model servers (:class:`conveyor.interfaces.Server`).

    A server serves the model the ``[server]`` alias points at over a protocol,
    follows the alias when it moves and logs predictions; core reads the shared
    settings and refuses a public host without a token.  Collect-all.
    """


# -- materializers -------------------------------------------------------------------


@hookspec
def register_materializers(register: Callable[[Materializer], None]) -> None:
    """Register how step outputs of some type are stored and read back.

    Call ``register(materializer)`` with a :class:`conveyor.materializers.Materializer`
    (a name stored with each artifact, the type it stores, ``save`` and ``load``).
    Two plugins registering one name, or one type, is a PluginConflictError; a
    stored output whose materializer's plugin is disabled cannot be read until it
    is enabled again.  Collect-all.
    """


# -- CLI ----------------------------------------------------------------------------


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add click commands or groups to the ``conveyor`` command line.

    Use ``@cli.command()`` / ``@cli.group()``.  A name that clashes with a core
    command is a PluginConflictError.  Keep heavy imports inside the command body so
    ``conveyor --help`` stays fast.  Collect-all.
    """


# -- lifecycle events (collect-all; return values are ignored) -----------------------


@hookspec
def on_run_started(app: Conveyor, event: RunStarted) -> None:
    """A pipeline run started."""


@hookspec
def on_run_finished(app: Conveyor, event: RunFinished) -> None:
    """A pipeline run finished (succeeded, failed or was refused by a gate)."""


@hookspec
def on_step_finished(app: Conveyor, event: StepFinished) -> None:
    """One step of a pipeline run finished, ran from cache, or failed."""


@hookspec
def on_model_registered(app: Conveyor, event: ModelRegistered) -> None:
    """A new model version was registered."""


@hookspec
def on_alias_changed(app: Conveyor, event: AliasChanged) -> None:
    """A model alias or stage (``staging``, ``production``, ...) moved."""


@hookspec
def on_trigger_fired(app: Conveyor, event: TriggerFired) -> None:
    """A trigger decided that a retraining should run."""


@hookspec
def on_drift_detected(app: Conveyor, event: DriftDetected) -> None:
    """Monitoring detected drift between live inputs and the training profile."""


@hookspec
def on_model_swap_failed(app: Conveyor, event: ModelSwapFailed) -> None:
    """A model server did not swap in the version its alias moved to (it failed to
    load, verify or smoke-predict); the previous version keeps serving."""


@hookspec
def on_performance_decayed(app: Conveyor, event: PerformanceDecayed) -> None:
    """Monitoring found a model's realized or estimated metric decayed past its tolerance."""


# -- checks (collect-all; every finding of severity "error" blocks) -------------------


@hookspec
def check_data(app: Conveyor, context: DataCheckContext) -> Iterable[Finding] | None:
    """Extra data validations run beside the built-in schema and statistics checks.

    Return findings (or ``None``); any finding of severity ``error`` blocks the run.
    """


@hookspec
def check_model(app: Conveyor, context: ModelCheckContext) -> Iterable[Finding] | None:
    """Extra model gates run beside the built-in gate against the production model.

    Return findings (or ``None``); any finding of severity ``error`` refuses the
    candidate's promotion.
    """
