"""State of the emulated Vault: safes, accounts, CCP applications, PVWA users and tokens (the records
are in ``records.py``, seed loading in ``seed.py``).

CCP and PVWA are two front doors to one Vault, so both handler modules read the same model; a
rotation made through the admin API is therefore visible to both at once, as it is on a real Vault.
Handlers only ever get snapshots (``Account.snapshot()``), never the live objects, so they can work
without holding the lock.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from ..encoding import b64url_nopad, compact_json
from ..errors import SeedError
from .records import (
    Account,
    CcpApplication,
    PendingChange,
    PlatformToken,
    Principal,
    Safe,
    SecretVersion,
    Session,
    random_password,
)
from .seed import VaultSeed

DEFAULT_SESSION_TTL = 20 * 60.0
DEFAULT_PLATFORM_TTL = 900.0
MAX_VERSIONS = 100
CPM_USER = "PasswordManager"

LogonResult = Literal["ok", "failed", "locked"]


def _utf8(text: str) -> bytes:
    # JSON bodies may carry lone surrogates ("\ud800"); they must fail a comparison, not the request.
    return text.encode("utf-8", "surrogatepass")


class _Expiring(Protocol):
    @property
    def expires_at(self) -> float: ...


T = TypeVar("T", bound=_Expiring)


def _live(issued: dict[str, T], token: str, now: float) -> T | None:
    """The unexpired entry for ``token``; an expired one is dropped."""
    found = issued.get(token)
    if found is not None and found.expires_at <= now:
        del issued[token]
        return None
    return found


class LockedByOther(Exception):
    """An exclusive account checked out by another user."""


class NotCheckedOut(Exception):
    """A check-in of an account nobody has checked out."""


class VaultModel:
    """All Vault state behind one lock; CCP and PVWA handlers share one instance."""

    def __init__(self, seed: VaultSeed | None = None) -> None:
        seed = seed or VaultSeed()
        self._lock = threading.RLock()
        self._safes = seed.safes
        self._accounts = seed.accounts
        self._apps = seed.apps
        self._users = seed.users
        self._clients = seed.clients
        self._sessions: dict[str, Session] = {}
        self._platform_tokens: dict[str, PlatformToken] = {}
        self._session_ttl = DEFAULT_SESSION_TTL
        self._platform_ttl = DEFAULT_PLATFORM_TTL
        self._signing_key = secrets.token_bytes(32)

    @classmethod
    def from_seed(cls, data: Any, where: str, *, state_dir: Path | None = None) -> VaultModel:
        """Validates a ``vault:`` seed section (see ``seed.py``) and builds the state it describes;
        the Vault keeps nothing in ``state_dir``."""
        return cls(VaultSeed.parse(data, where))

    # -- reads -----------------------------------------------------------------------------------------

    def accounts(self, now: float) -> list[Account]:
        """Every account in seed order, as of ``now``."""
        with self._lock:
            self._finish_changes(now)
            return [a.snapshot() for a in self._accounts.values()]

    def account(self, account_id: str, now: float) -> Account | None:
        with self._lock:
            self._finish_changes(now)
            found = self._accounts.get(account_id)
            return found.snapshot() if found else None

    def safes(self) -> list[Safe]:
        with self._lock:
            return [state.safe for state in self._safes.values()]

    def ccp_application(self, app_id: str) -> CcpApplication | None:
        with self._lock:
            return self._apps.get(app_id.casefold())

    # -- PVWA sessions and Privilege Cloud tokens ------------------------------------------------------

    def logon(self, username: str, password: str, auth_type: str, now: float) -> tuple[LogonResult, str | None]:
        """(result, token); the token is only set for ``ok``."""
        with self._lock:
            user = self._users.get(username.casefold())
            if user is None:
                # Compare anyway so an unknown user costs as much as a wrong password.
                hmac.compare_digest(_utf8(password), b"x" * 16)
                return "failed", None
            if not hmac.compare_digest(_utf8(password), _utf8(user.password)):
                return "failed", None
            if user.auth_type.casefold() != auth_type.casefold():
                return "failed", None
            if user.locked:
                return "locked", None
            token = secrets.token_urlsafe(144)
            self._sessions[token] = Session(user.username, now + self._session_ttl)
            return "ok", token

    def session_principal(self, token: str, now: float) -> Principal | None:
        """The session's user, sliding its idle timeout; None if unknown, logged off or expired."""
        with self._lock:
            session = _live(self._sessions, token, now)
            if session is None:
                return None
            user = self._users.get(session.username.casefold())
            if user is None or user.locked:
                return None
            session.expires_at = now + self._session_ttl
            return Principal(user.username, "user", dict(user.permissions))

    def logoff(self, token: str) -> bool:
        with self._lock:
            return self._sessions.pop(token, None) is not None

    def issue_platform_token(self, client_id: str, client_secret: str, now: float) -> tuple[str, int] | None:
        """(access_token, expires_in) or None for wrong credentials or a disabled client."""
        with self._lock:
            client = self._clients.get(client_id)
            expected = _utf8(client.client_secret) if client else b"x" * 16
            if not hmac.compare_digest(_utf8(client_secret), expected) or client is None or client.disabled:
                return None
            expires_in = max(1, int(self._platform_ttl))
            header = {"alg": "HS256", "typ": "JWT", "kid": "cyberark-ops-devserver"}
            claims = {
                "iss": "cyberark-ops-devserver",
                "sub": client.client_id,
                "aud": "privilegecloud",
                "iat": int(now),
                "exp": int(now) + expires_in,
                "jti": secrets.token_hex(16),
            }
            signing_input = f"{b64url_nopad(compact_json(header))}.{b64url_nopad(compact_json(claims))}"
            signature = hmac.new(self._signing_key, signing_input.encode(), hashlib.sha256).digest()
            token = f"{signing_input}.{b64url_nopad(signature)}"
            self._platform_tokens[token] = PlatformToken(client.client_id, now + expires_in)
            return token, expires_in

    def platform_principal(self, token: str, now: float) -> Principal | None:
        with self._lock:
            issued = _live(self._platform_tokens, token, now)
            if issued is None:
                return None
            client = self._clients.get(issued.client_id)
            if client is None or client.disabled:
                return None
            return Principal(client.client_id, "client", dict(client.permissions))

    def revoke_tokens(self) -> int:
        with self._lock:
            count = len(self._sessions) + len(self._platform_tokens)
            self._sessions.clear()
            self._platform_tokens.clear()
            return count

    def set_token_ttl(self, seconds: float) -> None:
        if seconds <= 0:
            raise SeedError("token_ttl", "must be positive")
        with self._lock:
            self._session_ttl = float(seconds)
            self._platform_ttl = float(seconds)

    # -- rotation --------------------------------------------------------------------------------------

    def _find(self, object_id: str) -> Account:
        """By account id, ``<safe>/<name>``, a name unique across safes, or a dual-account group."""
        found = self._accounts.get(object_id)
        if found is not None:
            return found
        safe, sep, name = object_id.partition("/")
        if sep:
            candidates = [
                a
                for a in self._accounts.values()
                if a.safe.casefold() == safe.casefold() and a.name.casefold() == name.casefold()
            ]
        else:
            candidates = [a for a in self._accounts.values() if a.name.casefold() == object_id.casefold()]
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            # A VirtualUsername names a dual-account group: rotate whichever member is Active, so a
            # scheduled rotation alternates between the members as the CPM does.
            virtual = name if sep else object_id
            active = [
                a
                for a in self._accounts.values()
                if (a.prop("VirtualUsername") or "").casefold() == virtual.casefold()
                and (not sep or a.safe.casefold() == safe.casefold())
                and a.prop("DualAccountStatus") == "Active"
            ]
            if len(active) == 1:
                return active[0]
        raise KeyError(object_id)

    def rotate(self, object_id: str, value: str | None, now: float, change_window: float) -> dict[str, Any]:
        """A CPM change: the new value takes effect at ``now + change_window``.

        Rotating the Active member of a dual-account group first makes its peer Active (as the CPM
        does), so ``VirtualUsername`` queries never see a value that is about to change; the window
        then plays the part of the platform's GracePeriod.
        """
        if change_window < 0:
            raise SeedError("change_window", "must not be negative")
        if value is not None and not isinstance(value, str):
            raise SeedError("value", "must be a string")
        with self._lock:
            self._finish_changes(now)
            account = self._find(object_id)
            facts: dict[str, Any] = {
                "target": f"vault:{account.id}",
                "safe": account.safe,
                "name": account.name,
            }
            active_peer = self._flip_dual(account)
            if active_peer is not None:
                facts["dual_account_active"] = active_peer
            new_value = value if value is not None else random_password()
            if account.pending is not None:
                version_id = account.pending.version_id
                ends_at = max(account.pending.ends_at, now + change_window)
            else:
                version_id = account.versions[-1].version_id + 1
                ends_at = now + change_window
            if change_window > 0:
                account.pending = PendingChange(new_value, version_id, ends_at)
                facts["change_ends_at"] = ends_at
            else:
                account.pending = None
                self._apply(account, new_value, version_id, now)
                facts["change_ends_at"] = None
            facts["version"] = version_id
            return facts

    def _flip_dual(self, account: Account) -> str | None:
        virtual = account.prop("VirtualUsername")
        if virtual is None or account.prop("DualAccountStatus") != "Active":
            return None
        peers = [
            other
            for other in self._accounts.values()
            if other is not account
            and other.safe == account.safe
            and (other.prop("VirtualUsername") or "").casefold() == virtual.casefold()
        ]
        if not peers:
            return None
        peers.sort(key=lambda a: (a.prop("Index") or "", a.id))
        account.set_prop("DualAccountStatus", "Inactive")
        peers[0].set_prop("DualAccountStatus", "Active")
        return peers[0].id

    def _apply(self, account: Account, value: str, version_id: int, at: float) -> None:
        account.versions.append(SecretVersion(version_id, value, CPM_USER, at))
        del account.versions[:-MAX_VERSIONS]
        account.modified_at = at

    def _finish_changes(self, now: float) -> None:
        for account in self._accounts.values():
            pending = account.pending
            if pending is not None and pending.ends_at <= now:
                account.pending = None
                self._apply(account, pending.value, pending.version_id, pending.ends_at)

    def tick(self, now: float) -> None:
        with self._lock:
            self._finish_changes(now)

    # -- PVWA writes, check-out and check-in -----------------------------------------------------------

    def add_account(self, item: dict[str, Any], now: float) -> Account:
        """A new account from seed-shaped fields (``safe``, ``name``, ``secret``, ``properties``, ...),
        validated by the seed's own rules; raises ``SeedError`` naming the field, ``DuplicateAccount``
        for a name the safe already holds."""
        with self._lock:
            view = VaultSeed(safes=self._safes, accounts=self._accounts, names_unique_per_safe=True)
            before = set(self._accounts)
            view._seed_account(item, "body")
            (added,) = set(self._accounts) - before
            account = self._accounts[added]
            account.created_at = account.modified_at = float(int(now))
            account.versions = [replace(v, modified_at=float(int(now))) for v in account.versions]
            return account.snapshot()

    def retrieve(self, account_id: str, who: str, now: float) -> tuple[str, str | None]:
        """The current value for ``who`` and what the retrieve did to the account (for the audit), as
        the Master Policy's exclusive and one-time rules say; raises ``LockedByOther``."""
        with self._lock:
            self._finish_changes(now)
            account = self._accounts[account_id]
            effect: str | None = None
            if account.exclusive:
                if account.checked_out_by is not None and account.checked_out_by.casefold() != who.casefold():
                    raise LockedByOther(account_id)
                if account.checked_out_by is None:
                    account.checked_out_by = who
                    effect = "checked out"
            elif account.one_time and account.pending is None:
                facts = self.rotate(account.id, None, now, account.min_validity)
                effect = f"one-time password: changes to version {facts['version']} after {account.min_validity:g} s"
            return account.secret, effect

    def update_password(self, account_id: str, value: str, who: str, now: float) -> int:
        """Sets the value in the Vault only, as a new version by ``who`` (no CPM, no target machine);
        a CPM change under way is superseded, so it cannot undo this one later. Returns the version;
        raises ``KeyError`` if unknown, ``LockedByOther`` if another user has it checked out."""
        with self._lock:
            self._finish_changes(now)
            account = self._accounts[account_id]
            if account.checked_out_by is not None and account.checked_out_by.casefold() != who.casefold():
                raise LockedByOther(account_id)
            account.pending = None
            version_id = account.versions[-1].version_id + 1
            account.versions.append(SecretVersion(version_id, value, who, now))
            del account.versions[:-MAX_VERSIONS]
            account.modified_at = now
            return version_id

    def check_in(self, account_id: str, now: float) -> dict[str, Any]:
        """Releases an exclusive account; the CPM changes its password at once, as for a CPM-managed
        account. Raises ``KeyError`` if unknown, ``NotCheckedOut`` if not checked out."""
        with self._lock:
            self._finish_changes(now)
            account = self._accounts[account_id]
            if account.checked_out_by is None:
                raise NotCheckedOut(account_id)
            holder = account.checked_out_by
            account.checked_out_by = None
            facts = self.rotate(account.id, None, now, 0.0)
            facts["released_from"] = holder
            return facts
