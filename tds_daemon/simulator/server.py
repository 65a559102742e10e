"""Serving the simulator: one process, a thread per connection (state lives in this process).

wsgiref's server with ``ThreadingMixIn``: enough for a test stand-in, concurrent, no dependency.
The ``refuse`` fault is applied here, below HTTP: the request line is read and, unless it is for
the control API, the connection is reset without an answer. SIGTERM and SIGINT stop it cleanly.
"""

from __future__ import annotations

import signal
import socket
import socketserver
import struct
import sys
import threading
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

from tds_daemon.simulator.app import create_app
from tds_daemon.simulator.sim import APPS, Simulator
from tds_daemon.wake import Wake

CONTROL_PREFIX = "/_sim/"


class Handler(WSGIRequestHandler):
    server: SimServer

    def handle(self) -> None:
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline, self.request_version, self.command = "", "", ""
            self.send_error(414)
            return
        if not self.parse_request():
            return
        if self.server.sim.faults.snapshot().down == "refuse" and not self.path.startswith(CONTROL_PREFIX):
            self.server.sim.stats.inc("down", "refused")
            self.close_connection = True
            # SO_LINGER 0: close() sends RST, the client sees a reset, not an answer.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        handler = ServerHandler(self.rfile, self.wfile, self.get_stderr(), self.get_environ(), multithread=True)
        handler.request_handler = self
        handler.run(self.server.get_app())

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        if self.server.sim.settings.verbose:
            sys.stderr.write(f"tds-simulator: {self.address_string()} {format % args}\n")


class SimServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], sim: Simulator):
        self.sim = sim
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, Handler)


def make_server(sim: Simulator, host: str, port: int) -> SimServer:
    server = SimServer((host, port), sim)
    server.set_app(create_app(sim))
    return server


def banner(sim: Simulator, base: str) -> str:
    s = sim.settings
    counts = ", ".join(f"{e}={n}" for e, n in s.volumes().items())
    lines = [f"tds simulator listening on {base} (seed {s.seed}, scale {s.scale})",
             f"  accounts (OAuth): {base}/oauth/v2/token",
             *(f"  {app:<9} API:   {base}{prefix}" for app, prefix in APPS.items()),
             f"  control:          {base}/_sim/  (info, stats, faults, reset, objects, webhooks/fire)",
             f"  credentials: client_id={s.client_id} client_secret={s.client_secret} "
             f"refresh_token={s.refresh_token} organization_id={s.organization_id}",
             f"  limits: {sim.limiter.per_minute or 'no'} requests/min per app, "
             f"{sim.limiter.per_day or 'no'} requests/day and {sim.limiter.max_concurrency or 'no'} in flight "
             f"per organization, {s.refresh_limit or 'no'} token refreshes per {int(s.refresh_window_s)} s",
             f"  objects: {counts}"]
    return "\n".join(lines)


def serve(sim: Simulator, host: str, port: int) -> int:
    """Serve until SIGTERM/SIGINT. OSError when the address cannot be bound."""
    server = make_server(sim, host, port)
    bound_host, bound_port = server.server_address[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    print(banner(sim, f"http://{shown}:{bound_port}"), flush=True)
    stop = Wake()  # set by the signal handler: a threading.Event there can deadlock the process
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="tds-simulator",
                              daemon=True)
    thread.start()
    try:
        while not stop.wait(1.0):
            if not thread.is_alive():
                return 1
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    print("tds simulator stopped", flush=True)
    return 0
