"""A small threaded HTTP/1.1 + TLS server with a regex router.

The standard library server is used rather than an ASGI stack because the emulation needs the raw,
undecoded request path (Conjur treats ``%2F`` and ``/`` differently in some routes) and the peer's
client certificate (CCP authenticates applications by certificate), both of which ASGI servers hide.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote

log = logging.getLogger("cyberark_ops.devserver")

MAX_BODY_BYTES = 1024 * 1024
DRAIN_LIMIT_BYTES = 16 * 1024 * 1024
_CONTENT_LENGTH = re.compile(r"[0-9]{1,19}")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")


class Headers:
    """Case-insensitive, single-valued request headers (last one wins, as Rack/IIS do)."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, str] = {}
        for name, value in items:
            self._items[name.lower()] = value

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._items.get(name.lower(), default)


@dataclass
class AuditInfo:
    """What a handler learned about a request, for the audit log. Never a secret value."""

    api: str = "dev"
    action: str = ""
    identity: str | None = None
    object: str | None = None
    reason: str | None = None
    detail: str | None = None


@dataclass
class Request:
    method: str
    raw_path: str
    """The path exactly as sent, still percent-encoded, without the query string."""
    raw_query: str
    headers: Headers
    body: bytes
    client_ip: str
    peer_cert: dict[str, Any] | None
    """The verified client certificate (``ssl.getpeercert()`` form), or None."""
    params: dict[str, str] = field(default_factory=dict)
    """Route parameters, still percent-encoded."""
    audit: AuditInfo = field(default_factory=AuditInfo)

    def query_pairs(self, *, plus_is_space: bool = True) -> list[tuple[str, str]]:
        if plus_is_space:
            return parse_qsl(self.raw_query, keep_blank_values=True)
        return [
            (unquote(k), unquote(v)) for k, _, v in (part.partition("=") for part in self.raw_query.split("&") if part)
        ]

    def query(self) -> dict[str, str]:
        return dict(self.query_pairs())

    def param(self, name: str) -> str:
        """A route parameter percent-decoded, keeping a literal ``+`` (paths are not forms)."""
        return unquote(self.params[name])


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status,
        json.dumps(payload, separators=(",", ":")).encode(),
        "application/json; charset=utf-8",
        headers or {},
    )


def text_response(status: int, text: str, content_type: str = "text/plain; charset=utf-8") -> Response:
    return Response(status, text.encode(), content_type)


def empty_response(status: int) -> Response:
    return Response(status)


Handler = Callable[[Request], Response]


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    endpoint: str
    """A stable name (``conjur.retrieve``) used by knobs and the audit log."""

    @classmethod
    def compile(cls, method: str, pattern: str, handler: Handler, endpoint: str) -> Route:
        """A route whose ``pattern`` must match the whole path."""
        return cls(method, re.compile(pattern + r"\Z"), handler, endpoint)


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """Returns (route, params, path_known). ``path_known`` tells 405 from 404."""
        path_known = False
        for route in self.routes:
            found = route.pattern.match(path)
            if found is None:
                continue
            path_known = True
            if route.method == method:
                return route, found.groupdict(), True
        return None, {}, path_known


