"""The dev server application: shared state, the request pipeline, and rotation scheduling.

Layout follows moto: per-API *models* hold state (``conjur/models.py``, ``vault/models.py``), thin
*handlers* translate HTTP to model calls (``conjur/handlers.py``, ``vault/ccp.py``,
``vault/pvwa.py``), and this module runs the pipeline every request goes through: route, rate
limit, injected faults, latency, handler, audit.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from .audit import AuditLog
from .clock import Clock
from .errors import SeedError
from .http import Request, Response, Router, empty_response, text_response
from .knobs import MAX_TTL, Knobs, finite_number

log = logging.getLogger("cyberark_ops.devserver")

MAX_CATCH_UP = 100
"""Rotations replayed per schedule in one tick; a long clock jump skips the older ones instead of
looping for minutes under the lock."""


class ApiModel(Protocol):
    """What the pipeline and the admin API need from each emulated API's state."""

    def rotate(self, object_id: str, value: str | None, now: float, change_window: float) -> dict[str, Any]:
        """Gives ``object_id`` a new secret (``value`` or a random one); returns facts, never the value."""
        ...

    def tick(self, now: float) -> None:
        """Completes whatever was scheduled to finish by ``now`` (e.g. a CPM change window)."""
        ...

    def revoke_tokens(self) -> int:
        """Invalidates every session / access token issued so far; returns how many."""
        ...

    def set_token_ttl(self, seconds: float) -> None: ...


@dataclass
class Rotation:
    target: str
    """``conjur:<variable id>`` or ``vault:<account id>``."""
    every: float
    next_at: float
    change_window: float = 0.0
    id: int = 0


class DevApp:
    def __init__(
        self,
        seed: dict[str, Any],
        *,
        state_dir: Path,
        admin_token: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        from .conjur.models import ConjurModel
        from .vault.models import VaultModel

        unknown = set(seed) - {"conjur", "vault", "devserver"}
        if unknown:
            raise SeedError("<seed>", f"unknown top-level key(s) {sorted(unknown)}; use conjur, vault, devserver")
        self.state_dir = state_dir
        self.clock = clock or Clock()
        self.admin_token = admin_token or secrets.token_urlsafe(24)
        self.audit = AuditLog(state_dir / "audit.jsonl")
        devserver = seed.get("devserver") or {}
        if not isinstance(devserver, dict):
            raise SeedError("devserver", "must be a mapping")
        self.knobs = Knobs.from_seed({k: v for k, v in devserver.items() if k not in {"rotations", "token_ttl"}})
        self.conjur = ConjurModel.from_seed(seed.get("conjur") or {}, "conjur", state_dir=state_dir)
        self.vault = VaultModel.from_seed(seed.get("vault") or {}, "vault")
        if devserver.get("token_ttl") is not None:
            self.set_token_ttl(devserver["token_ttl"], "devserver.token_ttl")
        self._rotations: list[Rotation] = []
        self._next_rotation_id = 1
        self._lock = threading.RLock()
        now = self.clock.now()
        for index, spec in enumerate(devserver.get("rotations") or []):
            self.schedule_rotation(spec, now, where=f"devserver.rotations[{index}]")
        self.router = self._build_router()

    # -- state operations shared by the admin API and in-process callers ---------------------------

    def model_for(self, target: str) -> tuple[ApiModel, str]:
        api, sep, object_id = target.partition(":")
        if not sep or not object_id:
            raise SeedError("target", "must look like 'conjur:<variable id>' or 'vault:<account id>'")
        if api == "conjur":
            return self.conjur, object_id
        if api == "vault":
            return self.vault, object_id
        raise SeedError("target", f"unknown API {api!r}; use conjur or vault")

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
        self.conjur.set_token_ttl(seconds)
        self.vault.set_token_ttl(seconds)

    def revoke_tokens(self) -> int:
        revoked: int = self.conjur.revoke_tokens() + self.vault.revoke_tokens()
        return revoked

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
            self.conjur.tick(now)
            self.vault.tick(now)

    # -- request pipeline --------------------------------------------------------------------------

    def _build_router(self) -> Router:
        from .admin import build_router as admin_router
        from .conjur.handlers import build_router as conjur_router
        from .vault.ccp import build_router as ccp_router
        from .vault.pvwa import build_router as pvwa_router

        router = Router()
        router.include(admin_router(self))
        router.include(ccp_router(self))
        router.include(pvwa_router(self))
        router.include(conjur_router(self))
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
            response = self._call(route.handler, request)
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
                response = self._call(route.handler, request)
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
        return response

    def _call(self, handler: Any, request: Request) -> Response:
        try:
            response: Response = handler(request)
            return response
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
