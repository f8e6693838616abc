"""authn-jwt for the Conjur emulation: JWKS / PEM key parsing, JWT verification and identity, and
the dev server's own JWT issuer (an RSA key kept in the state dir, so a restart keeps it)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..encoding import b64url_decode, b64url_nopad, compact_json, is_number, json_object
from ..errors import SeedError
from ..seedcheck import has_control
from .errors import jwt_rejected
from .records import JwtService

log = logging.getLogger("cyberark_ops.devserver")

DEV_JWT_ISSUER = "https://devserver.cyberark-ops.local"
JWT_KEY_FILE = "jwt-key.pem"

_JWT_SHAPE = re.compile(r"[-A-Za-z0-9_=]+\.[-A-Za-z0-9_=]+\.[-A-Za-z0-9_=]+")
_JWT_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "RS256": hashes.SHA256,
    "RS384": hashes.SHA384,
    "RS512": hashes.SHA512,
}

PublicKeys = list[tuple[str | None, rsa.RSAPublicKey]]
"""(kid or None, key) pairs; a key without a kid matches any JWT header."""


def verify_jwt(token: str, keys: PublicKeys, service: JwtService, now: float) -> dict[str, Any]:
    """The claims of ``token`` once it verifies as Conjur checks it: signature, then exp/nbf, iss, aud."""
    parts = token.split(".") if _JWT_SHAPE.fullmatch(token) else []
    if len(parts) != 3:
        raise jwt_rejected(401, "not a JWT")
    header = json_object(b64url_decode(parts[0]))
    claims = json_object(b64url_decode(parts[1]))
    signature = b64url_decode(parts[2])
    if header is None or claims is None or signature is None:
        raise jwt_rejected(401, "undecodable JWT")
    algorithm = _JWT_HASHES.get(str(header.get("alg")))
    if algorithm is None:
        raise jwt_rejected(401, "unsupported JWT algorithm")
    kid = header.get("kid")
    candidates = [k for key_id, k in keys if kid is None or key_id is None or key_id == kid]
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    if not any(_rsa_verifies(k, signature, signing_input, algorithm()) for k in candidates):
        raise jwt_rejected(401, "JWT signature does not verify")
    expires_at = claims.get("exp")
    if not is_number(expires_at):
        raise jwt_rejected(401, "JWT has no exp claim")
    if now >= expires_at:
        raise jwt_rejected(401, "JWT expired", expired=True)
    not_before = claims.get("nbf")
    if is_number(not_before) and now < not_before:
        raise jwt_rejected(401, "JWT not yet valid")
    if service.issuer is not None and claims.get("iss") != service.issuer:
        raise jwt_rejected(401, "JWT issuer mismatch")
    if service.audience is not None:
        audience = claims.get("aud")
        listed = audience if isinstance(audience, list) else [audience]
        if service.audience not in listed:
            raise jwt_rejected(401, "JWT audience mismatch")
    return claims


def jwt_identity(service: JwtService, claims: dict[str, Any], url_id: str | None) -> str:
    """The login a verified JWT authenticates: from the URL, or from ``token_app_property``."""
    if url_id is not None:
        if service.token_app_property is not None:
            raise jwt_rejected(401, "identity given both in the URL and by token_app_property")
        return url_id
    if service.token_app_property is None:
        raise jwt_rejected(401, "no identity: neither in the URL nor token_app_property")
    value: Any = claims
    for part in service.token_app_property.split("/"):
        value = value.get(part) if isinstance(value, dict) else None
    if not isinstance(value, str) or not value or has_control(value):
        raise jwt_rejected(401, "token_app_property claim missing or empty")
    return f"host/{service.identity_path}/{value}" if service.identity_path else f"host/{value}"


class DevIssuer:
    """The dev server's own JWT issuer: services seeded without ``public_keys`` trust it."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._lock = threading.Lock()
        self._key: tuple[rsa.RSAPrivateKey, str] | None = None

    def _load(self) -> tuple[rsa.RSAPrivateKey, str]:
        """Loads ``state_dir/jwt-key.pem`` or creates it, so a restarted server keeps its issuer key."""
        with self._lock:
            if self._key is not None:
                return self._key
            path = self.state_dir / JWT_KEY_FILE
            key: rsa.RSAPrivateKey | None = None
            if path.exists():
                try:
                    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
                    key = loaded if isinstance(loaded, rsa.RSAPrivateKey) else None
                except (OSError, ValueError, TypeError):
                    key = None
                if key is None:
                    log.warning("%s is not an RSA private key; generating a new one", path)
            if key is None:
                key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                pem = key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
                self.state_dir.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(pem)
            self._key = (key, _jwk_thumbprint(key.public_key()))
            return self._key

    def public_keys(self) -> PublicKeys:
        key, kid = self._load()
        return [(kid, key.public_key())]

    def mint(self, claims: dict[str, Any], ttl: float, now: float) -> str:
        """An RS256 JWT: ``iss``, ``iat`` and ``exp = iat + ttl`` are filled in unless ``claims``
        sets them; a claim set to None is left out (to test a missing ``exp``)."""
        key, kid = self._load()
        payload: dict[str, Any] = {"iss": DEV_JWT_ISSUER, "iat": int(now), "exp": int(now + ttl)}
        for name, value in claims.items():
            if value is None:
                payload.pop(name, None)
            else:
                payload[name] = value
        header = {"alg": "RS256", "typ": "JWT", "kid": kid}
        signing_input = f"{b64url_nopad(compact_json(header))}.{b64url_nopad(compact_json(payload))}"
        signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url_nopad(signature)}"


