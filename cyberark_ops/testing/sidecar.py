"""Plays CyberArk's Kubernetes authenticator sidecar in tests: keeps a Conjur access token fresh in a file.

The real sidecar authenticates the pod and rewrites ``/run/conjur/access-token`` before the token
expires; applications (``auth_method: access_token_file``) only read the file. This one
authenticates with an API key over plain ``requests``, on purpose independent of the client layer
it exercises.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import requests


class ConjurTokenSidecar:
    def __init__(
        self,
        *,
        url: str,
        account: str,
        login: str,
        api_key: str,
        path: Path,
        ca_cert: str,
        refresh_every: float = 60.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.account = account
        self.login = login
        self._api_key = api_key
        self.path = path
        self.refresh_every = refresh_every
        self.writes = 0
        self._session = requests.Session()
        self._session.trust_env = False
        self._session.verify = ca_cert
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"ConjurTokenSidecar(login={self.login!r}, path={str(self.path)!r})"

    def refresh(self) -> None:
        """Authenticates now and replaces the file atomically (readers never see half a token)."""
        response = self._session.post(
            f"{self.url}/authn/{quote(self.account, safe='')}/{quote(self.login, safe='')}/authenticate",
            data=self._api_key.encode(),
            headers={"Content-Type": "text/plain"},
            timeout=10,
        )
        response.raise_for_status()
        partial = self.path.with_suffix(".partial")
        partial.write_bytes(response.content)
        os.chmod(partial, 0o600)
        partial.replace(self.path)
        self.writes += 1

    def start(self) -> ConjurTokenSidecar:
        self.refresh()
        self._thread = threading.Thread(target=self._loop, name="conjur-token-sidecar", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.refresh_every):
            try:
                self.refresh()
            except requests.RequestException:
                continue  # as the real sidecar does: try again at the next interval

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        self._session.close()

    def __enter__(self) -> ConjurTokenSidecar:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
