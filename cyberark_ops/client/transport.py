"""The one request path shared by the Conjur, CCP and PVWA clients.

Everything that is the same for the three APIs lives here, once: TLS and connection reuse,
timeouts, retries with backoff, ``Retry-After``, the total deadline, the observer events, and the
mapping of HTTP answers to typed errors. API modules describe *what* to send (a ``Call``) and
never touch ``requests``.

Performance: a warm call costs one keep-alive request. The ``SSLContext`` (CA store, client
certificate) is built once per process and settings, and the session's adapter hands that
context to urllib3 directly, so neither ``REQUESTS_CA_BUNDLE`` nor per-request ``verify``
handling can swap the configured CA or rebuild a context.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Generator, Mapping
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from .config import TransportConfig, validate_base_url
from .errors import (
    AmbiguousQuery,
    AuthenticationFailed,
    ConfigurationError,
    CyberArkError,
    Forbidden,
    InvalidResponse,
    NotFound,
    PasswordChangeInProgress,
    RateLimited,
    Unavailable,
)
from .pacing import pacer_for

log = logging.getLogger("cyberark_ops.client")

EventCallback = Callable[[str, dict[str, "str | float"]], None]
"""``on_event(name, tags)``: ``request``, ``retry``, ``rate_limited``, ``token_renewal``, ``error``."""

API_NAMES = {"conjur": "Conjur", "ccp": "CCP", "pvwa": "PVWA"}
USER_AGENT = "cyberark-ops/0.1"
SERVER_MESSAGE_MAX = 300

# Error codes whose meaning is more precise than their HTTP status: (class, retryable, hint).
_CODE_TABLE: dict[str, tuple[type[CyberArkError], bool, str]] = {
    "APPAP004E": (
        NotFound,
        False,
        "Check the Safe / Folder / Object in the query, and that both the Credential Provider and the "
        "AppID are members of the safe with Retrieve rights.",
    ),
    "APPAP306E": (
        Forbidden,
        False,
        "The AppID failed its authentication checks: check the AppID's allowed machines and the client "
        "certificate (client_cert / client_key) it expects.",
    ),
    "APPAP008E": (
        Forbidden,
        False,
        "The Provider or application user is not set up for this AppID: check the AppID's allowed machines "
        "/ certificate and the Provider user.",
    ),
    "APPAP227E": (
        AmbiguousQuery,
        False,
        "The query matches several accounts; add Object (or a narrower Query).",
    ),
    "APPAP228E": (
        AmbiguousQuery,
        False,
        "The query matches several accounts; add Object (or a narrower Query).",
    ),
    "APPAP229E": (
        AmbiguousQuery,
        False,
        "The query matches several accounts; add Object (or a narrower Query).",
    ),
    "AIMWS030E": (ConfigurationError, False, "CCP rejected the query format; check the reference's keys."),
    "AIMWS031E": (ConfigurationError, False, "CCP says the AppID parameter is missing; check app_id."),
    "APPAP007E": (Unavailable, True, "CCP could not reach the Vault; retry later or check the Vault."),
    "APPAP282E": (
        PasswordChangeInProgress,
        False,
        "The CPM is changing this password right now; retry after the change completes.",
    ),
    "PASWS006E": (
        AuthenticationFailed,
        False,
        "The PVWA session token is missing, invalid or expired (behind a load balancer, check stickiness).",
    ),
    "PASWS013E": (
        AuthenticationFailed,
        False,
        "PVWA rejected the logon; check the username, password and auth type.",
    ),
    "PASWS041E": (Forbidden, False, "The PVWA user lacks the safe permission for this action."),
    "ITATS127E": (
        AuthenticationFailed,
        False,
        "The Vault user is suspended or locked (or the account is checked out); ask the Vault administrator.",
    ),
}

_STATUS_TABLE: dict[int, type[CyberArkError]] = {
    400: ConfigurationError,
    401: AuthenticationFailed,
    403: Forbidden,
    404: NotFound,
    406: InvalidResponse,
    422: ConfigurationError,
    413: ConfigurationError,
    414: ConfigurationError,
    429: RateLimited,
}

_STATUS_HINTS: dict[int, str] = {
    401: "Check the credentials configured for this API.",
    403: "Check the identity's privileges on this object.",
    404: "Check the id / name, and that the identity may see the object.",
    429: "The server is rate limiting; lower concurrency or raise the limit.",
}


# Hints for a call sent through an auth flow, used when the call brings none of its own.
_AFTER_REAUTH_HINTS: dict[int, str] = {
    401: "The server rejected a freshly obtained token too: check that the identity still exists, is not "
    "revoked and may use this API.",
}


class Call:
    """One logical request: what to send, and how to describe it in errors and metrics.

    ``path`` is already percent-encoded by the API module and ``query`` is a pre-encoded query
    string, so that encoding decisions stay with the code that knows the API's rules.
    """

    __slots__ = (
        "action",
        "base",
        "body",
        "headers",
        "hints",
        "idempotent",
        "method",
        "path",
        "query",
        "status_errors",
        "target",
    )

    def __init__(
        self,
        method: str,
        path: str,
        *,
        action: str,
        target: str,
        query: str = "",
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        base: str | None = None,
        hints: Mapping[int, str] | None = None,
        status_errors: Mapping[int, type[CyberArkError]] | None = None,
        idempotent: bool = True,
    ) -> None:
        self.method = method
        self.path = path
        self.action = action
        self.target = target
        self.query = query
        self.headers: dict[str, str] = dict(headers or {})
        self.body = body
        self.base = base
        self.hints = dict(hints or {})
        self.status_errors = dict(status_errors or {})
        self.idempotent = idempotent
        """False for a request with side effects (a PVWA retrieve may check an account out or rotate
        a one-time password): it is retried only when the server surely did nothing with it."""

    def __repr__(self) -> str:
        # Headers and body carry tokens and credentials: never part of the repr.
        return f"Call({self.method} {self.path}, action={self.action!r})"


PATH_SHOWN = 200


def _request_line(call: Call) -> str:
    """Method and path for a message, the path cut so that a long id cannot flood a log line."""
    path = call.path if len(call.path) <= PATH_SHOWN else f"{call.path[:PATH_SHOWN]}...({len(call.path)} chars)"
    return f"{call.method} {path}"


class AuthFlow(Protocol):
    """httpx-style: yields the call to send (with credentials applied), receives each response."""

    def auth_flow(self, call: Call) -> Generator[Call, requests.Response, None]: ...


def _key_password(password: str | None) -> Callable[[], str]:
    # Always a callback: without one OpenSSL would prompt on the terminal for an encrypted key.
    return lambda: password or ""


def _mtime(path: str | None) -> float:
    try:
        return os.stat(path).st_mtime if path else 0.0
    except OSError:
        return 0.0


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
        try:
            if ca_bundle is None:
                context = ssl.create_default_context()
            elif os.path.isdir(ca_bundle):
                context = ssl.create_default_context(capath=ca_bundle)
            else:
                context = ssl.create_default_context(cafile=ca_bundle)
        except (OSError, ssl.SSLError):
            raise ConfigurationError(
                f"ca_bundle: {ca_bundle!r} could not be loaded as PEM CA certificates", field="ca_bundle"
            ) from None
    if client_cert is not None:
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
    versions = (_mtime(config.ca_bundle), _mtime(config.client_cert), _mtime(config.client_key))
    return _ssl_context(
        config.verify, config.ca_bundle, config.client_cert, config.client_key, config.client_key_password, versions
    )


class _ContextAdapter(HTTPAdapter):
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


def _exception_chain(exc: BaseException) -> list[BaseException]:
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


REFUSED = "connection refused"
UNRESOLVED = "host name could not be resolved"


def _connection_problem(exc: BaseException) -> str:
    chain = _exception_chain(exc)
    names = {type(e).__name__ for e in chain}
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return REFUSED
    if "NameResolutionError" in names or any(isinstance(e, OSError) and e.errno in (-2, -3) for e in chain):
        return UNRESOLVED
    if any(isinstance(e, ssl.SSLError) for e in chain):
        return "TLS handshake failed (if the server requires a client certificate, check client_cert / key)"
    if "RemoteDisconnected" in names or any(isinstance(e, ConnectionResetError) for e in chain):
        return "the server closed the connection without answering"
    if "ProxyError" in names:
        return "the proxy refused the connection (check HTTPS_PROXY / NO_PROXY)"
    return "connection failed"


def _never_sent(reason: str, problem: str) -> bool:
    """Whether a failed attempt surely never reached the server's application (safe to resend)."""
    return reason == "connect_timeout" or problem in (REFUSED, UNRESOLVED)


