"""``CyberArkSecretsBackend``: Airflow connections, variables and config served from CyberArk.

Configured with ``[secrets] backend`` / ``backend_kwargs`` (or the worker-side
``[workers] secrets_backend`` / ``secrets_backend_kwargs``), existing DAGs get their connections
and variables from CyberArk with no code change. It fetches through the same fetch core as the
hook (never through ``CyberArkHook``, whose connection lookup would come back here).

Airflow treats any exception from a backend as "try the next one" and logs it at DEBUG only, so a
vault outage would silently fall through to the metadata DB. This backend raises
``AirflowSecretsBackendAccessDenied`` (the one signal Airflow does not swallow) for every vault
failure unless ``fall_through_on_error`` is set, so the task fails naming the id and the path.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import re
import string
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from ._airflow_first import import_airflow_first

import_airflow_first(__name__)  # Airflow's start-up loads this module as its backend

from ._compat import first_attribute  # noqa: E402
from .client import ConfigurationError, CyberArkError, Forbidden, NotFound  # noqa: E402
from .client.untrusted import parse_json, shown  # noqa: E402
from .lookup_patterns import lookup_pattern  # noqa: E402
from .scrub_exceptions import scrubs_exceptions  # noqa: E402
from .settings import ConnectionSettings, as_backend_error, as_bool, backend_error  # noqa: E402

if TYPE_CHECKING:
    from .client import Credential
    from .fetch import Fetcher

try:  # task-sdk 1.2.2+ (Airflow 3.1.x with a recent task-sdk, 3.2+)
    from airflow.sdk.exceptions import AirflowSecretsBackendAccessDenied
except ImportError:  # pragma: no cover - older task-sdk: Airflow falls through on any error there

    class AirflowSecretsBackendAccessDenied(PermissionError):  # type: ignore[no-redef]
        """Stand-in where the task SDK has no authoritative-deny signal."""


# The task SDK's base class (3.2+), else core's; both share one implementation.
BaseSecretsBackend: Any = first_attribute("BaseSecretsBackend", "airflow.sdk.bases.secrets_backend", "airflow.secrets")

log = logging.getLogger(__name__)

DEFAULT_CACHE_TTL = 60.0
DEFAULT_NEGATIVE_CACHE_TTL = 60.0
"""Seconds; the dag-processor parses a file every 30 s by default, so a missing id costs one
vault call per minute at most instead of one per parse."""
MAX_CACHE_TTL = 86_400.0

_KINDS = {
    "connections": ("conn_id",),
    "variables": ("variable",),
    "config": ("key", "section"),
}
_CONNECTION_FORMATS = ("auto", "uri", "json", "account")
# Characters that would change a reference's meaning once substituted into a template.
_UNSAFE_ID = re.compile(r"[;=?{}\\\x00-\x1f\x7f]")
MAX_ID_LENGTH = 250
"""Airflow's own limit for a conn id or variable key (its metadata DB columns): a longer id is
"not found" before any pattern sees it, so neither a pattern nor a message grows with it."""

BACKEND_OPTIONS = (
    "connections_path",
    "variables_path",
    "config_path",
    "env",
    "connections_lookup_pattern",
    "variables_lookup_pattern",
    "config_lookup_pattern",
    "cache_ttl_seconds",
    "negative_cache_ttl_seconds",
    "fall_through_on_error",
    "connection_format",
    "conn_type",
    "reason",
)
"""Keys of ``backend_kwargs`` that configure the backend itself; the rest say how to reach CyberArk."""


class VaultLookupFailed(AirflowSecretsBackendAccessDenied):
    """A lookup the vault could not answer; raised instead of falling through to the next backend."""


class _Cache:
    """Process-wide: Airflow 3.1 builds a new backend object for every lookup, 3.3 one per process."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, str], tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str]) -> tuple[bool, str | None]:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return False, None
            if entry[0] <= time.monotonic():
                del self._entries[key]
                return False, None
            return True, entry[1]

    def put(self, key: tuple[str, str, str], value: str | None, ttl: float) -> None:
        if ttl <= 0:
            return
        with self._lock:
            self._entries[key] = (time.monotonic() + ttl, value)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


