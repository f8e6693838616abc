"""``Credential``: a fetched secret with its non-secret context, built not to leak.

Where a secret ends up by accident in Airflow — logs (``repr``/``str``/f-strings), XCom and
rendered fields (JSON / Airflow serde), pickled task state — this object refuses to carry it:

* ``repr``/``str``/``format`` show the username, address and source, never the secret;
* ``pickle`` (``__reduce__``/``__reduce_ex__``/``__getstate__``) raises ``TypeError``: a
  credential stays in the process that fetched it;
* it is deliberately not a dataclass, attrs or pydantic class and has no ``serialize`` method, so
  ``json.dumps`` and Airflow's serde reject it;
* ``copy.copy``/``copy.deepcopy`` are allowed and return the same object: it is immutable, and
  Airflow deep-copies operator attributes, which must not fail.

``to_dict(include_secret=True)`` is the explicit way out, for code that builds a connection.

``check_in_id`` is what an exclusive PVWA account needs to be checked in after use: its account id
alone (the session that fetched it is closed; the check-in opens its own), so nothing that can
reach the secret has to outlive the task's use of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, NoReturn


def parse_port(value: object) -> int | None:
    """Vault properties are strings (``"Port": "5432"``); a non-numeric port is dropped, not guessed."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _refuse(what: str) -> NoReturn:
    raise TypeError(
        f"Credential objects cannot be {what}: the secret must stay in the process that fetched it. "
        "Fetch it again where it is needed, or pass the reference instead."
    )


class Credential:
    __slots__ = (
        "_secret",
        "address",
        "check_in_id",
        "database",
        "extra",
        "fetched_at",
        "port",
        "source",
        "username",
    )

    _secret: str
    username: str | None
    address: str | None
    port: int | None
    database: str | None
    extra: Mapping[str, Any]
    source: str
    fetched_at: datetime
    check_in_id: str | None

    def __init__(
        self,
        *,
        secret: str,
        source: str,
        username: str | None = None,
        address: str | None = None,
        port: int | None = None,
        database: str | None = None,
        extra: Mapping[str, Any] | None = None,
        fetched_at: datetime | None = None,
        check_in_id: str | None = None,
    ) -> None:
        if not isinstance(secret, str):
            raise TypeError("Credential secret must be a str")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
            raise TypeError("Credential port must be an int or None")
        if check_in_id is not None and (not isinstance(check_in_id, str) or not check_in_id):
            raise TypeError("Credential check_in_id must be a non-empty str or None")
        setter = object.__setattr__
        setter(self, "_secret", secret)
        setter(self, "username", username)
        setter(self, "address", address)
        setter(self, "port", port)
        setter(self, "database", database)
        setter(self, "extra", MappingProxyType(dict(extra or {})))
        setter(self, "source", source)
        setter(self, "fetched_at", fetched_at or datetime.now(timezone.utc))
        setter(self, "check_in_id", check_in_id)

    @property
    def secret(self) -> str:
        return self._secret

    def to_dict(self, include_secret: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "username": self.username,
            "address": self.address,
            "port": self.port,
            "database": self.database,
            "extra": dict(self.extra),
            "source": self.source,
            "fetched_at": self.fetched_at.isoformat(),
            "check_in_id": self.check_in_id,
        }
        if include_secret:
            data["secret"] = self._secret
        return data

    # -- never shows the secret -------------------------------------------------------------------

    def __repr__(self) -> str:
        keys = ", ".join(sorted(self.extra))
        check_in = f", check_in_id={self.check_in_id!r}" if self.check_in_id is not None else ""
        return (
            f"Credential(username={self.username!r}, address={self.address!r}, port={self.port!r}, "
            f"database={self.database!r}, source={self.source!r}, extra_keys=[{keys}]{check_in}, secret='***')"
        )

    __str__ = __repr__

    def __format__(self, format_spec: str) -> str:
        return format(repr(self), format_spec)

    # -- immutable, and refuses to travel -------------------------------------------------------

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Credential is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Credential is read-only")

    def __reduce__(self) -> NoReturn:
        _refuse("pickled")

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        _refuse("pickled")

    def __getstate__(self) -> NoReturn:
        _refuse("pickled")

    def __setstate__(self, state: object) -> NoReturn:
        _refuse("unpickled")

    def __copy__(self) -> Credential:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Credential:
        return self

    # Equality by identity: comparing secrets is not this object's job.
    __hash__ = object.__hash__


__all__ = ["Credential"]
