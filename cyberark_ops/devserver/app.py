"""The dev server application: shared state, the request pipeline, and rotation scheduling.

Layout follows moto: each emulated API is a package (``conjur/``, ``vault/``) whose *state* module
holds its model and whose *handler* modules translate HTTP to model calls; ``api.py`` says what an
API must offer. ``DevApp`` holds the models of the registered APIs in one mapping (``DEFAULT_APIS``
plus whatever a caller passes as ``apis=``) and runs the pipeline every request goes through:
route, rate limit, injected faults, latency, handler, audit. Errors raised as ``DevHttpError``
become responses in one place, ``DevApp._call``.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import asdict
from email.utils import formatdate
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from .admin import ADMIN_API, admin_error, require_admin
from .api import ApiModel, EmulatedApi, Rotation, RouteSpec
from .audit import AuditLog
from .clock import Clock
from .cloud.api import CloudApi
from .conjur.api import ConjurApi
from .conjur.state import ConjurModel
from .demo import DEMO_API
from .errors import DevHttpError, SeedError
from .http import Request, Response, Route, Router, empty_response, text_response
from .knobs import MAX_TTL, Knobs, finite_number
from .vault.api import VaultApi
from .vault.state import VaultModel

log = logging.getLogger("cyberark_ops.devserver")

MAX_CATCH_UP = 100
"""Rotations replayed per schedule in one tick; a long clock jump skips the older ones instead of
looping for minutes under the lock."""


DEFAULT_APIS: Mapping[str, EmulatedApi] = {"conjur": ConjurApi, "vault": VaultApi, "cloud": CloudApi}
"""The APIs every dev server emulates, by name (= seed key = rotation target prefix). Add one with
``DevApp(seed, state_dir=..., apis={**DEFAULT_APIS, "acme": AcmeApi})``; see ``api.py``."""

M = TypeVar("M")


class DevApp:
    def __init__(
        self,
        seed: dict[str, Any],
        *,
        state_dir: Path,
        admin_token: str | None = None,
        clock: Clock | None = None,
        apis: Mapping[str, EmulatedApi] | None = None,
    ) -> None:
        self.apis: dict[str, EmulatedApi] = dict(DEFAULT_APIS if apis is None else apis)
        if "devserver" in self.apis:
            raise SeedError("apis", "'devserver' is the seed key of the server's own settings")
        keys = [*self.apis, "devserver"]
        unknown = set(seed) - set(keys)
        if unknown:
            raise SeedError("<seed>", f"unknown top-level key(s) {sorted(unknown)}; use {', '.join(keys)}")
        self.state_dir = state_dir
        self.clock = clock or Clock()
        self.admin_token = admin_token or secrets.token_urlsafe(24)
        self.audit = AuditLog(state_dir / "audit.jsonl")
        devserver = seed.get("devserver") or {}
        if not isinstance(devserver, dict):
            raise SeedError("devserver", "must be a mapping")
        self.knobs = Knobs.from_seed({k: v for k, v in devserver.items() if k not in {"rotations", "token_ttl"}})
        self.models: dict[str, ApiModel] = {
            name: api.from_seed(seed.get(name) or {}, name, state_dir=state_dir) for name, api in self.apis.items()
        }
        if devserver.get("token_ttl") is not None:
            self.set_token_ttl(devserver["token_ttl"], "devserver.token_ttl")
        self._rotations: list[Rotation] = []
        self._next_rotation_id = 1
        self._lock = threading.RLock()
        now = self.clock.now()
        for index, spec in enumerate(devserver.get("rotations") or []):
            self.schedule_rotation(spec, now, where=f"devserver.rotations[{index}]")
        self.router = self._build_router()

    # -- the registered APIs' state ---------------------------------------------------------------

    def model(self, name: str, kind: type[M]) -> M:
        """The state of API ``name``, checked to be a ``kind`` (for handlers and typed callers)."""
        found = self.models.get(name)
        if not isinstance(found, kind):
            raise LookupError(f"no {kind.__name__} registered as {name!r}")
        return found

    @property
    def conjur(self) -> ConjurModel:
        return self.model("conjur", ConjurModel)

    @property
    def vault(self) -> VaultModel:
        return self.model("vault", VaultModel)

    # -- state operations shared by the admin API and in-process callers ---------------------------

    def model_for(self, target: str) -> tuple[ApiModel, str]:
        api, sep, object_id = target.partition(":")
        hints = " or ".join(f"'{name}:{spec.target_hint}'" for name, spec in self.apis.items())
        if not sep or not object_id:
            raise SeedError("target", f"must look like {hints}")
        model = self.models.get(api)
        if model is None:
            raise SeedError("target", f"unknown API {api!r}; use {' or '.join(self.apis)}")
        return model, object_id

    def rotate(self, target: str, value: str | None = None, change_window: float = 0.0) -> dict[str, Any]:
        model, object_id = self.model_for(target)
        with self._lock:
            return model.rotate(object_id, value, self.clock.now(), change_window)

    def schedule_rotation(self, spec: Any, now: float | None = None, where: str = "rotation") -> Rotation:
        if not isinstance(spec, dict) or "target" not in spec or "every" not in spec:
            raise SeedError(where or "body", "needs 'target' and 'every' (seconds)")
        prefix = f"{where}." if where else ""
        # At least a second: a tiny period never advances ``next_at`` and tick() would spin forever.
        every = finite_number(spec["every"], f"{prefix}every", low=1.0, high=MAX_TTL)
        window = finite_number(spec.get("change_window", 0.0), f"{prefix}change_window", low=0.0, high=MAX_TTL)
        self.model_for(str(spec["target"]))  # validates the target before scheduling
        now = self.clock.now() if now is None else now
        with self._lock:
            rotation = Rotation(
                str(spec["target"]),
                every,
                now + every,
                window,
                self._next_rotation_id,
            )
            self._next_rotation_id += 1
            self._rotations.append(rotation)
            return rotation

    def rotations(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(r) for r in self._rotations]

    def cancel_rotations(self) -> None:
        with self._lock:
            self._rotations.clear()

    def set_token_ttl(self, seconds: Any, where: str = "token_ttl") -> None:
        seconds = finite_number(seconds, where, low=1.0, high=MAX_TTL)
        for model in self.models.values():
            model.set_token_ttl(seconds)

    def revoke_tokens(self) -> int:
        return sum(model.revoke_tokens() for model in self.models.values())

    def tick(self) -> None:
        """Applies rotations that came due; lazily, so a patched clock needs no background thread."""
        now = self.clock.now()
        with self._lock:
            for rotation in self._rotations:
                model, object_id = self.model_for(rotation.target)
                behind = (now - rotation.next_at) // rotation.every
                if behind > MAX_CATCH_UP:
                    rotation.next_at += (behind - MAX_CATCH_UP) * rotation.every
                # A window opens ``change_window`` seconds before the due time, like a CPM job.
                while rotation.next_at <= now:
                    try:
                        model.rotate(object_id, None, rotation.next_at, rotation.change_window)
                    except KeyError:
                        log.warning("scheduled rotation of %s: object no longer exists", rotation.target)
                    rotation.next_at += rotation.every
            for model in self.models.values():
                model.tick(now)

    # -- request pipeline --------------------------------------------------------------------------

    def _build_router(self) -> Router:
        """The admin API's routes, the demo API's, then each registered API's, in registration order."""
        router = Router()
        for spec in [*ADMIN_API, *DEMO_API, *(spec for api in self.apis.values() for spec in api.routes)]:
            router.routes.append(Route.compile(spec.method, spec.pattern, partial(self._call, spec), spec.endpoint))
        return router

    def dispatch(self, request: Request) -> Response:
        started = time.perf_counter()
        path = request.raw_path
        # Conjur Cloud (Secrets Manager SaaS) serves the same API under /api.
        if path == "/api" or path.startswith("/api/"):
            path = path[4:] or "/"
        route, params, path_known = self.router.match(request.method, path)
        endpoint = route.endpoint if route else "unknown"
        request.audit.api = endpoint.split(".", 1)[0] if route else "unknown"
        request.audit.action = endpoint
        fault_kind: str | None = None
        if route is None:
            response = empty_response(405 if path_known else 404)
        elif endpoint.startswith("dev."):
            request.params = params
            response = route.handler(request)
        else:
            request.params = params
            retry_after = self.knobs.take_token(self.clock.monotonic())
            fault = None if retry_after is not None else self.knobs.pick_fault(endpoint)
            delay = self.knobs.latency_for(endpoint)
            if delay:
                time.sleep(delay)
            if retry_after is not None:
                fault_kind = "rate_limit"
                response = text_response(429, "Too Many Requests")
                response.headers["Retry-After"] = str(retry_after)
            elif fault is not None:
                fault_kind = fault.kind
                response = _fault_response(fault)
            else:
                self.tick()
                response = route.handler(request)
        self.audit.record(
            {
                "api": request.audit.api,
                "action": request.audit.action,
                "method": request.method,
                "identity": request.audit.identity,
                "object": request.audit.object,
                "reason": request.audit.reason,
                "detail": request.audit.detail,
                "status": response.status,
                "outcome": "success" if response.status < 400 else "failure",
                "fault": fault_kind,
                "client_ip": request.client_ip,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            },
            self.clock.now(),
        )
        # Real servers date every answer (RFC 9110 §6.6.1); from the dev clock, so a clock jump
        # shows up as skew to clients that compare it with their own (``cyberark-ops doctor``).
        response.headers.setdefault("Date", formatdate(self.clock.now(), usegmt=True))
        return response

    def _call(self, spec: RouteSpec, request: Request) -> Response:
        """Runs one handler; the one place where a raised error becomes a response."""
        try:
            if spec.admin:
                require_admin(self, request)
            try:
                return spec.handler(self, request)
            except (SeedError, TypeError, ValueError, KeyError) as exc:
                if not spec.admin:
                    raise
                raise admin_error(exc) from None
        except DevHttpError as error:
            if error.detail is not None:
                request.audit.detail = error.detail
            if error.identity is not None:
                request.audit.identity = error.identity
            return error.response
        except Exception as exc:  # noqa: BLE001 - the server must answer, whatever a handler does
            # Never echo the exception message: it could quote request data. Type and frames suffice.
            frames = "".join(traceback.format_tb(exc.__traceback__))
            log.error("dev server handler %s failed: %s\n%s", request.audit.action, type(exc).__name__, frames)
            return text_response(500, "Internal Server Error")

    def close(self) -> None:
        self.audit.close()


def _fault_response(fault: Any) -> Response:
    if fault.kind == "drop":
        return Response(0, headers={"X-Dev-Drop-Connection": "1"})
    if fault.kind == "malformed":
        return Response(200, b'{"truncated": ', "application/json; charset=utf-8", {"X-Dev-Fault": "malformed"})
    if fault.kind == "content_type":
        return Response(200, b"<html><body>Maintenance</body></html>", "text/html", {"X-Dev-Fault": "content_type"})
    response = text_response(fault.status, "Injected fault")
    response.headers["X-Dev-Fault"] = "status"
    if fault.retry_after is not None:
        response.headers["Retry-After"] = str(fault.retry_after)
    return response