def _is_cert_verify_failure(exc: BaseException) -> bool:
    return any(isinstance(e, ssl.SSLCertVerificationError) for e in _exception_chain(exc))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]{1,12}", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = datetime.now(timezone.utc).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


def error_detail(response: requests.Response) -> tuple[str | None, str | None]:
    """``(code, server message)`` from any of the error bodies the three APIs (and Identity) send."""
    text = response.text[:4096] if response.content else ""
    code: str | None = None
    message: str | None = None
    content_type = response.headers.get("Content-Type", "")
    if "json" in content_type or text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            inner = data.get("error")
            if isinstance(inner, dict):  # Conjur
                code = _str_or_none(inner.get("code"))
                message = _str_or_none(inner.get("message"))
            elif isinstance(inner, str):  # OAuth2 (Identity)
                code = inner
                message = _str_or_none(data.get("error_description"))
            else:  # CCP (ErrorMsg) and PVWA (ErrorMessage)
                code = _str_or_none(data.get("ErrorCode"))
                message = _str_or_none(data.get("ErrorMsg")) or _str_or_none(data.get("ErrorMessage"))
                if message is None and isinstance(data.get("Details"), dict):
                    message = _str_or_none(data["Details"].get("ErrorMessage"))
    elif "text/plain" in content_type and text:
        message = text  # Conjur's rack layer: "Unauthorized: Invalid token"
    if message is not None:
        message = re.sub(r"[\x00-\x1f\x7f]+", " ", message).strip()[:SERVER_MESSAGE_MAX] or None
    return code, message