CACHE = _Cache()
_FETCHERS: dict[str, Fetcher] = {}
_FETCHERS_LOCK = threading.Lock()


def _fingerprint(kwargs: Mapping[str, Any]) -> str:
    # backend_kwargs hold no inline secret (refused), so they can key a cache.
    return json.dumps(kwargs, sort_keys=True, default=str)


def _ttl(kwargs: Mapping[str, Any], name: str, default: float) -> float:
    value = kwargs.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise backend_error(name, "must be a number of seconds")
    try:
        seconds = float(value)
    except ValueError:
        raise backend_error(name, "must be a number of seconds") from None
    if not (math.isfinite(seconds) and 0 <= seconds <= MAX_CACHE_TTL):
        raise backend_error(name, f"must be between 0 (off) and {MAX_CACHE_TTL:g} seconds")
    return seconds


def _plain_name(value: object) -> bool:
    """An ``env``: one path segment, not ``.`` or ``..`` (every lookup would fail), no space at an end."""
    return (
        isinstance(value, str)
        and value not in ("", ".", "..")
        and value == value.strip()
        and "/" not in value
        and not _UNSAFE_ID.search(value)
        and value.isprintable()
    )


def _lookupable(item: object) -> bool:
    """Whether ``item`` can name a vault object at all (checked before any pattern runs on it)."""
    if not isinstance(item, str) or not item or len(item) > MAX_ID_LENGTH or item != item.strip():
        return False
    if _UNSAFE_ID.search(item) or any(segment in (".", "..") for segment in item.split("/")):
        return False
    try:
        item.encode("utf-8")  # a lone surrogate
    except UnicodeEncodeError:
        return False
    return True


def _template(kwargs: Mapping[str, Any], kind: str, env: str | None) -> str | None:
    name = f"{kind}_path"
    value = kwargs.get(name)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise backend_error(name, "must be a string such as airflow/{env}/" + kind + "/{" + _KINDS[kind][0] + "}")
    allowed = {*_KINDS[kind], "env"}
    try:
        fields = [(field, spec, conv) for _, field, spec, conv in string.Formatter().parse(value) if field is not None]
    except ValueError as exc:
        raise backend_error(name, f"{value!r} is not a valid template ({exc})") from None
    for field, spec, conv in fields:
        if field not in allowed:
            raise backend_error(name, f"{value!r} uses {{{field}}}; use {', '.join('{' + f + '}' for f in allowed)}")
        if spec or conv:
            raise backend_error(name, f"{value!r}: placeholders take no format spec or conversion")
        if field == "env" and not env:
            raise backend_error(name, f"{value!r} uses {{env}} but backend_kwargs set no env")
    if _KINDS[kind][0] not in {field for field, _, _ in fields}:
        raise backend_error(name, f"{value!r} must contain {{{_KINDS[kind][0]}}}")
    sample = value.format(env=env or "", **dict.fromkeys(_KINDS[kind], "sample"))
    if any(segment in (".", "..") for segment in re.split(r"[/;=]", sample)):
        raise backend_error(name, f"{value!r} has a '.' or '..' segment, which could address another path")
    return value


