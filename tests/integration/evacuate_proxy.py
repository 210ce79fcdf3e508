"""A loopback HTTP proxy in front of nova-api, for fault and latency tests of NovaEvacuate.

- `latency`: seconds added to every request (real clouds under load answer slowly);
- `fault`: a callable (method, path) -> None | int (answer with that HTTP status
  without forwarding) | "drop" (forward, then close without answering: the
  caller cannot know whether Nova acted) | "refuse" (close without forwarding).

Counts every request by method and path so that tests can check what was sent.
"""
from __future__ import annotations

import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, List, Optional, Tuple, Union
from urllib.parse import urlsplit

HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
       "transfer-encoding", "upgrade", "content-length"}

Fault = Callable[[str, str], Optional[Union[int, str]]]


class NovaProxy:
    def __init__(self, upstream: str, latency: float = 0.0, fault: Optional[Fault] = None) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.upstream_path = parts.path.rstrip("/")
        self.latency = latency
        self.fault = fault
        self.log: List[Tuple[float, str, str, int]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _any(self):
                proxy._handle(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.upstream_path}"

    def __enter__(self) -> "NovaProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self, method: str, contains: str = "") -> int:
        with self._lock:
            return sum(1 for _, m, p, _ in self.log if m == method and contains in p)

    def _record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.log.append((time.time(), method, path, status))

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else None
        if self.latency:
            time.sleep(self.latency)
        action = self.fault(req.command, req.path) if self.fault else None
        if action == "refuse":
            self._record(req.command, req.path, -1)
            req.close_connection = True
            return
        if isinstance(action, int):
            payload = b'{"computeFault": {"code": %d, "message": "injected by the test proxy"}}' % action
            req.send_response(action)
            req.send_header("Content-Type", "application/json")
            req.send_header("Content-Length", str(len(payload)))
            req.end_headers()
            req.wfile.write(payload)
            self._record(req.command, req.path, action)
            return
        headers = {k: v for k, v in req.headers.items() if k.lower() not in HOP}
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=120)
        try:
            conn.request(req.command, req.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except OSError:
            self._record(req.command, req.path, -2)
            req.close_connection = True
            return
        finally:
            conn.close()
        self._record(req.command, req.path, resp.status)
        if action == "drop":  # Nova acted, the caller never hears of it
            req.close_connection = True
            return
        req.send_response(resp.status)
        for key, value in resp.getheaders():
            if key.lower() not in HOP:
                req.send_header(key, value)
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)
