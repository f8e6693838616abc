"""The one request path shared by every client: Conjur, CCP, PVWA, and any other API.

Everything that is the same for all APIs lives here, once: connection reuse, timeouts, retries
with backoff, ``Retry-After``, the shared pacer, the total deadline and the observer events; the
errors it raises are built in ``response_errors.py`` (messages, HTTP answers to typed errors). The
transport knows no API: each client hands it an ``ApiProfile`` (name, error code table, error-body
parser), and describes *what* to send as a ``Call``; API modules never touch ``requests``. TLS (the
``SSLContext`` and the adapter that hands it to urllib3) lives in ``tls.py``.

Performance: a warm call costs one keep-alive request; the ``SSLContext`` is built once per
process and settings.
"""

from __future__ import annotations

import email.utils
import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from .._version import __version__
from .errors import (
    ConfigurationError,
    CyberArkError,
    InvalidResponse,
    RateLimited,
    Unavailable,
)
from .pacing import Pacer
from .profile import ApiProfile
from .response_errors import compose_message, error_about, error_for_response, parse_retry_after
from .tls import ContextAdapter, build_ssl_context, exception_chain, is_cert_verify_failure
from .untrusted import parse_json
from .validation import validate_base_url

RESPONSE_JSON_CAP = 64 << 20
"""Bytes of a JSON answer parsed (a PVWA page of 1,000 accounts is about 1 MB)."""

if TYPE_CHECKING:
    from .transport_config import TransportConfig

log = logging.getLogger("cyberark_ops.client")

EventCallback = Callable[[str, dict[str, "str | float"]], None]
"""``on_event(name, tags)``: ``request``, ``retry``, ``rate_limited``, ``token_renewal``, ``error``."""

USER_AGENT = f"cyberark-ops/{__version__}"
"""Names the release in every request, so a server's access log tells which version called it."""
E = TypeVar("E", bound=CyberArkError)

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
        "local_http",
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
        local_http: bool = False,
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
        """False for a request with side effects (a retrieve that checks an account out or rotates
        a one-time password): it is retried only when the server surely did nothing with it."""
        self.local_http = local_http
        """True for a ``base`` on this machine that speaks only plain http (a cloud metadata
        service); the caller has checked that the host is one (``allow_insecure_http`` is not needed)."""

    def __repr__(self) -> str:
        # Headers and body carry tokens and credentials: never part of the repr.
        return f"Call({self.method} {self.path}, action={self.action!r})"


class AuthFlow(Protocol):
    """httpx-style: yields the call to send (with credentials applied), receives each response."""

    def auth_flow(self, call: Call) -> Generator[Call, requests.Response, None]: ...


REFUSED = "connection refused"
UNRESOLVED = "host name could not be resolved"


def _connection_problem(exc: BaseException) -> str:
    chain = exception_chain(exc)
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


class _Outcome:
    """What one attempt produced: a response, or the problem that prevented one."""

    __slots__ = ("problem", "reason", "response", "retry_after")

    def __init__(
        self,
        response: requests.Response | None,
        problem: str,
        reason: str,
        retry_after: float | None = None,
    ) -> None:
        self.response = response
        self.problem = problem
        self.reason = reason
        self.retry_after = retry_after


