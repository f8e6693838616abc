"""Conjur / Secrets Manager (Self-Hosted, OSS, SaaS) client.

Reads are designed around the call count: a warm ``get_secret`` is one keep-alive GET, and
``get_secrets`` fetches any number of variables with one batch GET per ~6 KB of URL (plus one GET
per id containing ``,``, which the batch endpoint cannot carry).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote

from .auth import AuthContext
from .auth.conjur_cloud import CloudIdentity, ConjurCloudAuth
from .base import AuthenticatedClient
from .config import ConjurConfig
from .credential import Credential
from .errors import ConfigurationError, InvalidResponse
from .profile import ApiProfile, error_body_parser, nested_error_fields
from .refs import ConjurRef, validate_conjur_id
from .transport import Call, Transport
from .validation import shown

MAX_BATCH_URL = 6000
"""Conservative URL length for one batch; proxies and servers commonly cap request lines at 8 KB."""
LIST_PAGE_SIZE = 1000


def request_id_for(reason: str | None) -> str | None:
    """Conjur has no reason parameter; ``X-Request-Id`` (``[A-Za-z0-9-]{1,255}``) is audited instead."""
    if not reason:
        return None
    cleaned = re.sub(r"[^A-Za-z0-9-]+", "-", reason).strip("-")[:255].strip("-")
    return cleaned or None


def conjur_error_fields(data: dict[str, Any]) -> tuple[str | None, str | None]:
    """Conjur's error object: ``{"error": {"code": "not_found", "message": "CONJ00076E ..."}}``."""
    return nested_error_fields(data, "code", "message")


CONJUR = ApiProfile(
    name="conjur",
    display_name="Conjur",
    # Conjur's codes (not_found, unauthorized ...) say no more than the HTTP status does.
    code_table={},
    parse_error_body=error_body_parser(conjur_error_fields),
)


_PAGE_TYPES = ("text/html", "application/xhtml+xml")


def _check_value_response(transport: Transport, call: Call, response: Any) -> None:
    """Refuses what a proxy or login portal sends in Conjur's place (an HTML page with 200).

    Conjur answers with ``send_data``: ``application/octet-stream`` or the variable's
    ``conjur/mime_type`` annotation, always as an attachment, so an annotated ``text/html``
    variable still passes while a bare HTML page, or a proxy's JSON error, does not.
    """
    content_type = response.headers.get("Content-Type")
    attachment = response.headers.get("Content-Disposition", "").lower().startswith("attachment")
    if content_type is None and not attachment:
        raise transport.invalid_response(call, "a value without a Content-Type", response.status_code)
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if attachment or media == "application/octet-stream":
        return
    if media in _PAGE_TYPES:
        raise transport.invalid_response(call, f"an HTML page ({media}) instead of a value", response.status_code)
    raise transport.invalid_response(
        call, f"a body of type {media} that Conjur did not send as a value", response.status_code
    )


