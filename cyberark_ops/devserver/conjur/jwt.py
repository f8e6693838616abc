"""authn-jwt for the Conjur emulation: JWKS / PEM key parsing, JWT verification and the identity a
verified JWT authenticates. The dev server's own issuer is in ``issuer.py``."""

from __future__ import annotations

import json
import re
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..encoding import b64url_decode, is_number, json_object
from ..errors import SeedError
from ..seedcheck import has_control
from .errors import jwt_rejected
from .records import JwtService

JWT_SHAPE = re.compile(r"[-A-Za-z0-9_=]+\.[-A-Za-z0-9_=]+\.[-A-Za-z0-9_=]+")
_JWT_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "RS256": hashes.SHA256,
    "RS384": hashes.SHA384,
    "RS512": hashes.SHA512,
}

PublicKeys = list[tuple[str | None, rsa.RSAPublicKey]]
"""(kid or None, key) pairs; a key without a kid matches any JWT header."""


def verify_jwt(token: str, keys: PublicKeys, service: JwtService, now: float) -> dict[str, Any]:
    """The claims of ``token`` once it verifies as Conjur checks it: signature, then exp/nbf, iss, aud."""
    parts = token.split(".") if JWT_SHAPE.fullmatch(token) else []
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
