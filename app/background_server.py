"""A WSGI app served over real HTTP on 127.0.0.1 from a thread of this process (tests and benchmarks).

waitress, as `./qiwang serve` uses, on a free port: clients go through sockets, HTTP parsing and
the server's threads as they do in production, while the test or benchmark keeps the server in
its own process (no start-up wait, its memory measurable).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

WsgiApp = Callable[..., Any]


class BackgroundServer:
    """`make_app(url)` served by waitress on 127.0.0.1, a free port, in a daemon thread.

    Parameters
    ----------
    make_app
        Builds the WSGI app from the server's own base URL (``http://127.0.0.1:PORT``), which is
        known only once the socket is bound: an app that writes absolute links needs it.
    threads
        waitress worker threads.
    """

    def __init__(self, make_app: Callable[[str], WsgiApp], threads: int = 6) -> None:
        import waitress

        app_holder: dict[str, WsgiApp] = {}
        self.server = waitress.create_server(lambda env, start: app_holder["app"](env, start),
                                             host="127.0.0.1", port=0, threads=threads)
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self.app = app_holder["app"] = make_app(self.url)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop listening and end the server's loop (requests in flight are not waited for).

        The sockets are closed by the loop's own thread (through waitress's trigger): closed from
        here, under the loop's poll, they would make it fail on a bad file descriptor."""
        server = self.server

        def stop() -> None:
            for channel in list(server._map.values()):   # the listener, open connections, the trigger
                channel.close()

        server.trigger.pull_trigger(stop)
        self.thread.join(timeout=5)
        server.task_dispatcher.set_thread_count(0)   # idle workers end; busy ones after their request


class LiveServer(BackgroundServer):
    """The Qiwang web app (app.web.create_app) for `database_url`, asynchronous job results in `jobs_dir`."""

    def __init__(self, database_url: str, jobs_dir: Path) -> None:
        from app.web import create_app

        super().__init__(lambda url: create_app(database_url, url, jobs_dir))
