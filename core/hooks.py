"""The one dispatcher for every hook core calls: one implementation at a time.

Core calls its hooks per implementation, never as one pluggy call, for three
reasons: a ``register`` callback is bound to the plugin that receives it; one
plugin's failure must not stop the others (pluggy aborts the whole call on the
first exception); and each failure must be attributed to the plugin that caused
it.  :func:`call_each` does this the same way for every hook:

* an implementation receives only the arguments it names (pluggy's rule, so an
  implementation may take any subset of the spec's arguments);
* the call order is pluggy's (the most recently registered plugin first);
* with ``CONVEYOR_TRACE_HOOKS=1`` every call is traced to stderr: one line per hook
  call naming the plugins it reaches (none, too), one per implementation's result;
* a ``wrapper``/``hookwrapper`` implementation is refused: there is no inner call
  for it to wrap (:func:`refuse_wrappers` runs when a plugin registers);
* a failing implementation is returned as a :class:`HookFailure` for the caller
  to handle by its own rule (skip, or turn into a finding), and reported once per
  manager, naming the plugin.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from attrs import field, frozen

from conveyor.errors import ConveyorError, PluginLoadError

if TYPE_CHECKING:
    import pluggy

    from conveyor.manager import ConveyorPluginManager


@functools.cache
def dispatched_hooks() -> frozenset[str]:
    """The hooks called through :func:`call_each`: every spec in :mod:`conveyor.hookspecs`."""
    from conveyor import hookspecs

    return frozenset(
        name
        for name, value in vars(hookspecs).items()
        if callable(value) and hasattr(value, "conveyor_spec")
    )


@frozen
class HookFailure:
    """One implementation's failure in a dispatched hook call.

    Attributes:
        plugin: the name of the plugin whose implementation raised.
        hook: the hook's name.
        error: the exception it raised.
    """

    plugin: str
    hook: str
    error: BaseException = field(eq=False)

    @property
    def message(self) -> str:
        """The error in one line, with its hint when it is a ConveyorError."""
        if isinstance(self.error, ConveyorError):
            return self.error.message + (f" ({self.error.hint})" if self.error.hint else "")
        return f"{type(self.error).__name__}: {self.error}"


def _is_wrapper(impl: pluggy.HookImpl) -> bool:
    return bool(impl.hookwrapper or getattr(impl, "wrapper", False))


def refuse_wrappers(pm: pluggy.PluginManager, plugin: Any, name: str) -> None:
    """Raise PluginLoadError when ``plugin`` implements a dispatched hook as a wrapper."""
    for caller in pm.get_hookcallers(plugin) or ():
        if caller.name not in dispatched_hooks():
            continue
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin and _is_wrapper(impl):
                raise PluginLoadError(_wrapper_message(name, caller.name), hint=_WRAPPER_HINT)


def _wrapper_message(plugin: str, hook: str) -> str:
    return (
        f"plugin {plugin!r} implements {hook} as a wrapper: Conveyor calls {hook} once "
        "per plugin, so that one plugin's failure cannot stop the others, and a wrapper "
        "would have no inner call to wrap"
    )


_WRAPPER_HINT = "implement it as a plain @conveyor.hookimpl (drop wrapper=True / hookwrapper=True)"


def call_each(
    pm: ConveyorPluginManager,
    hook: str,
    arguments: Mapping[str, Any],
    *,
    per_plugin: Callable[[str], Mapping[str, Any]] | None = None,
) -> Iterator[tuple[str, Any]]:
    """Call every implementation of ``hook``; yield ``(plugin name, result)``.

    ``arguments`` are the hook's arguments; ``per_plugin(name)`` may add arguments
    bound to the plugin being called (the ``register`` callbacks).  A failing
    implementation yields a :class:`HookFailure` as its result, after it has been
    reported (once per manager for the same plugin, hook and message).
    """
    caller = getattr(pm.hook, hook)
    trace = pm.tracing
    impls = list(reversed(caller.get_hookimpls()))
    if trace:
        names = ", ".join(impl.plugin_name for impl in impls)
        spec_args = caller.spec.argnames if caller.spec is not None else tuple(arguments)
        _trace(f"{hook}({', '.join(spec_args)}) -> [{names}]")
    for impl in impls:
        if _is_wrapper(impl):
            error = PluginLoadError(_wrapper_message(impl.plugin_name, hook), hint=_WRAPPER_HINT)
            failure = HookFailure(impl.plugin_name, hook, error)
            pm.report(failure)
            yield impl.plugin_name, failure
            continue
        available = dict(arguments)
        if per_plugin is not None:
            available.update(per_plugin(impl.plugin_name))
        kwargs = {name: available[name] for name in impl.argnames}
        try:
            result = impl.function(**kwargs)
        except Exception as exc:
            if trace:
                _trace(f"{hook} <- {impl.plugin_name} raised {exc!r}")
            failure = HookFailure(impl.plugin_name, hook, exc)
            pm.report(failure)
            yield impl.plugin_name, failure
            continue
        if trace:
            _trace(f"{hook} <- {impl.plugin_name} returned {_short(result)}")
        yield impl.plugin_name, result


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _trace(line: str) -> None:
    print(f"[conveyor hook] {line}", file=sys.stderr)


def report_to_stderr(failure: HookFailure) -> None:
    """The default report: one warning line on stderr naming the plugin and hook."""
    print(
        f"warning: plugin {failure.plugin!r} failed in {failure.hook}: {failure.message}",
        file=sys.stderr,
    )


__all__ = ["HookFailure", "call_each", "dispatched_hooks", "refuse_wrappers"]
