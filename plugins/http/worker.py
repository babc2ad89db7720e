"""One worker process of a multi-process ``http`` server (started by the server).

``python -m conveyor.plugins.http.worker FD [METRICS_DIR]`` serves on the inherited
listening socket ``FD`` (sharing its metrics through ``METRICS_DIR``) with the config
from the environment (``CONVEYOR_CONFIG``, ``CONVEYOR_SERVER__*``), prints the ready
line once the model is loaded, and drains and exits on SIGTERM.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
from typing import cast


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    from conveyor.app import Conveyor
    from conveyor.config import Config, add_to_path
    from conveyor.errors import ConveyorError
    from conveyor.manager import make_plugin_manager
    from conveyor.plugins.http.server import READY_LINE, HttpServer

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sock = socket.socket(fileno=int(args[0]))
    try:
        config = Config.load()
        add_to_path(config.root)
        app = Conveyor(config=config, pm=make_plugin_manager(config.plugin_selection()))
        server = cast(HttpServer, app.server)  # HttpServer spawned this worker
        server.start_on(sock, metrics_dir=args[1] if len(args) > 1 else None)
    except ConveyorError as exc:
        print(
            f"Error: {exc.message}" + (f"\nHint: {exc.hint}" if exc.hint else ""), file=sys.stderr
        )
        return 1
    from conveyor.server import freeze_startup_objects

    freeze_startup_objects()
    print(READY_LINE, flush=True)
    stop.wait()
    server.stop()
    app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