def _str_or_none(value: object) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


class Transport:
    """A keep-alive HTTPS session for one base URL, with the retry and error policy of this package."""

    def __init__(
        self,
        config: TransportConfig,
        *,
        api: str,
        on_event: EventCallback | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.api = api
        self.api_name = API_NAMES.get(api, api)
        self._on_event = on_event
        self._sleep = sleep
        self._random = random.Random()
        context = build_ssl_context(config)
        self._context = context
        session = requests.Session()
        # trust_env would let REQUESTS_CA_BUNDLE replace our CA and ~/.netrc replace our
        # Authorization header; proxies from the environment are applied explicitly instead.
        session.trust_env = False
        session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        session.mount("https://", _ContextAdapter(context, config.pool_maxsize))
        session.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=config.pool_maxsize, max_retries=0))
        self._session = session
        self._proxies: dict[str, dict[str, str]] = {}
        self._proxies_lock = threading.Lock()
        self._local = threading.local()

    # -- public surface used by the API modules -------------------------------------------------

    def request(self, call: Call, auth: AuthFlow | None = None) -> requests.Response:
        """Sends ``call`` (through ``auth``'s flow) and returns a 2xx response or raises a typed error."""
        started = time.monotonic()
        # An authentication made on behalf of this call shares its deadline (thread-local, as
        # clients are shared between threads).
        outer: float | None = getattr(self._local, "deadline", None)
        deadline = started + self.config.deadline if outer is None else min(outer, started + self.config.deadline)
        self._local.deadline = deadline
        try:
            if auth is None:
                response = self._send(call, deadline)
            else:
                flow = auth.auth_flow(call)
                outgoing = next(flow)
                while True:
                    response = self._send(outgoing, deadline)
                    try:
                        outgoing = flow.send(response)
                    except StopIteration:
                        break
            if 300 <= response.status_code < 400:
                raise self._invalid(
                    call,
                    f"a redirect (HTTP {response.status_code}), which is never followed",
                    response.status_code,
                )
            if response.status_code >= 400:
                fallback = _AFTER_REAUTH_HINTS if auth is not None else None
                raise self._error_for(response, call, time.monotonic() - started, fallback)
            return response
        except CyberArkError as error:
            # A failed authentication surfaces through the call that needed it: report it once.
            if not error.reported:
                error.reported = True
                self._emit(
                    "error",
                    {
                        "api": self.api,
                        "action": call.action,
                        "error": type(error).__name__,
                        "status": str(error.status or ""),
                    },
                )
            raise
        finally:
            self._local.deadline = outer

    def check_connection(self, action: str = "check_service") -> str:
        """A TCP + TLS handshake with ``base_url`` and nothing more: no HTTP request, so nothing lands
        in the server's audit log. Returns a sentence describing what was verified."""
        parts = urlsplit(self.config.base_url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        origin = f"{parts.scheme}://{parts.netloc}"
        call = Call("CONNECT", "/", action=action, target=f"at {origin}")
        if self._proxies_for(self.config.base_url):
            return f"{self.api_name} at {origin} is reached through a proxy; the direct TLS check was skipped."
        context = self._context
        try:
            with socket.create_connection((host, port), timeout=self.config.connect_timeout) as sock:
                if parts.scheme != "https":
                    return f"{self.api_name} at {origin} accepts connections (plain http, no TLS)."
                with context.wrap_socket(sock, server_hostname=host):
                    pass
        except ssl.SSLCertVerificationError:
            raise self._tls_error(call, origin) from None
        except (OSError, ssl.SSLError) as exc:
            raise self._unavailable(call, origin, _connection_problem(exc), 1) from None
        client_cert = " and the client certificate was presented" if self.config.client_cert else ""
        return f"{self.api_name} at {origin} is reachable; its TLS certificate is trusted{client_cert}."

    def json(self, response: requests.Response, call: Call) -> Any:
        """The decoded JSON body, or ``InvalidResponse`` naming what arrived instead."""
        try:
            return json.loads(response.content)
        except ValueError:
            content_type = response.headers.get("Content-Type", "no content type")
            raise self._invalid(call, f"a body that is not JSON ({content_type})", response.status_code) from None

    def invalid_response(self, call: Call, what: str, status: int | None = None) -> InvalidResponse:
        return self._invalid(call, what, status)

    def emit(self, name: str, tags: dict[str, str | float]) -> None:
        self._emit(name, {"api": self.api, **tags})

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- sending with retries -------------------------------------------------------------------

    def _url(self, call: Call) -> str:
        base = self.config.base_url
        if call.base is not None:
            base = validate_base_url(call.base, "url", allow_insecure_http=self.config.allow_insecure_http)
        return f"{base}{call.path}" + (f"?{call.query}" if call.query else "")

    def _proxies_for(self, url: str) -> dict[str, str]:
        if not self.config.use_env_proxy:
            return {}
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with self._proxies_lock:
            if origin not in self._proxies:
                self._proxies[origin] = requests.utils.get_environ_proxies(origin)
            return self._proxies[origin]

    def _send(self, call: Call, deadline: float) -> requests.Response:
        url = self._url(call)
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
        proxies = self._proxies_for(url)
        pacer = pacer_for(origin)
        attempt = 0
        while True:
            wait = pacer.reserve(deadline)
            if wait is None:
                raise self._rate_limited(call, None, attempt)
            if wait > 0:
                self._sleep(wait)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._deadline_error(call, origin)
            timeout = (min(self.config.connect_timeout, remaining), min(self.config.read_timeout, remaining))
            started = time.perf_counter()
            response: requests.Response | None = None
            retry_after: float | None = None
            try:
                response = self._session.request(
                    call.method,
                    url,
                    headers=call.headers,
                    data=call.body,
                    timeout=timeout,
                    allow_redirects=False,
                    proxies=proxies,
                )
            except requests.exceptions.SSLError as exc:
                if _is_cert_verify_failure(exc):
                    raise self._tls_error(call, origin) from None
                problem = _connection_problem(exc)
                reason = "tls"
            except requests.exceptions.ConnectTimeout:
                problem, reason = f"no connection within {timeout[0]:g}s", "connect_timeout"
            except requests.exceptions.ReadTimeout:
                problem, reason = f"no answer within {timeout[1]:g}s (read_timeout)", "read_timeout"
            except requests.exceptions.ConnectionError as exc:
                problem, reason = _connection_problem(exc), "connection"
            except (requests.exceptions.InvalidURL, requests.exceptions.InvalidHeader):
                raise ConfigurationError(
                    f"{self.api_name} {call.action}: the request URL or a header is invalid for {call.target}",
                    api=self.api,
                    action=call.action,
                    path=call.path,
                ) from None
            except requests.exceptions.RequestException as exc:
                problem, reason = f"request failed ({type(exc).__name__})", "connection"
            duration = time.perf_counter() - started
            if response is not None:
                status = response.status_code
                self._emit(
                    "request",
                    {"api": self.api, "action": call.action, "status": str(status), "duration": duration},
                )
                log.debug(
                    "%s %s %s %s -> %d in %.1f ms",
                    self.api,
                    call.action,
                    call.method,
                    call.path,
                    status,
                    duration * 1000,
                )
                if not self._retryable(response) or (not call.idempotent and status != 429):
                    return response
                reason = f"status_{status}"
                problem = f"HTTP {status}"
                # Honoured on 5xx too: a 503 with Retry-After is the server's own schedule.
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                if status == 429:
                    pacer.rate_limited()
                    self._emit(
                        "rate_limited",
                        {"api": self.api, "action": call.action, "retry_after": retry_after or 0.0},
                    )
            else:
                self._emit(
                    "request",
                    {"api": self.api, "action": call.action, "status": reason, "duration": duration},
                )
                log.debug("%s %s %s %s -> %s", self.api, call.action, call.method, call.path, reason)
                if not call.idempotent and not _never_sent(reason, problem):
                    raise self._unavailable(call, origin, f"{problem}; not retried, as it may have taken effect", 1)
            if attempt >= self.config.max_retries:
                if response is not None:
                    return response  # mapped to Unavailable / RateLimited by the caller
                raise self._unavailable(call, origin, problem, attempt + 1)
            delay = self._backoff(attempt)
            if retry_after is not None:
                delay = max(delay, retry_after)
            if time.monotonic() + delay >= deadline:
                if response is not None and response.status_code == 429:
                    raise self._rate_limited(call, retry_after, attempt + 1)
                raise self._deadline_error(call, origin, problem)
            attempt += 1
            self._emit(
                "retry",
                {
                    "api": self.api,
                    "action": call.action,
                    "attempt": float(attempt),
                    "reason": reason,
                    "delay": delay,
                },
            )
            log.debug("%s %s: retry %d in %.2fs (%s)", self.api, call.action, attempt, delay, reason)
            self._sleep(delay)

    def _retryable(self, response: requests.Response) -> bool:
        status = response.status_code
        if status == 429:
            return True
        if status < 500:
            return False
        code, _ = error_detail(response)
        if code is not None and code in _CODE_TABLE:
            return _CODE_TABLE[code][1]
        return True

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**attempt)]."""
        ceiling = min(self.config.backoff_max, self.config.backoff_base * (2**attempt))
        return self._random.uniform(0, ceiling)

    # -- error construction: the single place statuses become exceptions -----------------------

    def _error_for(
        self,
        response: requests.Response,
        call: Call,
        elapsed: float,
        fallback_hints: Mapping[int, str] | None = None,
    ) -> CyberArkError:
        status = response.status_code
        code, server_message = error_detail(response)
        error_class: type[CyberArkError]
        hint = call.hints.get(status) or (fallback_hints or {}).get(status)
        if code is not None and code in _CODE_TABLE:
            error_class, _, code_hint = _CODE_TABLE[code]
            hint = hint or code_hint
        elif status in call.status_errors:
            error_class = call.status_errors[status]
        elif status in _STATUS_TABLE:
            error_class = _STATUS_TABLE[status]
        elif status >= 500:
            error_class = Unavailable
        else:
            error_class = CyberArkError
        if hint is None:
            if status >= 500:
                hint = (
                    f"The server kept failing for {elapsed:.1f}s; retry later or check the server's health."
                    if call.idempotent
                    else "Not retried, as the request may have taken effect (a PVWA retrieve may check the "
                    "account out or rotate a one-time password); retry the task once the server is healthy."
                )
            else:
                hint = _STATUS_HINTS.get(status, "")
        summary = f"{self.api_name} {call.action} {call.target}: HTTP {status} {response.reason or ''}".rstrip()
        if code:
            summary += f" [{code}]"
        if server_message:
            summary += f": {server_message.rstrip('.')}"
        if hint:
            summary += f". {hint[0].upper()}{hint[1:]}"
        message = f"{summary.rstrip('.')}. ({_request_line(call)})"
        kwargs: dict[str, Any] = {
            "api": self.api,
            "action": call.action,
            "path": call.path,
            "status": status,
            "code": code,
        }
        if error_class is RateLimited:
            return RateLimited(message, retry_after=parse_retry_after(response.headers.get("Retry-After")), **kwargs)
        return error_class(message, **kwargs)

    def _invalid(self, call: Call, what: str, status: int | None) -> InvalidResponse:
        return InvalidResponse(
            f"{self.api_name} {call.action} {call.target}: the server answered with {what}; check "
            f"that base_url "
            f"points at {self.api_name} and that no proxy or load balancer rewrites answers "
            f"({_request_line(call)})",
            api=self.api,
            action=call.action,
            path=call.path,
            status=status,
        )

    def _unavailable(self, call: Call, origin: str, problem: str, attempts: int) -> Unavailable:
        return Unavailable(
            f"{self.api_name} {call.action} {call.target}: {problem} at {origin} after {attempts} "
            f"attempt(s); "
            f"check that base_url is right and the server is up and reachable ({_request_line(call)})",
            api=self.api,
            action=call.action,
            path=call.path,
        )

    def _deadline_error(self, call: Call, origin: str, problem: str | None = None) -> Unavailable:
        last = f" (last problem: {problem})" if problem else ""
        return Unavailable(
            f"{self.api_name} {call.action} {call.target}: gave up at the {self.config.deadline:g}s deadline "
            f"talking to {origin}{last}; the server is slow or down ({_request_line(call)})",
            api=self.api,
            action=call.action,
            path=call.path,
        )

    def _rate_limited(self, call: Call, retry_after: float | None, attempts: int) -> RateLimited:
        wait = f"; it asked to wait {retry_after:g}s, beyond the deadline" if retry_after is not None else ""
        if attempts == 0:
            wait = "; at the pace its earlier 429 answers set, no slot is free before the deadline"
        return RateLimited(
            f"{self.api_name} {call.action} {call.target}: rate limited (HTTP 429) after {attempts} "
            f"attempt(s)"
            f"{wait}. Lower concurrency, or raise the server's limit ({_request_line(call)})",
            retry_after=retry_after,
            api=self.api,
            action=call.action,
            path=call.path,
            status=429,
        )

    def _tls_error(self, call: Call, origin: str) -> ConfigurationError:
        trusted = f"the CA bundle {self.config.ca_bundle!r}" if self.config.ca_bundle else "the system trust store"
        return ConfigurationError(
            f"{self.api_name} {call.action}: TLS certificate verification failed for {origin}: its "
            f"certificate is "
            f"not issued by {trusted} or does not match the host name. Check ca_bundle (the CA that "
            f"signed the "
            "server certificate) and base_url's host name.",
            field="ca_bundle",
            api=self.api,
            action=call.action,
            path=call.path,
        )

    def _emit(self, name: str, tags: dict[str, str | float]) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(name, tags)
        except Exception:  # noqa: BLE001
            # A broken metrics callback must not fail a credential fetch.
            log.warning("cyberark_ops on_event callback failed for %s", name, exc_info=False)


__all__ = ["Call", "EventCallback", "Transport", "build_ssl_context", "error_detail", "parse_retry_after"]
