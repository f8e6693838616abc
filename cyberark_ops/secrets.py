"""``CyberArkSecretsBackend``: Airflow connections, variables and config served from CyberArk.

Configured with ``[secrets] backend`` / ``backend_kwargs`` (or the worker-side
``[workers] secrets_backend`` / ``secrets_backend_kwargs``), existing DAGs get their connections
and variables from CyberArk with no code change. It fetches through the same fetch core as the
hook (never through ``CyberArkHook``, whose connection lookup would come back here).

Airflow treats any exception from a backend as "try the next one" and logs it at DEBUG only, so a
vault outage would silently fall through to the metadata DB. This backend raises
``AirflowSecretsBackendAccessDenied`` (the one signal Airflow does not swallow) for every vault
failure unless ``fall_through_on_error`` is set, so the task fails naming the id and the path.

Multi-team (Airflow 3.2+): a ``{team}`` in ``connections_path`` / ``variables_path`` gives each team
its own namespace, and ``teams`` its own CyberArk identity. Airflow passes ``team_name`` only on the
API server (the Execution API); a task process or the triggerer asks with no team, and this backend
never guesses one (docs/secrets-backend.md, "Multi-team").
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
from .settings import (  # noqa: E402
    ConnectionSettings,
    SettingsError,
    as_backend_error,
    as_bool,
    backend_error,
)

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
_TEAM_KINDS = ("connections", "variables")
"""Config has no team: Airflow reads it with none, in every process."""
TEAM_NAME = re.compile(r"[A-Za-z0-9_-]{3,50}")
"""Airflow's rule for a team name (``airflow teams create``), matched whole."""
TEAM_DELIMITERS = "/;."
"""What may follow ``{team}`` in a template: no team name holds it and no reference reads it as a
scheme, so the team's part of a path ends there and one team's paths never begin another's."""
_TEAM_SENTINEL = "Zq9teamZq9"
_ID_SENTINEL = "Zq9idZq9"
_TEAM_SETTINGS_REFUSED = ("url", "api")
"""One vault for every team (so every team's paths resolve alike); a team's entry changes who asks."""
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
    "global_connections_path",
    "global_variables_path",
    "team_fallback_to_global",
    "teams",
)
"""Keys of ``backend_kwargs`` that configure the backend itself; the rest say how to reach CyberArk."""


class VaultLookupFailed(AirflowSecretsBackendAccessDenied):
    """A lookup the vault could not answer; raised instead of falling through to the next backend."""