Dispatcher = Callable[[Request], Response]


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cyberark-ops-devserver"
    sys_version = ""
    timeout = 60
    server: DevHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines go to the audit log instead; the query may carry object names only.
        pass

    def _handle(self) -> None:
        path, _, query = self.path.partition("?")
        if "#" in query:
            query = query.split("#", 1)[0]
        try:
            body = self._read_body()
        except _BodyError as exc:
            # Closed: after a body it could not frame, the next bytes are not a request boundary.
            self.close_connection = True
            self._send(text_response(exc.status, exc.message))
            return
        peer_cert = None
        if isinstance(self.connection, ssl.SSLSocket):
            peer_cert = self.connection.getpeercert() or None
        request = Request(
            method=self.command,
            raw_path=path,
            raw_query=query,
            headers=Headers(self.headers.items()),
            body=body,
            client_ip=self.client_address[0],
            peer_cert=peer_cert,
        )
        try:
            response = self.server.dispatch(request)
            if response.headers.get("X-Dev-Drop-Connection"):
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            payload = self._render(response)
        except Exception as exc:  # noqa: BLE001 - one bad request must never silence the server
            # One line, no message or traceback: either could quote request data.
            log.error("dev server failed on %s: %s", self.command, type(exc).__name__)
            payload = self._render(text_response(500, "Internal Server Error"))
        self._write(payload)

    def _read_body(self) -> bytes:
        """The body, framed strictly (RFC 9112 6.3): a message a proxy in front could frame
        differently (two lengths, a length with chunking, a negative chunk) is refused, since the
        bytes left over would otherwise run as a second, smuggled request."""
        encodings = self.headers.get_all("Transfer-Encoding") or []
        lengths = {value.strip() for value in self.headers.get_all("Content-Length") or []}
        if encodings:
            if lengths:
                raise _BodyError(400, "Transfer-Encoding together with Content-Length")
            if [value.strip().lower() for value in encodings] != ["chunked"]:
                raise _BodyError(400, "Unsupported Transfer-Encoding")
            return self._read_chunked()
        if not lengths:
            return b""
        if len(lengths) > 1:
            raise _BodyError(400, "Conflicting Content-Length headers")
        length_header = lengths.pop()
        if not _CONTENT_LENGTH.fullmatch(length_header):
            raise _BodyError(400, "Invalid Content-Length")
        length = int(length_header)
        if length > MAX_BODY_BYTES:
            if length <= DRAIN_LIMIT_BYTES:
                # Read and drop it, so the client sees the 413 rather than a reset mid-upload.
                remaining = length
                while remaining > 0:
                    remaining -= len(self.rfile.read(min(remaining, 65536))) or remaining
            raise _BodyError(413, "Request body too large")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size_line = self.rfile.readline(1024).split(b";", 1)[0].strip()
            # Hex digits only: int() also takes "-5" (and read(-5) reads to the end of the stream).
            if not _CHUNK_SIZE.fullmatch(size_line):
                raise _BodyError(400, "Invalid chunked encoding")
            size = int(size_line, 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise _BodyError(413, "Request body too large")
            chunks.append(self.rfile.read(size))
            if self.rfile.readline(16) not in (b"\r\n", b"\n"):
                raise _BodyError(400, "Invalid chunked encoding")

    def _send(self, response: Response) -> None:
        self._write(self._render(response))

    def _render(self, response: Response) -> bytes:
        reason = self.responses.get(response.status, ("",))[0]
        lines = [f"HTTP/1.1 {response.status} {reason}"]
        headers = {"Server": self.server_version}
        if response.content_type:
            headers["Content-Type"] = response.content_type
        headers.update(response.headers)
        headers["Content-Length"] = str(len(response.body))
        if self.close_connection:
            headers["Connection"] = "close"
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head if self.command == "HEAD" else head + response.body

    def _write(self, payload: bytes) -> None:
        # One write per response avoids Nagle / delayed-ACK stalls on keep-alive connections.
        self.wfile.write(payload)
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def __getattr__(self, name: str) -> Any:
        # Any other method (TRACE, PROPFIND, ...) is routed too and gets 404/405, never a 501 page.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)


class _BodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class DevHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], dispatch: Dispatcher, ssl_context: ssl.SSLContext | None) -> None:
        self.dispatch = dispatch
        self.ssl_context = ssl_context
        super().__init__(address, _RequestHandler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is not None:
            # The handshake runs later in the connection's own thread, so a slow or broken client
            # never blocks accept().
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def finish_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            request.settimeout(30)
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError) as exc:
                log.debug("TLS handshake with %s failed: %s", client_address[0], type(exc).__name__)
                return
            request.settimeout(None)
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that vanished mid-request is not the server's problem; never print tracebacks
        # that could carry request data.
        log.debug("connection from %s ended with an error", client_address[0])


class ServerThread:
    """Runs a DevHTTPServer in a background thread."""

    def __init__(self, server: DevHTTPServer) -> None:
        self.server = server
        # A short poll interval makes stop() quick; tests start and stop many servers.
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="cyberark-devserver",
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)
