"""``DevServer``: the dev server as a context manager, for tests and the CLI alike."""

from __future__ import annotations

import ipaddress
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from .api import EmulatedApi
from .app import DevApp
from .clock import Clock
from .errors import SeedError
from .http import DevHTTPServer, ServerThread
from .seed import load_seed
from .tls import CLIENT_CERT_SUBJECT, TLSFiles, ensure_tls_files


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class DevServer:
    """A running emulation of Conjur, CCP and PVWA (and of any API passed in ``apis``).

    Use it as ``with DevServer() as server:``; ``server.info()`` gives the URL, CA and client
    certificate paths and the admin token, and ``server.app`` gives direct access to state, the
    clock, knobs and the audit log. ``apis`` replaces the registered APIs, e.g.
    ``DevServer(seed, apis={**DEFAULT_APIS, "acme": AcmeApi})`` adds one (see ``api.py``).
    """

    def __init__(
        self,
        seed: str | Path | dict[str, Any] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = True,
        state_dir: str | Path | None = None,
        allow_remote: bool = False,
        admin_token: str | None = None,
        clock: Clock | None = None,
        apis: Mapping[str, EmulatedApi] | None = None,
    ) -> None:
        if not allow_remote and not is_loopback(host):
            raise SeedError("--host", f"{host} is not a loopback address; pass allow_remote / --allow-remote")
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="cyberark-devserver-")
            state_dir = self._tmp.name
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.tls_files: TLSFiles | None = ensure_tls_files(self.state_dir) if tls else None
        self.app = DevApp(
            load_seed(seed, apis), state_dir=self.state_dir, admin_token=admin_token, clock=clock, apis=apis
        )
        context = self.tls_files.server_context() if self.tls_files else None
        self._httpd = DevHTTPServer((host, port), self.app.dispatch, context)
        self._thread: ServerThread | None = None
        self.host = host

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        scheme = "https" if self.tls_files else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    def info(self) -> dict[str, Any]:
        tls = self.tls_files
        return {
            "url": self.url,
            "ca_cert": str(tls.ca_cert) if tls else None,
            "client_cert": str(tls.client_cert) if tls else None,
            "client_key": str(tls.client_key) if tls else None,
            "client_cert_subject": CLIENT_CERT_SUBJECT if tls else None,
            "conjur_account": self.app.conjur.account if "conjur" in self.app.models else None,
            "admin_token": self.app.admin_token,
            "state_dir": str(self.state_dir),
            "audit_log": str(self.state_dir / "audit.jsonl"),
        }

    def start(self) -> DevServer:
        if self._thread is None:
            self._thread = ServerThread(self._httpd)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
            self._thread = None
        else:
            self._httpd.server_close()
        self.app.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> DevServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
