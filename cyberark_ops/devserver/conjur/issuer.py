"""The dev server's own JWT issuer: an RSA key kept in the state dir (so a restart keeps it), whose
JWTs every authn-jwt service seeded without ``public_keys`` trusts."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..encoding import b64url_nopad, compact_json
from .jwt import PublicKeys

log = logging.getLogger("cyberark_ops.devserver")

DEV_JWT_ISSUER = "https://devserver.cyberark-ops.local"
JWT_KEY_FILE = "jwt-key.pem"


class DevIssuer:
    """The dev server's own JWT issuer: services seeded without ``public_keys`` trust it."""

    def __init__(self, state_dir: Path, key_file: str = JWT_KEY_FILE) -> None:
        self.state_dir = state_dir
        self.key_file = key_file
        self._lock = threading.Lock()
        self._key: tuple[rsa.RSAPrivateKey, str] | None = None

    def _load(self) -> tuple[rsa.RSAPrivateKey, str]:
        """Loads ``state_dir/jwt-key.pem`` or creates it, so a restarted server keeps its issuer key."""
        with self._lock:
            if self._key is not None:
                return self._key
            path = self.state_dir / self.key_file
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
