"""TLS for every client: the ``SSLContext`` built from a ``TransportConfig``, and the requests
adapter that hands that context to urllib3.

The context (CA store, client certificate) is built once per process, settings and file
versions, and the adapter ignores requests' per-request ``verify``/``cert`` handling, so neither
``REQUESTS_CA_BUNDLE`` nor a per-request argument can swap the configured CA or rebuild a context.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter

from .errors import ConfigurationError
from .untrusted import PEM_FILE_CAP, read_regular_file, shown

if TYPE_CHECKING:
    from .transport_config import TransportConfig


def _key_password(password: str | None) -> Callable[[], str]:
    # Always a callback: without one OpenSSL would prompt on the terminal for an encrypted key.
    return lambda: password or ""


def _mtime(path: str | None) -> float:
    try:
        return os.stat(path).st_mtime if path else 0.0
    except OSError:
        return 0.0


_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]*-----END CERTIFICATE-----")


def _pem_certificates(ca_bundle: str) -> str:
    """The PEM certificates of ``ca_bundle`` as ASCII (bundles may hold UTF-8 comments, which
    ``cadata`` refuses), empty if it holds none; ``ConfigurationError`` if it cannot be read."""
    data = read_regular_file(ca_bundle, "ca_bundle", cap=PEM_FILE_CAP)
    return b"\n".join(_PEM_CERTIFICATE.findall(data)).decode("ascii")


@lru_cache(maxsize=32)
def _ssl_context(
    verify: bool,
    ca_bundle: str | None,
    client_cert: str | None,
    client_key: str | None,
    client_key_password: str | None,
    _versions: tuple[float, float, float],
) -> ssl.SSLContext:
    """Built once per settings and file versions: loading the system store alone costs ~18 ms."""
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        # Read by the one bounded reader, not by OpenSSL (cafile= would block on a FIFO and read
        # /dev/zero until memory runs out).
        cadata = None if ca_bundle is None or os.path.isdir(ca_bundle) else _pem_certificates(ca_bundle)
        try:
            if ca_bundle is None:
                context = ssl.create_default_context()
            elif cadata is None:
                context = ssl.create_default_context(capath=ca_bundle)
            elif not cadata:
                raise ValueError("no PEM certificate")
            else:
                context = ssl.create_default_context(cadata=cadata)
        except (OSError, ssl.SSLError, ValueError):
            raise ConfigurationError(
                f"ca_bundle: {shown(ca_bundle)} could not be loaded as PEM CA certificates", field="ca_bundle"
            ) from None
    if client_cert is not None:
        # OpenSSL reads these itself (load_cert_chain takes paths only): checked first as any file is.
        read_regular_file(client_cert, "client_cert", cap=PEM_FILE_CAP)
        if client_key is not None:
            read_regular_file(client_key, "client_key", cap=PEM_FILE_CAP)
        try:
            context.load_cert_chain(client_cert, client_key, password=_key_password(client_key_password))
        except (OSError, ssl.SSLError):
            raise ConfigurationError(
                f"client_cert: could not load the client certificate {client_cert!r} with key "
                f"{client_key or client_cert!r} (PEM, matching pair, key passphrase in client_key_password)",
                field="client_cert",
            ) from None
    context.set_alpn_protocols(["http/1.1"])
    return context


def build_ssl_context(config: TransportConfig) -> ssl.SSLContext:
    """The (cached) context for ``config``; rebuilt when a CA, certificate or key file changes."""
    versions = (_mtime(config.ca_bundle), _mtime(config.client_cert), _mtime(config.client_key))
    return _ssl_context(
        config.verify, config.ca_bundle, config.client_cert, config.client_key, config.client_key_password, versions
    )


class ContextAdapter(HTTPAdapter):
    """Hands urllib3 our prebuilt context and ignores requests' per-request ``verify``/``cert``."""

    def __init__(self, context: ssl.SSLContext, pool_maxsize: int) -> None:
        self._context = context
        super().__init__(pool_connections=4, pool_maxsize=pool_maxsize, max_retries=0)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        pool_kwargs["ssl_context"] = self._context
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        # Through a proxy, the tunnelled TLS to the server must use the same context.
        proxy_kwargs.setdefault("ssl_context", self._context)
        return super().proxy_manager_for(proxy, **proxy_kwargs)

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> Any:  # requests' TypedDicts exist only in its stubs
        host_params, _ = super().build_connection_pool_key_attributes(request, verify, cert)
        return host_params, {"ssl_context": self._context}

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        conn.cert_reqs = "CERT_NONE" if self._context.verify_mode == ssl.CERT_NONE else "CERT_REQUIRED"


def exception_chain(exc: BaseException) -> list[BaseException]:
    """The nested causes requests/urllib3 wrap (``.reason``, ``args[0]``, ``__cause__``)."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 20:
        current = todo.pop()
        if any(current is s for s in seen):
            continue
        seen.append(current)
        for nested in (
            getattr(current, "reason", None),
            current.__cause__,
            current.__context__,
            *[a for a in current.args if isinstance(a, BaseException)],
        ):
            if isinstance(nested, BaseException):
                todo.append(nested)
    return seen


def is_cert_verify_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (however deeply wrapped) is a failed server certificate verification."""
    return any(isinstance(e, ssl.SSLCertVerificationError) for e in exception_chain(exc))


__all__ = ["ContextAdapter", "build_ssl_context", "exception_chain", "is_cert_verify_failure"]