class Transport:
    """A keep-alive HTTPS session for one base URL, with the retry and error policy of this package.

    ``profile`` is the API: its name and display name (events, errors, messages), its error code
    table and its error-body parser. Any API can have one; see ``ApiProfile``.
    """

    def __init__(
        self,
        config: TransportConfig,
        profile: ApiProfile,
        *,
        on_event: EventCallback | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.profile = profile
        self.api = profile.name
        self.api_name = profile.display_name
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
        session.mount("https://", ContextAdapter(context, config.pool_maxsize))
        session.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=config.pool_maxsize, max_retries=0))
        self._session = session
        self._proxies: dict[str, dict[str, str]] = {}
        self._proxies_lock = threading.Lock()
        self._local = threading.local()
        # The last answer's HTTP Date and our clock then, parsed only when asked (not per request).
        self._last_date: tuple[str, float] | None = None

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
                raise self.invalid_response(
                    call,
                    f"a redirect (HTTP {response.status_code}), which is never followed",
                    response.status_code,
                )
            if response.status_code >= 400:
                fallback = _AFTER_REAUTH_HINTS if auth is not None else None
                raise error_for_response(self.profile, response, call, time.monotonic() - started, fallback)
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
            return parse_json(response.content, max_chars=RESPONSE_JSON_CAP)
        except ValueError:
            content_type = response.headers.get("Content-Type", "no content type")
            raise self.invalid_response(
                call, f"a body that is not JSON ({content_type})", response.status_code
            ) from None

    def message(self, call: Call, problem: str, hint: str = "") -> str:
        """This API's message about ``call``: ``<API> <action> <target>: <problem>. <Hint>. (<request>)``."""
        return compose_message(self.api_name, call, problem, hint)

    def error(self, error_class: type[E], call: Call, problem: str, hint: str = "", **fields: Any) -> E:
        """An ``error_class`` about ``call`` with this transport's message, API, action and path."""
        return error_about(self.profile, error_class, call, problem, hint, **fields)

    def invalid_response(self, call: Call, what: str, status: int | None = None) -> InvalidResponse:
        """``InvalidResponse`` for an answer that is not what ``call`` expects (``what`` arrived)."""
        return self.error(
            InvalidResponse,
            call,
            f"the server answered with {what}; check that base_url points at {self.api_name} and that no "
            "proxy or load balancer rewrites answers",
            status=status,
        )

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
            insecure_ok = self.config.allow_insecure_http or call.local_http
            base = validate_base_url(call.base, "url", allow_insecure_http=insecure_ok)
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
        """Attempts ``call`` until an answer is final, the retry budget is spent or the deadline nears."""
        url = self._url(call)
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
        proxies = {} if call.local_http else self._proxies_for(url)  # a metadata service is never proxied
        pacer = self.config.pacing.pacer(origin)
        attempt = 0
        while True:
            if not pacer.take_turn(deadline, self._sleep):
                raise self._rate_limited(call, None, attempt)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._deadline_error(call, origin)
            timeout = (min(self.config.connect_timeout, remaining), min(self.config.read_timeout, remaining))
            outcome = self._attempt(call, url, timeout, origin=origin, proxies=proxies, pacer=pacer)
            response = outcome.response
            if not self._may_retry(call, outcome):
                if response is not None:
                    return response
                raise self._unavailable(
                    call, origin, f"{outcome.problem}; not retried, as it may have taken effect", attempt + 1
                )
            # A 429 is the server asking to come back later, not a failure: it is retried until
            # the deadline, not counted against max_retries (a burst of new task processes, none of
            # which knows the server's rate yet, would otherwise fail on it).
            rate_limited = response is not None and response.status_code == 429
            if attempt >= self.config.max_retries and not rate_limited:
                if response is not None:
                    return response  # mapped to Unavailable / RateLimited by the caller
                raise self._unavailable(call, origin, outcome.problem, attempt + 1)
            delay = self._backoff(attempt)
            if outcome.retry_after is not None:
                delay = max(delay, outcome.retry_after)
            if rate_limited:
                # Every client turned away in the same second hears the same Retry-After: spread
                # their return over half as long again, or they all come back together.
                delay += self._random.uniform(0, max(delay, self.config.backoff_base) / 2)
            if time.monotonic() + delay >= deadline:
                if response is not None and response.status_code == 429:
                    raise self._rate_limited(call, outcome.retry_after, attempt + 1)
                raise self._deadline_error(call, origin, outcome.problem)
            attempt += 1
            self._emit(
                "retry",
                {
                    "api": self.api,
                    "action": call.action,
                    "attempt": float(attempt),
                    "reason": outcome.reason,
                    "delay": delay,
                },
            )
            log.debug("%s %s: retry %d in %.2fs (%s)", self.api, call.action, attempt, delay, outcome.reason)
            self._sleep(delay)

    def _attempt(
        self,
        call: Call,
        url: str,
        timeout: tuple[float, float],
        *,
        origin: str,
        proxies: dict[str, str],
        pacer: Pacer,
    ) -> _Outcome:
        """One request; raises only for what no retry can change (TLS trust, an invalid URL)."""
        started = time.perf_counter()
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
            if is_cert_verify_failure(exc):
                raise self._tls_error(call, origin) from None
            outcome = _Outcome(None, _connection_problem(exc), "tls")
        except requests.exceptions.ConnectTimeout:
            outcome = _Outcome(None, f"no connection within {timeout[0]:g}s", "connect_timeout")
        except requests.exceptions.ReadTimeout:
            outcome = _Outcome(None, f"no answer within {timeout[1]:g}s (read_timeout)", "read_timeout")
        except requests.exceptions.ConnectionError as exc:
            outcome = _Outcome(None, _connection_problem(exc), "connection")
        except (requests.exceptions.InvalidURL, requests.exceptions.InvalidHeader):
            raise self.error(ConfigurationError, call, "the request URL or a header is invalid") from None
        except requests.exceptions.RequestException as exc:
            outcome = _Outcome(None, f"request failed ({type(exc).__name__})", "connection")
        else:
            status = response.status_code
            date = response.headers.get("Date")
            if date:
                self._last_date = (date, time.time())
            # Honoured on 5xx too: a 503 with Retry-After is the server's own schedule.
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            outcome = _Outcome(response, f"HTTP {status}", f"status_{status}", retry_after)
        duration = time.perf_counter() - started
        status_tag = str(outcome.response.status_code) if outcome.response is not None else outcome.reason
        self._emit("request", {"api": self.api, "action": call.action, "status": status_tag, "duration": duration})
        log.debug(
            "%s %s %s %s -> %s in %.1f ms", self.api, call.action, call.method, call.path, status_tag, duration * 1000
        )
        if outcome.response is None:
            pass
        elif outcome.response.status_code != 429:
            pacer.accepted()
        else:
            pacer.rate_limited()
            self._emit(
                "rate_limited",
                {"api": self.api, "action": call.action, "retry_after": outcome.retry_after or 0.0},
            )
        return outcome

    @property
    def server_clock_offset(self) -> float | None:
        """Seconds the server's clock was ahead of ours at its last dated answer (its HTTP ``Date``,
        1 s resolution), or None before one; read by ``cyberark-ops doctor``."""
        if self._last_date is None:
            return None
        value, received = self._last_date
        try:
            dated = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if dated.tzinfo is None:
            return None
        # Date is truncated to the second: the server's time lies within [Date, Date + 1).
        return dated.timestamp() + 0.5 - received

    def _may_retry(self, call: Call, outcome: _Outcome) -> bool:
        """The one retry decision. An answer is retried on 429 and on a 5xx whose code allows it; a
        call with side effects (``idempotent=False``) only on 429, or when it surely never reached the
        server (refused, unresolved, connect timeout)."""
        response = outcome.response
        if response is None:
            return call.idempotent or _never_sent(outcome.reason, outcome.problem)
        status = response.status_code
        if status == 429:
            return True
        if status < 500 or not call.idempotent:
            return False
        code, _ = self.profile.parse_error_body(response)
        entry = self.profile.code_entry(code)
        return entry[1] if entry is not None else True

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**attempt)]."""
        ceiling = min(self.config.backoff_max, self.config.backoff_base * (2**attempt))
        return self._random.uniform(0, ceiling)

    def _unavailable(self, call: Call, origin: str, problem: str, attempts: int) -> Unavailable:
        return self.error(
            Unavailable,
            call,
            f"{problem} at {origin} after {attempts} attempt(s); check that base_url is right and the server "
            "is up and reachable",
        )

    def _deadline_error(self, call: Call, origin: str, problem: str | None = None) -> Unavailable:
        last = f" (last problem: {problem})" if problem else ""
        return self.error(
            Unavailable,
            call,
            f"gave up at the {self.config.deadline:g}s deadline talking to {origin}{last}; the server is slow or down",
        )

    def _rate_limited(self, call: Call, retry_after: float | None, attempts: int) -> RateLimited:
        wait = f"; it asked to wait {retry_after:g}s, beyond the deadline" if retry_after is not None else ""
        if attempts == 0:
            wait = "; at the pace its earlier 429 answers set, no slot is free before the deadline"
        return self.error(
            RateLimited,
            call,
            f"rate limited (HTTP 429) after {attempts} attempt(s){wait}",
            "Lower concurrency, or raise the server's limit",
            retry_after=retry_after,
            status=429,
        )

    def _tls_error(self, call: Call, origin: str) -> ConfigurationError:
        trusted = f"the CA bundle {self.config.ca_bundle!r}" if self.config.ca_bundle else "the system trust store"
        return self.error(
            ConfigurationError,
            call,
            f"TLS certificate verification failed for {origin}: its certificate is not issued by {trusted} or "
            "does not match the host name",
            "Check ca_bundle (the CA that signed the server certificate) and base_url's host name",
            field="ca_bundle",
        )

    def _emit(self, name: str, tags: dict[str, str | float]) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(name, tags)
        except Exception:  # noqa: BLE001
            # A broken metrics callback must not fail a credential fetch.
            log.warning("cyberark_ops on_event callback failed for %s", name, exc_info=False)


__all__ = [
    "AuthFlow",
    "Call",
    "EventCallback",
    "Transport",
    "build_ssl_context",
    "compose_message",
    "parse_retry_after",
]
