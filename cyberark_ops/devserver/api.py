"""What an emulated API is, for ``DevApp``: the contract a fourth API implements.

An API is registered in ``DevApp`` (and ``DevServer``, and the pytest fixtures) under a *name*,
which is also its top-level seed key and the prefix of its rotation targets (``conjur:<id>``)::

    DevServer(seed, apis={**DEFAULT_APIS, "acme": AcmeApi})

The registered object (usually the API's model class) is an ``EmulatedApi``: it builds the API's
state from its seed section and lists the API's routes. The state it builds is an ``ApiModel``, the
hooks the admin API and the clock drive (rotation, change windows, token TTL and revocation).

Handlers are plain module-level functions ``handler(app, request) -> Response``; they find their
state with ``app.model(name, ModelClass)`` and end a request with an error by raising
``DevHttpError`` (see ``errors.py``). ``app`` is typed as ``AppContext``, the part of ``DevApp``
handlers use, so that handler modules sit below ``app.py`` (which imports every API) rather than
importing it back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from .audit import AuditLog
from .clock import Clock
from .http import Request, Response
from .knobs import Knobs

M = TypeVar("M")


@dataclass
class Rotation:
    """A scheduled rotation of one object, replayed by ``DevApp.tick``."""

    target: str
    """``<api name>:<object id>``, e.g. ``conjur:<variable id>`` or ``vault:<account id>``."""
    every: float
    next_at: float
    change_window: float = 0.0
    id: int = 0


class AppContext(Protocol):
    """What a handler sees of ``DevApp``: the registered APIs' state, the clock, the knobs, the audit
    log, and the state operations the admin API drives."""

    @property
    def admin_token(self) -> str: ...

    @property
    def audit(self) -> AuditLog: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def knobs(self) -> Knobs: ...

    @property
    def models(self) -> Mapping[str, ApiModel]:
        """The state of each registered API, by name."""
        ...

    def model(self, name: str, kind: type[M]) -> M:
        """The state of API ``name``, checked to be a ``kind``; ``LookupError`` otherwise."""
        ...

    def rotate(self, target: str, value: str | None = None, change_window: float = 0.0) -> dict[str, Any]: ...

    def schedule_rotation(self, spec: Any, now: float | None = None, where: str = "rotation") -> Rotation: ...

    def rotations(self) -> list[dict[str, Any]]: ...

    def cancel_rotations(self) -> None: ...

    def set_token_ttl(self, seconds: Any, where: str = "token_ttl") -> None: ...

    def revoke_tokens(self) -> int: ...

    def tick(self) -> None:
        """Applies rotations and change windows that came due by the dev clock's now."""
        ...


AppHandler = Callable[[AppContext, Request], Response]


@dataclass(frozen=True)
class RouteSpec:
    """One row of an API's route table."""

    method: str
    pattern: str
    """A regular expression matched against the whole raw (still percent-encoded) path."""
    endpoint: str
    """``<api>.<action>``: the name knobs, faults and the audit log use (``dev.*`` skips knobs)."""
    handler: AppHandler
    admin: bool = False
    """Needs the admin token; input errors (``SeedError``, a missing object) become 400 / 404."""


class ApiModel(Protocol):
    """The state of one emulated API, as the pipeline and the admin API drive it."""

    def rotate(self, object_id: str, value: str | None, now: float, change_window: float) -> dict[str, Any]:
        """Gives ``object_id`` a new secret (``value`` or a random one); returns facts, never the value.
        Raises ``KeyError`` for an unknown object."""
        ...

    def tick(self, now: float) -> None:
        """Completes whatever was scheduled to finish by ``now`` (e.g. a CPM change window)."""
        ...

    def revoke_tokens(self) -> int:
        """Invalidates every session / access token issued so far; returns how many."""
        ...

    def set_token_ttl(self, seconds: float) -> None:
        """The lifetime of tokens issued from now on."""
        ...


class EmulatedApi(Protocol):
    """What gets registered under an API's name: a factory of its state plus its route table."""

    @property
    def routes(self) -> Sequence[RouteSpec]:
        """The API's routes, matched in order after those of the APIs registered before it."""
        ...

    @property
    def target_hint(self) -> str:
        """What follows ``<name>:`` in a rotation target, for error messages (``<variable id>``)."""
        ...

    def from_seed(self, data: Any, where: str, *, state_dir: Path) -> ApiModel:
        """Validates the API's seed section (``{}`` when absent; ``where`` is its path for
        ``SeedError``) and builds its state; ``state_dir`` is for files that outlive a restart."""
        ...