def _int_bytes(number: int) -> bytes:
    return number.to_bytes((number.bit_length() + 7) // 8 or 1, "big")


def _jwk_thumbprint(key: rsa.RSAPublicKey) -> str:
    """RFC 7638 thumbprint, the usual ``kid`` of an RSA JWK."""
    numbers = key.public_numbers()
    canonical = {
        "e": b64url_nopad(_int_bytes(numbers.e)),
        "kty": "RSA",
        "n": b64url_nopad(_int_bytes(numbers.n)),
    }
    return b64url_nopad(hashlib.sha256(compact_json(canonical)).digest())


def _rsa_verifies(key: rsa.RSAPublicKey, signature: bytes, message: bytes, algorithm: hashes.HashAlgorithm) -> bool:
    try:
        key.verify(signature, message, padding.PKCS1v15(), algorithm)
    except (InvalidSignature, ValueError):
        return False
    return True


def public_keys(data: Any, where: str) -> PublicKeys:
    """PEM text (one or more keys), a JWKS mapping or its JSON text, or a list of PEMs / JWKs."""
    if isinstance(data, str) and data.lstrip().startswith("{"):
        try:
            data = json.loads(data)
        except ValueError:
            raise SeedError(where, "looks like JSON but does not parse") from None
    items: list[Any]
    if isinstance(data, dict):
        listed = data.get("keys")
        items = listed if isinstance(listed, list) else [data]
    elif isinstance(data, list):
        items = data
    else:
        items = [data]
    keys: PublicKeys = []
    for index, item in enumerate(items):
        spot = f"{where}[{index}]" if len(items) > 1 else where
        if isinstance(item, str):
            blocks = re.findall(r"-----BEGIN [A-Z ]+-----.+?-----END [A-Z ]+-----", item, re.DOTALL)
            if not blocks:
                raise SeedError(spot, "not a PEM public key")
            for block in blocks:
                try:
                    loaded = serialization.load_pem_public_key(block.encode("ascii"))
                except (ValueError, UnicodeEncodeError):
                    raise SeedError(spot, "not a PEM public key") from None
                if not isinstance(loaded, rsa.RSAPublicKey):
                    raise SeedError(spot, "only RSA keys are supported (RS256/384/512)")
                keys.append((None, loaded))
        elif isinstance(item, dict):
            if item.get("kty") != "RSA":
                continue
            modulus, exponent = b64url_decode(str(item.get("n", ""))), b64url_decode(str(item.get("e", "")))
            if not modulus or not exponent:
                raise SeedError(spot, "RSA JWK needs base64url 'n' and 'e'")
            try:
                public = rsa.RSAPublicNumbers(
                    int.from_bytes(exponent, "big"), int.from_bytes(modulus, "big")
                ).public_key()
            except ValueError:
                raise SeedError(spot, "RSA JWK does not describe a valid key") from None
            kid = item.get("kid")
            keys.append((kid if isinstance(kid, str) else None, public))
        else:
            raise SeedError(spot, "must be PEM text or a JWK mapping")
    if not keys:
        raise SeedError(where, "contains no RSA public key")
    return keys
