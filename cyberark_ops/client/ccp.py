"""Central Credential Provider (AIMWebService REST) client.

CCP authenticates the *application* (AppID rules: client certificate, allowed machines), so no
credential is configured here beyond the optional TLS client certificate. Query values are
validated before the URL is built: CCP cannot carry ``+ & % ;`` in values, and a silently
altered query would fetch a different account.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from .base import BaseClient
from .config import CCPConfig
from .credential import Credential, parse_port
from .errors import (
    AmbiguousQuery,
    ConfigurationError,
    Forbidden,
    NotFound,
    PasswordChangeInProgress,
    Unavailable,
)
from .profile import ApiProfile, CodeTable, error_body_parser, str_or_none
from .refs import CCPRef
from .transport import Call
from .validation import CCP_FORBIDDEN, CONTROL_CHARS, field_error

_RESERVED_PROPERTIES = {"Content", "UserName", "Address", "Port", "Database"}

_AMBIGUOUS = (AmbiguousQuery, False, "The query matches several accounts; add Object (or a narrower Query).")

# Error codes whose meaning is more precise than their HTTP status: (class, retryable, hint).
CCP_CODES: CodeTable = {
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
    "APPAP227E": _AMBIGUOUS,
    "APPAP228E": _AMBIGUOUS,
    "APPAP229E": _AMBIGUOUS,
    "AIMWS030E": (ConfigurationError, False, "CCP rejected the query format; check the reference's keys."),
    "AIMWS031E": (ConfigurationError, False, "CCP says the AppID parameter is missing; check app_id."),
    "APPAP007E": (Unavailable, True, "CCP could not reach the Vault; retry later or check the Vault."),
    "APPAP282E": (
        PasswordChangeInProgress,
        False,
        "The CPM is changing this password right now; retry after the change completes.",
    ),
}


def vault_error_fields(data: dict[str, Any]) -> tuple[str | None, str | None]:
    """The Vault web services' error object: ``ErrorCode`` with CCP's ``ErrorMsg`` or PVWA's
    ``ErrorMessage`` (either API has been seen sending the other's), or a ``Details`` object."""
    code = str_or_none(data.get("ErrorCode"))
    message = str_or_none(data.get("ErrorMsg")) or str_or_none(data.get("ErrorMessage"))
    if message is None and isinstance(data.get("Details"), dict):
        message = str_or_none(data["Details"].get("ErrorMessage"))
    return code, message


CCP = ApiProfile(
    name="ccp", display_name="CCP", code_table=CCP_CODES, parse_error_body=error_body_parser(vault_error_fields)
)


def _truthy(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


class CCPClient(BaseClient[CCPRef, CCPConfig]):
    """Fetches accounts from CCP for one AppID. Thread-safe; share one per process and config."""

    profile = CCP

    @property
    def _path(self) -> str:
        return f"/{self.config.service_path}/api/Accounts"

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
            raise field_error("QueryFormat", f"{query_format!r} must be Exact or Regexp")
        if len(ref.params) == 1 and query_format is not None:
            raise field_error("QueryFormat", "needs a search parameter (Safe, Object, Query ...) next to it")
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
                problem = self._transport.error(
                    PasswordChangeInProgress,
                    call,
                    f"the CPM was still changing the password after {waits} wait(s) of "
                    f"{self.config.password_change_wait:g}s",
                    "Raise password_change_retries or use dual accounts (Query=VirtualUsername=...) for "
                    "credentials that rotate often",
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

    def _repr_fields(self) -> dict[str, object]:
        return {**super()._repr_fields(), "app_id": self.config.app_id}


def _str_or_none(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def ccp_reason(reason: str | None) -> str | None:
    """Free text for the audit: ``+00:00`` (in run ids) becomes ``Z``; what else CCP cannot carry, a space."""
    if not reason:
        return None
    # A lone surrogate (from a decoded file name, say) must not fail the fetch in quote().
    text = reason.encode("utf-8", "replace").decode("utf-8")
    text = re.sub(r"\+00:00\b", "Z", text)  # run ids end in +00:00; "Z" says the same without a '+'
    cleaned = " ".join(CONTROL_CHARS.sub(" ", CCP_FORBIDDEN.sub(" ", text)).split())[:500]
    return cleaned or None


__all__ = ["CCP", "CCP_CODES", "CCPClient", "ccp_reason", "vault_error_fields"]
