"""A swap the server refuses is reported through the ``on_model_swap_failed`` hook."""

from __future__ import annotations

import time

from conveyor import hookimpl
from conveyor.events import ModelSwapFailed

from .conftest import HTTP_ALIAS, HTTP_MODEL, register_rich_model


class Listener:
    def __init__(self) -> None:
        self.events: list[ModelSwapFailed] = []

    @hookimpl
    def on_model_swap_failed(self, app, event):
        self.events.append(event)


def test_a_corrupt_version_fires_one_swap_failed_event_and_the_old_one_serves(
    start_http, conveyor_app, register_plugin
):
    listener = Listener()
    register_plugin(listener, "swap-listener")
    server = start_http()
    serving = server.slot.current.version
    bad = register_rich_model(conveyor_app, seed=9, corrupt=True)
    deadline = time.monotonic() + 30
    while not listener.events and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # more polls: the same refused version is not reported twice
    assert len(listener.events) == 1
    event = listener.events[0]
    assert (event.model, event.alias, event.version, event.serving) == (
        HTTP_MODEL,
        HTTP_ALIAS,
        bad.version,
        serving,
    )
    assert "sha-256" in event.error.lower() or "hash" in event.error.lower(), event.error
    assert server.slot.current.version == serving
