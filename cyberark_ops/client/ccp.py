"""Central Credential Provider (AIMWebService REST) client.

CCP authenticates the *application* (AppID rules: client certificate, allowed machines), so no
credential is configured here beyond the optional TLS client certificate. Query values are
validated before the URL is built: CCP cannot carry ``+ & % ;`` in values, and a silently
altered query would fetch a different account.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from .config import CCPConfig
from .credential import Credential, parse_port
from .errors import ConfigurationError, PasswordChangeInProgress
from .refs import CCPRef
from .transport import Call, EventCallback, Transport
from .validation import CCP_FORBIDDEN, CONTROL_CHARS

_RESERVED_PROPERTIES = {"Content", "UserName", "Address", "Port", "Database"}


def _truthy(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


class CCPClient:
    """Fetches accounts from CCP for one AppID. Thread-safe; share one per process and config."""

    def __init__(
        self,
        config: CCPConfig,
        *,
        on_event: EventCallback | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self._sleep = sleep
        self._transport = Transport(config, api="ccp", on_event=on_event, sleep=sleep)
        self._path = f"/{config.service_path}/api/Accounts"

    def get_account(
        self,
        *,
        safe: str | None = None,
        object: str | None = None,
        folder: str | None = None,
        username: str | None = None,
        address: str | None = None,
        database: str | None = None,
        policy_id: str | None = None,
        query: str | None = None,
        query_format: str | None = None,
        reason: str | None = None,
    ) -> Credential:
        ref = CCPRef.of(
            Safe=safe,
            Object=object,
            Folder=folder,
            UserName=username,
            Address=address,
            Database=database,
            PolicyID=policy_id,
            Query=query,
            QueryFormat=query_format,
        )
        return self.get(ref, reason=reason)

    def get(self, ref: CCPRef, *, reason: str | None = None) -> Credential:
        """Fetches the account ``ref`` selects, waiting out a CPM password change a bounded number of times.

        A ``PasswordChangeInProcess: True`` answer (or APPAP282E when ``fail_on_password_change``)
        means the value may be superseded moments later, so it is not returned: the client waits
        ``password_change_wait`` seconds up to ``password_change_retries`` times, then raises
        ``PasswordChangeInProgress``.
        """
        query_format = ref.get("QueryFormat")
        if query_format is not None and query_format.lower() not in ("exact", "regexp"):
            raise validate_error("QueryFormat", f"{query_format!r} must be Exact or Regexp")
        if len(ref.params) == 1 and query_format is not None:
            raise validate_error("QueryFormat", "needs a search parameter (Safe, Object, Query ...) next to it")
        params: list[tuple[str, str]] = [("AppID", self.config.app_id), *ref.params]
        cleaned_reason = ccp_reason(reason)
        if cleaned_reason:
            params.append(("Reason", cleaned_reason))
        if self.config.connection_timeout is not None:
            params.append(("ConnectionTimeout", str(int(self.config.connection_timeout))))
        params.append(("FailRequestOnPasswordChange", "true" if self.config.fail_on_password_change else "false"))
        call = Call(
            "GET",
            self._path,
            action="get_password",
            target=f"for AppID {self.config.app_id!r} and {ref}",
            query="&".join(f"{key}={quote(value, safe='')}" for key, value in params),
            hints={
                401: "CCP answered 401: check the IIS authentication settings of the AIMWebService application.",
            },
        )
        waits = 0
        while True:
            try:
                response = self._transport.request(call)
                data = self._transport.json(response, call)
                if not isinstance(data, dict) or not isinstance(data.get("Content"), str):
                    raise self._transport.invalid_response(
                        call, "an answer without the account's Content", response.status_code
                    )
                if not _truthy(data.get("PasswordChangeInProcess")):
                    return self._credential(data, ref)
                problem = PasswordChangeInProgress(
                    f"CCP get_password {call.target}: the CPM was still changing the password after "
                    f"{waits} wait(s) of {self.config.password_change_wait:g}s; raise "
                    f"password_change_retries "
                    "or use dual accounts (Query=VirtualUsername=...) for credentials that rotate often",
                    api="ccp",
                    action="get_password",
                    path=self._path,
                    status=response.status_code,
                )
            except PasswordChangeInProgress as exc:
                problem = exc
            if waits >= self.config.password_change_retries:
                raise problem
            waits += 1
            self._transport.emit(
                "retry",
                {
                    "action": "get_password",
                    "attempt": float(waits),
                    "reason": "password_change",
                    "delay": self.config.password_change_wait,
                },
            )
            self._sleep(self.config.password_change_wait)

    def check_service(self) -> str:
        """Checks reachability and TLS (server certificate, client certificate) without querying an
        account: CCP has no authentication-only call, and a made-up query would flood the Vault's
        logs with not-found errors. Whether the AppID accepts this machine shows on the first fetch."""
        return self._transport.check_connection()

    def _credential(self, data: Mapping[str, Any], ref: CCPRef) -> Credential:
        extra = {k: v for k, v in data.items() if k not in _RESERVED_PROPERTIES}
        return Credential(
            secret=data["Content"],
            username=_str_or_none(data.get("UserName")),
            address=_str_or_none(data.get("Address")),
            port=parse_port(data.get("Port")),
            database=_str_or_none(data.get("Database")),
            extra=extra,
            source=str(ref),
        )

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> CCPClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CCPClient(base_url={self.config.base_url!r}, app_id={self.config.app_id!r})"


def _str_or_none(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def validate_error(name: str, problem: str) -> ConfigurationError:
    return ConfigurationError(f"{name}: {problem}", field=name)


def ccp_reason(reason: str | None) -> str | None:
    """The reason is free text (run ids carry ``+00:00``): characters CCP cannot carry become spaces."""
    if not reason:
        return None
    # A lone surrogate (from a decoded file name, say) must not fail the fetch in quote().
    text = reason.encode("utf-8", "replace").decode("utf-8")
    cleaned = " ".join(CONTROL_CHARS.sub(" ", CCP_FORBIDDEN.sub(" ", text)).split())[:500]
    return cleaned or None


__all__ = ["CCPClient"]
