"""PVWA (PAM Self-Hosted) and Privilege Cloud client.

A PVWA logon creates a session object on the Vault, so the client is a context manager that logs
off on exit — also when the body raised, and without letting a logoff failure hide the original
error. Privilege Cloud's Identity token (``PlatformTokenAuth``) has no session to end; it is cached
process-wide like a Conjur token.

CyberArk documents Password/Retrieve as meant for people, not automation (it can trigger dual
control, exclusive check-out and one-time-password rotation); prefer CCP or Conjur where they
exist.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import quote

from .auth import AuthContext
from .base import AuthenticatedClient
from .ccp import vault_error_fields
from .config import PVWAConfig
from .credential import Credential, parse_port
from .errors import (
    AmbiguousQuery,
    AuthenticationFailed,
    CheckedOutByAnotherUser,
    ConfigurationError,
    CyberArkError,
    Forbidden,
    NotFound,
)
from .profile import ApiProfile, CodeTable, error_body_parser, str_or_none
from .refs import PVWARef
from .transport import Call
from .validation import shown

log = logging.getLogger("cyberark_ops.client")

MAX_PAGES = 100
_RESERVED_PROPERTIES = {"Port", "Database"}

# Error codes whose meaning is more precise than their HTTP status: (class, retryable, hint).
PVWA_CODES: CodeTable = {
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


def pvwa_error_fields(data: dict[str, Any]) -> tuple[str | None, str | None]:
    """PVWA's ``ErrorCode`` / ``ErrorMessage`` object, or the OAuth2 error of Identity's platform
    token endpoint (``{"error": "access_denied", "error_description": ...}``)."""
    if isinstance(data.get("error"), str):
        return data["error"], str_or_none(data.get("error_description"))
    return vault_error_fields(data)


PVWA = ApiProfile(
    name="pvwa",
    display_name="PVWA",
    code_table=PVWA_CODES,
    parse_error_body=error_body_parser(pvwa_error_fields),
    not_retried_hint="Not retried, as the request may have taken effect (a PVWA retrieve may check the account "
    "out or rotate a one-time password); retry the task once the server is healthy.",
)


class PVWAClient(AuthenticatedClient[PVWARef, PVWAConfig]):
    """Searches accounts and retrieves passwords through the PVWA REST API (Gen 2)."""

    profile = PVWA

    @property
    def _base(self) -> str:
        return self.config.base_path

    def _auth_context(self) -> AuthContext:
        return AuthContext(self._transport, prefix=self._base)

    # -- session ---------------------------------------------------------------------------------

    def logon(self) -> None:
        """Opens the session now (calls also log on lazily); checks the credentials."""
        self._auth.token()

    def logoff(self) -> None:
        """Ends the PVWA session if one is open. Raises on failure; ``__exit__`` only logs."""
        self._auth.logoff()

    def close(self) -> None:
        """Logs off (a failure is only logged, so it never hides the body's error), then closes."""
        try:
            self._auth.logoff()
        except CyberArkError as error:
            # Never mask the body's exception (or a success) with a logoff problem.
            log.warning(
                "PVWA logoff for %r failed (%s); the session expires on its own",
                self.login,
                type(error).__name__,
            )
        finally:
            super().close()

    # -- accounts --------------------------------------------------------------------------------

    def search(self, query: str | None = None, safe: str | None = None) -> list[dict[str, Any]]:
        """Accounts matching the keywords in ``query`` (and in ``safe`` when given), all pages."""
        accounts: list[dict[str, Any]] = []
        offset = 0
        for _ in range(MAX_PAGES):
            params = []
            if query:
                params.append(f"search={quote(query, safe='')}")
            if safe:
                params.append(f"filter={quote(f'safeName eq {safe}', safe='')}")
            params.append(f"limit={self.config.page_size}&offset={offset}")
            what = " and ".join(
                part
                for part in (f"matching {shown(query)}" if query else "", f"in safe {shown(safe)}" if safe else "")
                if part
            )
            call = Call(
                "GET",
                f"{self._base}/API/Accounts",
                action="search_accounts",
                target=f"accounts {what}".rstrip(),
                query="&".join(params),
                hints={403: f"{self.login!r} lacks 'List accounts' on the safe."},
            )
            response = self._transport.request(call, self._auth)
            data = self._transport.json(response, call)
            page = data.get("value") if isinstance(data, dict) else None
            if not isinstance(page, list):
                raise self._transport.invalid_response(call, "a search answer without 'value'", response.status_code)
            accounts.extend(item for item in page if isinstance(item, dict))
            if not data.get("nextLink") or len(page) < self.config.page_size:
                break
            offset += len(page)
        return accounts

    def find_account(self, safe: str, name: str) -> dict[str, Any]:
        """The account with exactly this name in this safe (search is keyword-based and fuzzy)."""
        PVWARef(safe=safe, name=name)  # validates
        candidates = self.search(name, safe=safe)
        in_safe = [a for a in candidates if str(a.get("safeName", safe)).casefold() == safe.casefold()]
        # Exact first; the Vault treats names case-insensitively, so fall back to that.
        matches = [a for a in in_safe if a.get("name") == name] or [
            a for a in in_safe if str(a.get("name", "")).casefold() == name.casefold()
        ]
        if not matches:
            raise NotFound(
                f"PVWA find_account: no account named {shown(name)} in safe {shown(safe)} ({len(candidates)} search "
                f"candidate(s)); check the name and that {self.login!r} has 'List accounts' on the safe",
                api="pvwa",
                action="find_account",
                path=f"{self._base}/API/Accounts",
            )
        if len(matches) > 1:
            ids = ", ".join(str(a.get("id")) for a in matches)
            raise AmbiguousQuery(
                f"PVWA find_account: {len(matches)} accounts named {shown(name)} in safe {shown(safe)} (ids {ids}); "
                "refer to one by id (pvwa:id=<id>)",
                field="name",
                api="pvwa",
                action="find_account",
                path=f"{self._base}/API/Accounts",
            )
        return matches[0]

    def get_account(self, account_id: str) -> dict[str, Any]:
        PVWARef(account_id=account_id)  # validates
        call = self._account_call(
            account_id,
            "",
            action="get_account",
            hints={404: f"No account with id {account_id!r}, or {self.login!r} cannot list it."},
        )
        return self._json_object(call, "an account")

    def retrieve_password(self, account_id: str, reason: str | None = None) -> str:
        PVWARef(account_id=account_id)  # validates
        body: dict[str, Any] = {"reason": reason} if reason else {}
        body.update(self._ticket_fields())
        call = self._account_call(
            account_id,
            "/Password/Retrieve",
            body=body,
            action="retrieve_password",
            hints={
                403: f"{self.login!r} lacks 'Retrieve accounts' (and 'Use accounts') on the account's safe.",
                400: "PVWA rejected the retrieval; the safe's policy may require a reason or a ticket.",
            },
        )
        response = self._retrieve_request(call, account_id)
        value = self._transport.json(response, call)  # a JSON string literal, with escapes
        if not isinstance(value, str):
            raise self._transport.invalid_response(call, "a password answer that is not a string", response.status_code)
        return value

    def get_credential(self, safe: str, name: str, reason: str | None = None) -> Credential:
        account = self.find_account(safe, name)
        return self._credential(account, reason, f"pvwa:{safe}/{name}")

    def get_credential_by_id(self, account_id: str, reason: str | None = None) -> Credential:
        return self._credential(self.get_account(account_id), reason, f"pvwa:id={account_id}")

    def get(self, ref: PVWARef, *, reason: str | None = None) -> Credential:
        if ref.account_id is not None:
            credential = self.get_credential_by_id(ref.account_id, reason)
        else:
            assert ref.safe is not None and ref.name is not None
            credential = self.get_credential(ref.safe, ref.name, reason)
        return credential

    def _credential(self, account: dict[str, Any], reason: str | None, source: str) -> Credential:
        account_id = account.get("id")
        if not isinstance(account_id, str) or not account_id:
            raise NotFound(
                f"PVWA {source}: the account record has no id",
                api="pvwa",
                action="get_credential",
                path=self._base,
            )
        secret = self.retrieve_password(account_id, reason)
        properties = account.get("platformAccountProperties")
        properties = properties if isinstance(properties, dict) else {}
        extra = {k: v for k, v in properties.items() if k not in _RESERVED_PROPERTIES}
        for key in ("id", "name", "safeName", "platformId", "secretType"):
            if account.get(key) is not None:
                extra[key] = account[key]
        return Credential(
            secret=secret,
            check_in_id=account_id if self.config.check_in else None,
            username=account.get("userName") or None,
            address=account.get("address") or None,
            port=parse_port(properties.get("Port")),
            database=properties.get("Database") or None,
            extra=extra,
            source=source,
        )

    def add_account(
        self,
        *,
        safe: str,
        platform_id: str,
        secret: str,
        name: str | None = None,
        address: str | None = None,
        user_name: str | None = None,
        properties: dict[str, str] | None = None,
        automatic_management: bool | None = None,
        manual_management_reason: str | None = None,
    ) -> dict[str, Any]:
        """Adds an account (``POST /API/Accounts``, 10.4+) as a migration's identity, which needs
        "Add accounts" on the safe. Returns the account object (it holds no secret). Not retried:
        a request that reached the Vault may have added it (a rerun then gets 409, not a twin).
        ``automatic_management=False`` keeps the CPM from changing a secret that is not a password
        (``secretManagement``, docs/cyberark-apis.md §9.5)."""
        for field, value in (("safe", safe), ("platform_id", platform_id)):
            if not isinstance(value, str) or not value.strip():
                raise ConfigurationError(f"{field}: required", field=field)
        if not isinstance(secret, str) or not secret:
            raise ConfigurationError("secret: must be a non-empty string", field="secret")
        body: dict[str, Any] = {"safeName": safe, "platformId": platform_id, "secretType": "password", "secret": secret}
        for key, optional in (("name", name), ("address", address), ("userName", user_name)):
            if optional is not None:
                body[key] = optional
        if properties:
            body["platformAccountProperties"] = dict(properties)
        if automatic_management is not None:
            management: dict[str, Any] = {"automaticManagementEnabled": automatic_management}
            if manual_management_reason:
                management["manualManagementReason"] = manual_management_reason
            body["secretManagement"] = management
        target = f"account {name!r} in safe {safe!r}" if name else f"an account in safe {safe!r}"
        call = Call(
            "POST",
            f"{self._base}/API/Accounts",
            action="add_account",
            target=target,
            headers={"Content-Type": "application/json"},
            body=json.dumps(body).encode(),
            idempotent=False,
            hints={
                403: f"{self.login!r} lacks 'Add accounts' on safe {safe!r}.",
                409: f"safe {safe!r} already holds an account with this name; compare it instead of adding.",
            },
        )
        data = self._json_object(call, "an account")
        data.pop("secret", None)
        return data

    def update_password(self, account_id: str, new_value: str, *, change_entire_group: bool = False) -> None:
        """Sets an existing account's value in the Vault only ("Change credentials in the Vault",
        ``POST /API/Accounts/{id}/Password/Update/``, 10.1+); the target machine is not touched, so
        a migration can replace what an account holds without a CPM. Needs "Update password value"
        on the safe (403 ``PASWS041E`` without it). The Vault trims leading and trailing white
        space from the value, so a caller that needs it byte for byte reads it back. Not retried:
        a request that reached the Vault may have changed it; read back instead of sending again.
        ``change_entire_group`` only matters for an account in an account group."""
        PVWARef(account_id=account_id)  # validates
        if not isinstance(new_value, str) or not new_value:
            raise ConfigurationError("new_value: must be a non-empty string", field="new_value")
        body = {"ChangeEntireGroup": bool(change_entire_group), "NewCredentials": new_value}
        call = self._account_call(
            account_id,
            "/Password/Update/",
            body=body,
            action="update_password",
            hints={
                403: f"{self.login!r} lacks 'Update password value' on the account's safe.",
                400: "PVWA rejected the new value (an empty value, or one the platform's policy refuses).",
            },
        )
        self._retrieve_request(call, account_id)

    def _repr_fields(self) -> dict[str, object]:
        return {**super()._repr_fields(), "login": self.login}

    # -- exclusive accounts: check-out on retrieve, check-in, tickets (docs/cyberark-apis.md §9) ------

    def _account_call(
        self,
        account_id: str,
        operation: str,
        *,
        action: str,
        body: dict[str, Any] | None = None,
        hints: dict[int, str],
    ) -> Call:
        """A call on one account, ``/API/Accounts/{id}`` plus ``operation``: a GET to read it, else a
        POST that is never resent, since one that reached the Vault may have handed out or changed
        the value or the checkout."""
        url = f"{self._base}/API/Accounts/{quote(account_id, safe='')}{operation}"
        target = f"account {account_id!r}"
        hints = {404: f"No account with id {account_id!r}, or {self.login!r} cannot see it.", **hints}
        if not operation:
            return Call("GET", url, action=action, target=target, hints=hints)
        return Call(
            "POST",
            url,
            action=action,
            target=target,
            headers={"Content-Type": "application/json"} if body is not None else {},
            body=json.dumps(body).encode() if body is not None else None,
            idempotent=False,
            hints=hints,
        )

    def _ticket_fields(self) -> dict[str, str]:
        """``TicketingSystem`` / ``TicketId`` as the doc spells them (psPAS's ``TicketingSystemName``
        was ignored by PVWA, pspete/psPAS #199)."""
        if self.config.ticketing_system is None or self.config.ticket_id is None:
            return {}
        return {"TicketingSystem": self.config.ticketing_system, "TicketId": self.config.ticket_id}

    def _retrieve_request(self, call: Call, account_id: str) -> Any:
        """The retrieve (or a value update); ITATS127E there means the account is locked by another
        user (on a logon the same code means the Vault user is suspended, which the code table keeps
        saying)."""
        try:
            return self._transport.request(call, self._auth)
        except AuthenticationFailed as error:
            if error.code != "ITATS127E" or error.action != call.action:
                raise  # the logon (made lazily inside this request) refused a suspended user
            raise CheckedOutByAnotherUser(
                f"PVWA {call.action}: account {shown(account_id)} is checked out (locked) by another user "
                f"(exclusive access, ITATS127E); it is free again once that user checks it in, or when the CPM "
                f"releases it after the platform's MinValidityPeriod; retry later",
                account_id=account_id,
                api="pvwa",
                action=call.action,
                path=call.path,
                status=error.status,
                code=error.code,
            ) from None

    def check_in(self, account_id: str) -> None:
        """Checks an exclusive account back in; a CPM-managed account's password is changed at once.

        Needs the safe permission "Initiate CPM password management operations". Not idempotent:
        a second check-in of the same checkout is refused by the Vault.
        """
        PVWARef(account_id=account_id)  # validates
        call = self._account_call(
            account_id,
            "/CheckIn/",
            action="check_in",
            hints={
                403: f"{self.login!r} lacks 'Initiate CPM password management operations' on the account's safe.",
                400: "PVWA refused the check-in; the account may not be checked out (any more).",
            },
        )
        self._transport.request(call, self._auth)


__all__ = ["PVWA", "PVWA_CODES", "PVWAClient", "pvwa_error_fields"]