class ConjurClient(AuthenticatedClient[ConjurRef, ConjurConfig]):
    """Reads Conjur variables with one identity. Thread-safe; share one per process and config."""

    profile = CONJUR

    @property
    def account(self) -> str:
        return self.config.conjur_account

    @property
    def _prefix(self) -> str:
        return self.config.api_prefix

    def _auth_context(self) -> AuthContext:
        return AuthContext(self._transport, prefix=self._prefix, account=self.account)

    def authenticate(self, *, force: bool = False) -> str | None:
        """Makes sure a token is at hand (``force``: obtain a new one); returns the token's subject."""
        token = self._auth.authenticate() if force else self._auth.token()
        return token.subject

    def cloud_identity(self) -> CloudIdentity | None:
        """Who the worker is in its cloud, for a cloud authenticator (asks the cloud, not Conjur);
        None for the other auth methods."""
        strategy = self.strategy
        if isinstance(strategy, ConjurCloudAuth):
            return strategy.cloud_identity(self._auth_context())
        return None

    def whoami(self) -> dict[str, Any]:
        call = Call("GET", f"{self._prefix}/whoami", action="whoami", target=f"as {self.login!r}")
        return self._json_object(call, "a whoami answer")

    # -- single variables -------------------------------------------------------------------------

    def get_secret_bytes(self, variable_id: str, version: int | None = None, reason: str | None = None) -> bytes:
        validate_conjur_id(variable_id)
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
            raise ConfigurationError("version: Conjur versions are integers starting at 1", field="version")
        label = f"variable {shown(variable_id)}" + (f" version {version}" if version is not None else "")
        call = Call(
            "GET",
            f"{self._prefix}/secrets/{quote(self.account, safe='')}/variable/{quote(variable_id, safe='')}",
            action="retrieve",
            target=label,
            query=f"version={version}" if version is not None else "",
            headers=self._reason_headers(reason),
            hints=self._hints(f"variable {shown(variable_id)}"),
        )
        response = self._transport.request(call, self._auth)
        _check_value_response(self._transport, call, response)
        return response.content

    def get_secret(self, variable_id: str, version: int | None = None, reason: str | None = None) -> str:
        value = self.get_secret_bytes(variable_id, version, reason)
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise self._binary_value(variable_id) from None

    def get(self, ref: ConjurRef, *, reason: str | None = None) -> Credential:
        """The uniform entry point every client has: a Conjur variable is a credential with a secret only."""
        return Credential(secret=self.get_secret(ref.variable_id, ref.version, reason), source=str(ref))

    # -- batches ----------------------------------------------------------------------------------

    def get_secrets_bytes(self, variable_ids: Iterable[str], reason: str | None = None) -> dict[str, bytes]:
        ids = list(dict.fromkeys(variable_ids))
        for variable_id in ids:
            validate_conjur_id(variable_id, "variable_ids")
        values: dict[str, bytes] = {}
        for batch in self._batches([i for i in ids if "," not in i]):
            values.update(self._fetch_batch(batch, reason))
        for variable_id in (i for i in ids if "," in i):
            values[variable_id] = self.get_secret_bytes(variable_id, reason=reason)
        return {variable_id: values[variable_id] for variable_id in ids}

    def get_secrets(self, variable_ids: Iterable[str], reason: str | None = None) -> dict[str, str]:
        decoded: dict[str, str] = {}
        for variable_id, value in self.get_secrets_bytes(variable_ids, reason).items():
            try:
                decoded[variable_id] = value.decode("utf-8")
            except UnicodeDecodeError:
                raise self._binary_value(variable_id) from None
        return decoded

    def _full_id(self, variable_id: str) -> str:
        return f"{self.account}:variable:{variable_id}"

    def _batches(self, ids: list[str]) -> Iterator[list[str]]:
        budget = MAX_BATCH_URL - len(self.config.base_url) - len(self._prefix) - len("/secrets?variable_ids=")
        batch: list[str] = []
        used = 0
        for variable_id in ids:
            size = len(quote(self._full_id(variable_id), safe="")) + 1
            if batch and used + size > budget:
                yield batch
                batch, used = [], 0
            batch.append(variable_id)
            used += size
        if batch:
            yield batch

    def _fetch_batch(self, ids: list[str], reason: str | None) -> dict[str, bytes]:
        listed = ", ".join(shown(i) for i in ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
        call = Call(
            "GET",
            f"{self._prefix}/secrets",
            action="batch_retrieve",
            target=f"variables {listed}",
            query="variable_ids=" + ",".join(quote(self._full_id(i), safe="") for i in ids),
            # Exactly "base64": the batch endpoint compares the whole header value, and requests
            # would otherwise send "gzip, deflate".
            headers={"Accept-Encoding": "base64", **self._reason_headers(reason)},
            hints={
                403: f"{self.login!r} lacks execute on at least one of these variables (Conjur "
                f"checks privileges "
                "before existence in a batch); fetch them singly to find which.",
                404: f"At least one variable does not exist, has no value or is not visible to {self.login!r}; "
                "fetch them singly to find which, then check its id and permit read + execute.",
            },
        )
        data, response = self._json_answer(call, "a batch answer")
        encoded = "base64" in response.headers.get("Content-Encoding", "").lower()
        values: dict[str, bytes] = {}
        for variable_id in ids:
            value = data.get(self._full_id(variable_id))
            if not isinstance(value, str):
                raise self._transport.invalid_response(
                    call, f"a batch answer without a value for {shown(variable_id)}", response.status_code
                )
            if encoded:
                try:
                    values[variable_id] = base64.decodebytes(value.encode("ascii"))
                except (binascii.Error, UnicodeEncodeError):
                    raise self._transport.invalid_response(
                        call, f"a value for {shown(variable_id)} that is not base64", response.status_code
                    ) from None
            else:
                values[variable_id] = value.encode("utf-8")
        return values

    # -- listing ----------------------------------------------------------------------------------

    def list_variables(self, search: str | None = None) -> list[dict[str, Any]]:
        """Variables visible to this identity (resource objects: id, permissions, annotations...)."""
        resources: list[dict[str, Any]] = []
        offset = 0
        while True:
            query = f"limit={LIST_PAGE_SIZE}&offset={offset}"
            if search:
                query = f"search={quote(search, safe='')}&{query}"
            call = Call(
                "GET",
                f"{self._prefix}/resources/{quote(self.account, safe='')}/variable",
                action="list_resources",
                target="variables" + (f" matching {search!r}" if search else ""),
                query=query,
            )
            response = self._transport.request(call, self._auth)
            page = self._transport.json(response, call)
            if not isinstance(page, list):
                raise self._transport.invalid_response(call, "a listing that is not an array", response.status_code)
            resources.extend(item for item in page if isinstance(item, dict))
            if len(page) < LIST_PAGE_SIZE:
                return resources
            offset += LIST_PAGE_SIZE

    # -- writes (a migration's identity, never the runtime one) ------------------------------------

    def load_policy(self, policy_id: str, text: str, *, method: str = "POST", dry_run: bool = False) -> dict[str, Any]:
        """Loads a policy document into ``policy_id`` (``root`` or a branch); ``POST`` only adds.

        The answer's ``created_roles`` hold new hosts' API keys: callers must not print it whole.
        """
        if method not in ("POST", "PATCH", "PUT"):
            raise ConfigurationError("method: a policy load is POST, PATCH or PUT", field="method")
        validate_conjur_id(policy_id, "policy_id")
        call = Call(
            method,
            f"{self._prefix}/policies/{quote(self.account, safe='')}/policy/{quote(policy_id, safe='')}",
            action="load_policy",
            target=f"policy {shown(policy_id)}",
            query="dryRun=true" if dry_run else "",
            headers={"Content-Type": "application/x-yaml"},
            body=text.encode("utf-8"),
            hints={
                403: f"{self.login!r} can see policy {shown(policy_id)} but lacks create/update on it.",
                404: f"policy {shown(policy_id)} does not exist or is not visible to {self.login!r}.",
            },
        )
        return self._json_object(call, "a policy answer")

    def set_secret(self, variable_id: str, value: str | bytes) -> None:
        """Adds a version to a declared variable (Conjur refuses an empty or blank value with 422)."""
        validate_conjur_id(variable_id)
        body = value.encode("utf-8") if isinstance(value, str) else value
        call = Call(
            "POST",
            f"{self._prefix}/secrets/{quote(self.account, safe='')}/variable/{quote(variable_id, safe='')}",
            action="store",
            target=f"variable {shown(variable_id)}",
            headers={"Content-Type": "application/octet-stream"},
            body=body,
            hints={
                403: f"{self.login!r} lacks update on variable {shown(variable_id)}.",
                404: f"variable {shown(variable_id)} is not declared (load the policy first) or not visible to "
                f"{self.login!r}.",
            },
        )
        self._transport.request(call, self._auth)

    # -- helpers ----------------------------------------------------------------------------------

    def _reason_headers(self, reason: str | None) -> dict[str, str]:
        request_id = request_id_for(reason)
        return {"X-Request-Id": request_id} if request_id else {}

    def _hints(self, what: str) -> dict[int, str]:
        return {
            403: f"{self.login!r} can see {what} but lacks execute on it: permit execute to this identity.",
            404: f"{what} does not exist, has no value (at this version), or is not visible to "
            f"{self.login!r}; "
            "check the id and permit read + execute.",
        }

    def _binary_value(self, variable_id: str) -> InvalidResponse:
        return InvalidResponse(
            f"Conjur variable {shown(variable_id)} holds binary data that is not UTF-8 text; "
            "use get_secret_bytes / get_secrets_bytes for it",
            api="conjur",
            action="retrieve",
        )

    def _repr_fields(self) -> dict[str, object]:
        return {**super()._repr_fields(), "account": self.account, "login": self.login}


__all__ = ["CONJUR", "ConjurClient", "conjur_error_fields", "request_id_for"]