class _Cache:
    """Process-wide: Airflow 3.1 builds a new backend object for every lookup, 3.3 one per process."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, ...], tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...]) -> tuple[bool, str | None]:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return False, None
            if entry[0] <= time.monotonic():
                del self._entries[key]
                return False, None
            return True, entry[1]

    def put(self, key: tuple[str, ...], value: str | None, ttl: float) -> None:
        if ttl <= 0:
            return
        with self._lock:
            self._entries[key] = (time.monotonic() + ttl, value)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


CACHE = _Cache()
_FETCHERS: dict[tuple[str, str], Fetcher] = {}
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


def _template(kwargs: Mapping[str, Any], kind: str, env: str | None, *, name: str = "") -> str | None:
    """``{kind}_path`` (or the key ``name``) checked: only its placeholders, no ``.`` segment, and
    ``{team}`` (connections and variables only) once, before the id and followed by one of
    ``TEAM_DELIMITERS``."""
    name = name or f"{kind}_path"
    value = kwargs.get(name)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise backend_error(name, "must be a string such as airflow/{env}/" + kind + "/{" + _KINDS[kind][0] + "}")
    team_allowed = kind in _TEAM_KINDS and not name.startswith("global_")
    allowed = {*_KINDS[kind], "env", *(("team",) if team_allowed else ())}
    try:
        parsed = list(string.Formatter().parse(value))
    except ValueError as exc:
        raise backend_error(name, f"{value!r} is not a valid template ({exc})") from None
    fields = [(field, spec, conv) for _, field, spec, conv in parsed if field is not None]
    for field, spec, conv in fields:
        if field not in allowed:
            hint = " ({team} belongs in connections_path or variables_path)" if field == "team" else ""
            raise backend_error(
                name, f"{value!r} uses {{{field}}}; use {', '.join('{' + f + '}' for f in sorted(allowed))}{hint}"
            )
        if spec or conv:
            raise backend_error(name, f"{value!r}: placeholders take no format spec or conversion")
        if field == "env" and not env:
            raise backend_error(name, f"{value!r} uses {{env}} but backend_kwargs set no env")
    names = [field for field, _, _ in fields]
    if _KINDS[kind][0] not in names:
        raise backend_error(name, f"{value!r} must contain {{{_KINDS[kind][0]}}}")
    if "team" in names:
        after = [literal for literal, field, _, _ in parsed]
        position = names.index("team")
        follows = after[position + 1][:1] if position + 1 < len(after) else ""
        delimited = bool(follows) and follows in TEAM_DELIMITERS
        if names.count("team") > 1 or names.index(_KINDS[kind][0]) < position or not delimited:
            raise backend_error(
                name,
                f"{value!r}: {{team}} must appear once, before {{{_KINDS[kind][0]}}}, followed by one of "
                f"{' '.join(TEAM_DELIMITERS)} (e.g. airflow/{{team}}/{kind}/{{{_KINDS[kind][0]}}}), so that no "
                "id of one team spells a path of another",
            )
    sample = value.format(env=env or "", team="sample", **dict.fromkeys(_KINDS[kind], "sample"))
    if any(segment in (".", "..") for segment in re.split(r"[/;=]", sample)):
        raise backend_error(name, f"{value!r} has a '.' or '..' segment, which could address another path")
    return value


def _teams(kwargs: Mapping[str, Any]) -> dict[str, dict[str, Any]] | None:
    """``teams``: each team's own identity (a mapping of connection settings per team name)."""
    teams = kwargs.get("teams")
    if teams is None:
        return None
    if not isinstance(teams, Mapping) or not teams:
        raise backend_error("teams", 'must be an object of team name -> settings, e.g. {"team_a": {"login": ...}}')
    checked: dict[str, dict[str, Any]] = {}
    for team, overrides in teams.items():
        if not isinstance(team, str) or not TEAM_NAME.fullmatch(team):
            problem = "is not an Airflow team name (3-50 letters, digits, - or _)"
            raise backend_error("teams", f"{shown(str(team))} {problem}")
        if not isinstance(overrides, Mapping) or not overrides:
            raise backend_error(f"teams.{team}", "must be an object of settings such as login and api_key_file")
        for key in overrides:
            if key in BACKEND_OPTIONS or key in _TEAM_SETTINGS_REFUSED:
                raise backend_error(
                    f"teams.{team}.{key}",
                    "set once for all teams; a team's entry holds who it is (login, api_key_file, app_id, ...)",
                )
        checked[team] = dict(overrides)
    return checked


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
        self.global_templates: dict[str, str | None] = {}
        for kind in _KINDS:
            template = self.templates[kind]
            scoped = template is not None and "{team}" in template
            name = f"global_{kind}_path"
            if kind in _TEAM_KINDS and kwargs.get(name) not in (None, "") and not scoped:
                problem = f"only with a {kind}_path that uses {{team}} (without it, {kind}_path is global)"
                raise backend_error(name, problem)
            self.global_templates[kind] = _template(kwargs, kind, env, name=name) if scoped else template
        try:
            fallback = kwargs.get("team_fallback_to_global", False)
            self.team_fallback_to_global = as_bool(fallback, "team_fallback_to_global")
        except ConfigurationError as exc:
            raise as_backend_error(exc) from None
        team_overrides = _teams(kwargs)
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
        self.team_settings: dict[str, ConnectionSettings] | None = None
        if team_overrides is not None:
            shared = {key: value for key, value in kwargs.items() if key != "teams"}
            self.team_settings = {}
            for team, overrides in team_overrides.items():
                try:
                    self.team_settings[team] = ConnectionSettings.from_backend_kwargs(
                        {**shared, **overrides}, reserved=BACKEND_OPTIONS
                    )
                except SettingsError as exc:
                    raise backend_error(f"teams.{team}.{exc.field}", exc.problem) from None
        self._namespaces = {kind: self._namespace_pattern(kind) for kind in _TEAM_KINDS}
        for kind in _TEAM_KINDS:
            template = self.templates[kind]
            if self._namespaces[kind] is not None and template is not None:
                sample = template.format(env=env or "", team=_TEAM_SENTINEL, **dict.fromkeys(_KINDS[kind], "sample"))
                if self._namespace_owners(sample) - {_TEAM_SENTINEL}:
                    raise backend_error(
                        f"{kind}_path",
                        f"{template!r}: every team's path lies inside another team's namespace of the other "
                        "template (a team named like its prefix); give connections_path and variables_path "
                        "distinct prefixes before {team}",
                    )
            global_template = self.global_templates[kind]
            if self._namespaces[kind] is not None and global_template is not None:
                sample = global_template.format(env=env or "", **dict.fromkeys(_KINDS[kind], "sample"))
                if self._namespace_owners(sample):
                    raise backend_error(
                        f"global_{kind}_path",
                        f"{global_template!r} lies inside the namespace {kind}_path gives a team (its paths could "
                        "be a team's); give global paths a prefix no team path has",
                    )
        self._warned: set[tuple[str, str]] = set()
        self._key = _fingerprint(kwargs)

    def __repr__(self) -> str:
        return f"CyberArkSecretsBackend(api={self.settings.api!r}, url={self.settings.base_url!r})"

    # -- Airflow's interface --------------------------------------------------------------------------

    @scrubs_exceptions
    def get_conn_value(self, conn_id: str, team_name: str | None = None) -> str | None:
        """Connection JSON (or a URI, when that is what is stored); ``team_name`` from Airflow 3.2+'s
        Execution API (None in task processes and the triggerer)."""
        return self._lookup("connections", conn_id, team_name, conn_id=conn_id)

    @scrubs_exceptions
    def get_variable(self, key: str, team_name: str | None = None) -> str | None:
        return self._lookup("variables", key, team_name, variable=key)

    @scrubs_exceptions
    def get_config(self, key: str) -> str | None:
        section, dot, option = key.partition(".")
        return self._lookup("config", key, None, key=option if dot else key, section=section if dot else "")

    # -- lookups --------------------------------------------------------------------------------------

    def _lookup(self, kind: str, item: str, team: str | None, **values: str) -> str | None:
        """Every failure is ``VaultLookupFailed`` (or None with ``fall_through_on_error``): any other
        exception, even a ``RecursionError`` or ``MemoryError``, Airflow logs at DEBUG and answers
        from the next backend, serving a stale connection without a word."""
        try:
            return self._lookup_unguarded(kind, item, team, **values)
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

    def path_for(self, kind: str, item: str, *, team: str | None = None, **values: str) -> tuple[str | None, str]:
        """The vault path this backend reads first for ``item`` (``kind``: connections, variables or
        config; ``team``: the Airflow team asking, None for a global lookup; ``values`` fill the
        template), or None and why it never looks ``item`` up: what ``cyberark-ops migrate`` plans
        with, so a migrated value lands where lookups read it."""
        why = self._out_of_scope(kind, item) or self._team_problem(kind, item, team)
        if why:
            return None, why
        paths, why = self.lookup_paths(kind, item, team, **values)
        return (paths[0], "") if paths else (None, why)

    def lookup_paths(self, kind: str, item: str, team: str | None, **values: str) -> tuple[list[str], str]:
        """Every path a lookup of ``item`` by ``team`` reads, in order (the team's, then the global one
        when it may fall back), or none and why. The one place a team meets a path: the lookup and
        the isolation property test both use it."""
        template = self.templates[kind]
        scoped = template is not None and "{team}" in template
        candidates: list[tuple[str, bool]] = []  # (template, global)
        if team is not None and scoped and template is not None:
            candidates.append((template, False))
        if team is None or self.team_fallback_to_global:
            global_template = self.global_templates.get(kind)
            if global_template is not None:
                candidates.append((global_template, True))
        if not candidates:
            if team is None:
                return [], f"{kind}_path uses {{team}}, Airflow passed no team, and no global_{kind}_path is set"
            return [], f"{kind}_path is global and team_fallback_to_global is off"
        paths: list[str] = []
        why = ""
        for candidate, is_global in candidates:
            path, why = self._resolved_path(candidate, {**values, "team": team or ""})
            if path is None:
                continue
            # Never inside another team's namespace, whichever template made it: an id spelling
            # another team's path through a global template, or a variables path that reads as a
            # team's connections path (a team named like the other template's prefix).
            owners = self._namespace_owners(path)
            if owners - ({team} if not is_global else set()):
                why = "the path of this id lies inside a team's namespace (connections_path / variables_path)"
                continue
            paths.append(path)
        return paths, why

    def team_namespace(self, kind: str, team: str) -> str:
        """How every reference in ``team``'s namespace begins, in the references' canonical form
        (``conjur:airflow/team_a/``): what the isolation proof compares paths with."""
        return self._canonical_prefix(kind).replace(_TEAM_SENTINEL, team)

    def canonical(self, path: str) -> str:
        """``path`` as the reference it names (scheme, normalised keys), as the vault is asked."""
        return str(self.settings.resolve(path, source="the secrets backend"))

    def _canonical_prefix(self, kind: str) -> str:
        template = self.templates[kind] or ""
        sample = template.format(env=self.env or "", team=_TEAM_SENTINEL, **dict.fromkeys(_KINDS[kind], _ID_SENTINEL))
        canonical = self.canonical(sample)
        return canonical[: canonical.index(_ID_SENTINEL)]

    def _namespace_pattern(self, kind: str) -> re.Pattern[str] | None:
        """Matches a canonical reference inside any team's namespace; None without ``{team}``."""
        template = self.templates[kind]
        if template is None or "{team}" not in template:
            return None
        try:
            before, _, after = self._canonical_prefix(kind).partition(_TEAM_SENTINEL)
        except ConfigurationError as exc:
            raise backend_error(f"{kind}_path", f"{template!r} makes no valid reference ({exc})") from None
        return re.compile(re.escape(before) + f"(?P<team>{TEAM_NAME.pattern})" + re.escape(after[:1]))

    def _namespace_owners(self, path: str) -> set[str | None]:
        """The teams in whose namespace (of any kind) ``path`` lies."""
        try:
            canonical = self.canonical(path)
        except ConfigurationError:  # names no reference, so nothing of a team's
            return set()
        matches = (pattern.match(canonical) for pattern in self._namespaces.values() if pattern is not None)
        return {match.group("team") for match in matches if match is not None}

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

    def _team_problem(self, kind: str, item: str, team: str | None) -> str:
        """Why a lookup by ``team`` reads nothing here ("" when it may); raises on a malformed team."""
        if team is None or kind not in _TEAM_KINDS:
            return ""
        if not isinstance(team, str) or not TEAM_NAME.fullmatch(team):
            raise self._failure(
                kind, item, self.templates[kind] or "", f"team_name {shown(str(team))} is not an Airflow team name"
            )
        if self.team_settings is not None and team not in self.team_settings:
            return f"team {team!r} has no entry in backend_kwargs teams"
        return ""

    def _resolved_path(self, template: str, values: Mapping[str, str]) -> tuple[str | None, str]:
        path = template.format(env=self.env or "", **values)
        try:
            self.settings.resolve(path, source="the secrets backend")
        except ConfigurationError as exc:
            # The template was checked at start-up, so it is the id that no reference can hold.
            return None, f"no valid reference: {exc}"
        return path, ""

    def _once(self, kind: str, reason: str) -> None:
        """A skip that would repeat for every id Airflow asks about: logged once per backend object."""
        if (kind, reason) not in self._warned:
            self._warned.add((kind, reason))
            log.warning("CyberArk secrets backend: %s: %s; not looked up here", kind, reason)

    def _lookup_unguarded(self, kind: str, item: str, team: str | None, **values: str) -> str | None:
        if self._out_of_scope(kind, item):
            # Not a name any vault path holds (whitespace at an end, a lone surrogate, '..', longer
            # than Airflow's ids), or outside the pattern: "not found", so Airflow asks its other
            # backends, as documented.
            log.debug("CyberArk secrets backend: %s id outside what it looks up; not looked up", kind)
            return None
        if kind not in _TEAM_KINDS:
            team = None
        team_problem = self._team_problem(kind, item, team)
        if team_problem:
            self._once(kind, team_problem)
            return None
        template = self.templates[kind] or ""
        cache_key = (self._key, kind, team or "", item)
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
        paths, why = self.lookup_paths(kind, item, team, **values)
        if not paths:
            if "{team}" in why or "team_fallback" in why:
                self._once(kind, why)
            else:
                log.warning("CyberArk secrets backend: %s %s: %s; not looked up", kind.rstrip("s"), shown(item), why)
            return None
        for path in paths:
            value = self._read(kind, item, path, team)
            if value is not None:
                CACHE.put(cache_key, value, self.cache_ttl)
                return value
        CACHE.put(cache_key, None, self.negative_cache_ttl)
        return None

    def _read(self, kind: str, item: str, path: str, team: str | None) -> str | None:
        """The value at ``path``, read as ``team``'s identity; None when the vault has none."""
        try:
            credential = self._fetcher(team).get_credential(path)
        except NotFound:
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
        return credential.secret if kind != "connections" else self._connection_value(item, path, credential)

    def _fetcher(self, team: str | None = None) -> Fetcher:
        """One per configuration, team and process, so the token is reused across lookups and
        backend objects, and a team's lookups authenticate as the team's own identity."""
        # Airflow builds the backend in every process it starts; the fetch core and the client
        # layer load on the first lookup, so a process that looks nothing up never pays for them.
        from .fetch import Fetcher

        settings = self.settings
        if team is not None and self.team_settings is not None:
            settings = self.team_settings[team]
        else:
            team = None
        key = (self._key, team or "")
        with _FETCHERS_LOCK:
            fetcher = _FETCHERS.get(key)
            if fetcher is None:
                name = f"the secrets backend (team {team})" if team else "the secrets backend"
                fetcher = _FETCHERS[key] = Fetcher(settings, name=name, reason=self.reason, keep_sessions=True)
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
