"""Who is calling: JWT verification shared by every service, and the role/case rules.

Tokens are EdDSA (Ed25519) or RS256 JWTs, verified against a configured public key or a
JWKS URL, with ``exp``, ``nbf``, ``iss`` and ``aud`` checked. ``none`` and HMAC are refused.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Annotated

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from custody_common.errors import ConfigurationError, CustodyError
from custody_common.keys import token_signing_key
from custody_common.settings import Settings

ALGORITHMS = ["EdDSA", "RS256"]
ROLES = frozenset({"investigator", "prosecutor", "auditor", "admin"})
WIDENABLE = frozenset({"auditor", "admin"})
"""Roles whose powers a ``*`` in ``cases`` extends to every case."""


class AuthenticationError(CustodyError):
    """The token is missing, malformed, expired, revoked or not ours."""


@dataclass(frozen=True)
class Principal:
    """The person behind a verified token."""

    sub: str
    roles: frozenset[str]
    cases: frozenset[str]
    token_id: str | None = None

    def has_role(self, *roles: str) -> bool:
        """Whether the caller holds any of ``roles``."""
        return bool(self.roles.intersection(roles))

    def sees_case(self, case: str, *roles: str) -> bool:
        """Whether the caller, acting in one of ``roles``, is assigned ``case``.
        ``*`` counts only for auditor and admin, never for a prosecutor or investigator."""
        for role in roles:
            if role not in self.roles:
                continue
            if case in self.cases or (role in WIDENABLE and "*" in self.cases):
                return True
        return False


class TokenVerifier:
    """Verifies bearer tokens against the configured key or JWKS."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._jwks = jwt.PyJWKClient(settings.token_jwks_url, cache_keys=True) if settings.token_jwks_url else None
        if self._jwks is None:
            path = settings.token_public_key or (settings.key_folder / "token-signing.pub")
            if settings.token_public_key is None:
                token_signing_key(settings)  # the local stack's key, generated on first start
            key = serialization.load_pem_public_key(path.read_bytes())
            if not isinstance(key, Ed25519PublicKey | RSAPublicKey):
                raise ConfigurationError(f"{path} must hold an Ed25519 or RSA public key")
            self._key = key

    def verify(self, token: str) -> Principal:
        """The principal of ``token``; raises AuthenticationError with the reason."""
        s = self._settings
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") not in ALGORITHMS:
                raise AuthenticationError(f"token algorithm {header.get('alg')!r} is not accepted")
            key = self._jwks.get_signing_key_from_jwt(token).key if self._jwks else self._key
            algorithm = "EdDSA" if isinstance(key, Ed25519PublicKey) else "RS256"
            if header["alg"] != algorithm:
                raise AuthenticationError(f"token algorithm {header['alg']!r} does not fit its key, which is {algorithm}")
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[algorithm],
                audience=s.token_audience,
                issuer=s.token_issuer,
                leeway=s.token_leeway_seconds,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except AuthenticationError:
            raise
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("token has expired; get a new one") from None
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"token is not valid: {exc}") from None
        roles = claims.get("roles", [])
        cases = claims.get("cases", [])
        if not (isinstance(roles, list) and all(isinstance(r, str) for r in roles)):
            raise AuthenticationError("token claim 'roles' must be a list of strings")
        if not (isinstance(cases, list) and all(isinstance(c, str) for c in cases)):
            raise AuthenticationError("token claim 'cases' must be a list of strings")
        jti = claims.get("jti")
        if claims["sub"] in s.revoked_subjects or (jti and jti in s.revoked_tokens):
            raise AuthenticationError("token has been revoked")
        return Principal(sub=claims["sub"], roles=frozenset(roles) & ROLES, cases=frozenset(cases), token_id=jti)


def mint_token(
    key: Ed25519PrivateKey,
    settings: Settings,
    sub: str,
    roles: list[str],
    cases: list[str],
    ttl_seconds: int = 8 * 3600,
) -> str:
    """A token for a one-machine stack, signed with its local key."""
    now = int(time.time())
    claims = {
        "iss": settings.token_issuer,
        "aud": settings.token_audience,
        "sub": sub,
        "roles": roles,
        "cases": cases,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode(claims, key, algorithm="EdDSA")


_bearer = HTTPBearer(auto_error=False)


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """FastAPI dependency: the verified caller, or 401."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "this route needs a bearer token (Authorization: Bearer …); get one with `custody token`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        principal = verifier.verify(credentials.credentials)
    except AuthenticationError as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
    request.state.principal = principal
    return principal


def require_role(*roles: str):  # type: ignore[no-untyped-def]
    """FastAPI dependency: the caller, if they hold one of ``roles``; else 403."""

    async def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not principal.has_role(*roles):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"this needs one of the roles: {', '.join(sorted(roles))}"
            )
        return principal

    return dependency