class CyberArkSecretsBackend(BaseSecretsBackend):  # type: ignore[misc]
    """Connections, variables and config from Conjur, CCP or PVWA / Privilege Cloud.

    ``backend_kwargs`` hold the path templates (``connections_path``, ``variables_path``,
    ``config_path`` with ``{conn_id}``, ``{variable}``, ``{key}`` / ``{section}`` and ``{env}``),
    the lookup patterns, the cache TTLs and the failure policy; every other key says how to reach
    CyberArk, as a ``cyberark`` connection's extras do (``url``, ``api``, ``login``, ``api_key_file``
    or ``api_key_env``, ``ca_bundle`` ...). See ``docs/secrets-backend.md``.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        env = kwargs.get("env")
        if env is not None and not _plain_name(env):
            raise backend_error("env", "must be a plain name such as dev, staging or prod")
        self.env: str | None = env
        self.templates = {kind: _template(kwargs, kind, env) for kind in _KINDS}
        if not any(self.templates.values()):
            raise backend_error("connections_path", "set at least one of connections_path, variables_path, config_path")
        self.patterns = {kind: lookup_pattern(kwargs, f"{kind}_lookup_pattern") for kind in _KINDS}
        self.cache_ttl = _ttl(kwargs, "cache_ttl_seconds", DEFAULT_CACHE_TTL)
        self.negative_cache_ttl = _ttl(kwargs, "negative_cache_ttl_seconds", DEFAULT_NEGATIVE_CACHE_TTL)
        try:
            self.fall_through_on_error = as_bool(kwargs.get("fall_through_on_error", False), "fall_through_on_error")
        except ConfigurationError as exc:
            raise as_backend_error(exc) from None
        connection_format = str(kwargs.get("connection_format") or "auto").lower()
        if connection_format not in _CONNECTION_FORMATS:
            choices = ", ".join(_CONNECTION_FORMATS)
            raise backend_error("connection_format", f"{connection_format!r} is not one of {choices}")
        self.connection_format = connection_format
        conn_type = kwargs.get("conn_type")
        if conn_type is not None and not (isinstance(conn_type, str) and re.fullmatch(r"[A-Za-z0-9_.-]+", conn_type)):
            raise backend_error("conn_type", "must be an Airflow connection type such as postgres")
        self.conn_type: str | None = conn_type
        reason = kwargs.get("reason")
        self.reason = f"secrets-backend {reason}" if reason else "secrets-backend"
        # Validated now (a bad setting fails loudly at start-up); the client is built on first lookup.
        self.settings = ConnectionSettings.from_backend_kwargs(kwargs, reserved=BACKEND_OPTIONS)
        self._key = _fingerprint(kwargs)

    def __repr__(self) -> str:
        return f"CyberArkSecretsBackend(api={self.settings.api!r}, url={self.settings.base_url!r})"

    # -- Airflow's interface --------------------------------------------------------------------------

    @scrubs_exceptions
    def get_conn_value(self, conn_id: str, team_name: str | None = None) -> str | None:
        """Connection JSON (or a URI, when that is what is stored)."""
        return self._lookup("connections", conn_id, conn_id=conn_id)

    @scrubs_exceptions
    def get_variable(self, key: str, team_name: str | None = None) -> str | None:
        return self._lookup("variables", key, variable=key)

    @scrubs_exceptions
    def get_config(self, key: str) -> str | None:
        section, dot, option = key.partition(".")
        return self._lookup("config", key, key=option if dot else key, section=section if dot else "")

    # -- lookups --------------------------------------------------------------------------------------

    def _lookup(self, kind: str, item: str, **values: str) -> str | None:
        """Every failure is ``VaultLookupFailed`` (or None with ``fall_through_on_error``): any other
        exception, even a ``RecursionError`` or ``MemoryError``, Airflow logs at DEBUG and answers
        from the next backend, serving a stale connection without a word."""
        try:
            return self._lookup_unguarded(kind, item, **values)
        except VaultLookupFailed:
            raise
        except Exception as exc:  # noqa: BLE001 - the point: nothing may fall through silently
            template = self.templates[kind] or ""
            if self.fall_through_on_error:
                log.warning(
                    "CyberArk secrets backend: %s %s failed (%s); falling through to the next backend",
                    kind.rstrip("s"),
                    shown(item),
                    type(exc).__name__,
                )
                return None
            raise self._failure(kind, item, template, f"the lookup failed ({type(exc).__name__})") from None

    def path_for(self, kind: str, item: str, **values: str) -> tuple[str | None, str]:
        """The vault path this backend reads for ``item`` (``kind``: connections, variables or
        config; ``values`` fill the template), or None and why it never looks ``item`` up: what
        ``cyberark-ops migrate`` plans with, so a migrated value lands where lookups read it."""
        why = self._out_of_scope(kind, item)
        return (None, why) if why else self._resolved_path(kind, values)

    def _out_of_scope(self, kind: str, item: str) -> str:
        """Why ``item`` is never looked up ("" when it is)."""
        template = self.templates[kind]
        if template is None:
            return f"backend_kwargs set no {kind}_path"
        if not _lookupable(item):
            return "no vault path can hold this id (a character or segment no reference may hold)"
        pattern = self.patterns[kind]
        if pattern is not None and not pattern.match(item):
            return f"outside the backend's {kind}_lookup_pattern"
        return ""

    def _resolved_path(self, kind: str, values: Mapping[str, str]) -> tuple[str | None, str]:
        template = self.templates[kind] or ""
        path = template.format(env=self.env or "", **values)
        try:
            self.settings.resolve(path, source="the secrets backend")
        except ConfigurationError as exc:
            # The template was checked at start-up, so it is the id that no reference can hold.
            return None, f"no valid reference: {exc}"
        return path, ""

    def _lookup_unguarded(self, kind: str, item: str, **values: str) -> str | None:
        if self._out_of_scope(kind, item):
            # Not a name any vault path holds (whitespace at an end, a lone surrogate, '..', longer
            # than Airflow's ids), or outside the pattern: "not found", so Airflow asks its other
            # backends, as documented.
            log.debug("CyberArk secrets backend: %s id outside what it looks up; not looked up", kind)
            return None
        template = self.templates[kind] or ""
        cache_key = (self._key, kind, item)
        found, cached = CACHE.get(cache_key)
        if found:
            return cached
        if "{section}" in template and not values.get("section"):
            raise self._failure(
                kind,
                item,
                template,
                f"config_path uses {{section}} but {shown(item)} names no section (use section.key)",
            )
        path, _ = self._resolved_path(kind, values)
        if path is None:
            log.debug("CyberArk secrets backend: %s id makes no valid reference; not looked up", kind)
            return None
        try:
            credential = self._fetcher().get_credential(path)
        except NotFound:
            CACHE.put(cache_key, None, self.negative_cache_ttl)
            return None
        except Forbidden as exc:
            raise self._failure(kind, item, path, f"the vault denied access: {exc}") from None
        except CyberArkError as exc:
            if self.fall_through_on_error and not isinstance(exc, ConfigurationError):
                log.warning(
                    "CyberArk secrets backend: %s %s at %s failed (%s); falling through to the next backend",
                    kind.rstrip("s"),
                    shown(item),
                    shown(path),
                    type(exc).__name__,
                )
                return None
            raise self._failure(kind, item, path, str(exc)) from None
        value = credential.secret if kind != "connections" else self._connection_value(item, path, credential)
        CACHE.put(cache_key, value, self.cache_ttl)
        return value

    def _fetcher(self) -> Fetcher:
        """One per configuration and process, so the token is reused across lookups and backend objects."""
        # Airflow builds the backend in every process it starts; the fetch core and the client
        # layer load on the first lookup, so a process that looks nothing up never pays for them.
        from .fetch import Fetcher

        with _FETCHERS_LOCK:
            fetcher = _FETCHERS.get(self._key)
            if fetcher is None:
                fetcher = _FETCHERS[self._key] = Fetcher(
                    self.settings, name="the secrets backend", reason=self.reason, keep_sessions=True
                )
            return fetcher

    def _message(self, kind: str, item: str, path: str, problem: str) -> str:
        return f"CyberArk secrets backend: {kind.rstrip('s')} {shown(item)} (path {shown(path)}): {problem}"

    def _failure(self, kind: str, item: str, path: str, problem: str) -> VaultLookupFailed:
        return VaultLookupFailed(self._message(kind, item, path, problem))

    def _json_object(self, stored: Any, conn_id: str, path: str, what: str) -> dict[str, Any]:
        """``stored`` (JSON text, or what the vault already parsed) as an object, or a lookup
        failure naming ``what``, the id and the path, never the value."""
        try:
            data = parse_json(stored) if isinstance(stored, str) else stored
        except ValueError as exc:
            problem = getattr(exc, "msg", "not JSON")
            raise self._failure("connections", conn_id, path, f"{what} is not valid JSON ({problem})") from None
        if not isinstance(data, dict):
            raise self._failure("connections", conn_id, path, f"{what} holds JSON that is not an object")
        return data

    def _connection_value(self, conn_id: str, path: str, credential: Credential) -> str:
        stored = credential.secret
        head = stored.lstrip()[:1]
        if self.connection_format == "json" or (self.connection_format == "auto" and head == "{"):
            data = self._json_object(stored, conn_id, path, "the stored connection")
            self._register_password(path, data.get("password"), data.get("login"))
            return stored
        if self.connection_format == "uri" or (self.connection_format == "auto" and "://" in stored[:64]):
            if "://" not in stored[:64]:
                raise self._failure("connections", conn_id, path, "the stored value is not a connection URI")
            try:
                parts = urlsplit(stored)
                password, login = parts.password, parts.username
            except ValueError:  # Airflow reports the malformed URI when it parses it
                password = login = None
            self._register_password(path, password and unquote(password), login and unquote(login))
            return stored
        if self.connection_format == "auto" and not (credential.address or credential.username):
            raise self._failure(
                "connections",
                conn_id,
                path,
                "the stored value is neither a connection URI nor connection JSON, and the account has no "
                "address or username to build one from",
            )
        return self._assembled(conn_id, path, credential)

    @staticmethod
    def _register_password(path: str, password: Any, login: Any) -> None:
        """The fetch registered the stored connection as a whole; Airflow masks only the raw password
        it parses out of it, so its other forms (``get_uri()`` quotes it) are registered here."""
        if isinstance(password, str) and password:
            from .fetch import register_fetched

            register_fetched(
                password,
                f"the password of the connection at {path!r}",
                username=login if isinstance(login, str) else None,
            )

    def _assembled(self, conn_id: str, path: str, credential: Credential) -> str:
        """Connection JSON from an account's properties, for accounts CyberArk manages and rotates."""
        extra = dict(credential.extra)
        conn_type = self.conn_type or extra.get("conn_type") or extra.get("ConnType")
        if not conn_type:
            raise self._failure(
                "connections", conn_id, path, "no conn_type: set conn_type in backend_kwargs or a ConnType property"
            )
        conn: dict[str, Any] = {"conn_type": str(conn_type), "password": credential.secret}
        for key, value in (
            ("host", credential.address),
            ("login", credential.username),
            ("port", credential.port),
            ("schema", credential.database),
        ):
            if value is not None:
                conn[key] = value
        stored_extra = extra.get("extra") or extra.get("Extra")
        if stored_extra:
            conn["extra"] = self._json_object(stored_extra, conn_id, path, "the account's Extra property")
        return json.dumps(conn)


@atexit.register
def reset_backend_state() -> None:
    """Drops the process-wide caches and clients, logging off PVWA sessions (at exit; in tests)."""
    CACHE.clear()
    with _FETCHERS_LOCK:
        fetchers = list(_FETCHERS.values())
        _FETCHERS.clear()
    for fetcher in fetchers:
        fetcher.close()


__all__ = ["BACKEND_OPTIONS", "CyberArkSecretsBackend", "VaultLookupFailed", "reset_backend_state"]
