"""Bearer tokens: short-lived HS256 JWTs that intake issues and every service verifies.

A token names the client (`sub`), its kind, and its scope: the agency a counter writes for (the
agency and every unit under it; none = every agency) or the province a portal reads (none =
national). Verifying needs only the shared key: no service asks another one on each request.
Revocation is the one piece of state a verifier needs beyond the key (services.security.guard).
"""

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal, get_args

import jwt

from services.errors import Unauthorized

Kind = Literal["counter", "portal", "admin"]
KINDS: tuple[str, ...] = get_args(Kind)
ALGORITHM = "HS256"
# A verifier whose clock runs a little behind the issuer's still accepts a fresh token.
LEEWAY_SECONDS = 10


@dataclass(frozen=True)
class Principal:
    """Who is calling, as the token says."""

    client_id: str
    kind: Kind
    agency: str | None = None  # counter: its agency (and every unit under it); None = all
    province: str | None = None  # portal: its province; None = national
    token_id: str = ""
    expires_at: int = 0

    def describe(self) -> str:
        if self.kind == "counter":
            return f"counter of {self.agency or 'every agency'}"
        if self.kind == "portal":
            return f"portal of {'province ' + self.province if self.province else 'the nation'}"
        return "administrator"


def key_id(key: bytes) -> str:
    """Names a key without revealing it, so a verifier picks the right one after rotation."""
    return hashlib.sha256(b"motcua-kid:" + key).hexdigest()[:12]


VERIFIED_CACHE = 10_000


class Tokens:
    def __init__(self, key: bytes, *, previous: bytes | None = None, issuer: str = "motcua",
                 ttl_seconds: int = 900) -> None:
        self._key = key
        self._kid = key_id(key)
        self._keys = {self._kid: key}
        if previous:
            self._keys[key_id(previous)] = previous
        self.issuer = issuer
        self.ttl_seconds = ttl_seconds
        # A counter sends the same token with every request for its 15 minutes: checking the
        # signature once is enough (the cache holds only tokens that passed; expiry is checked
        # on every use, revocation by the caller on every use).
        self._verified: dict[str, Principal] = {}

    def issue(self, *, client_id: str, kind: str, agency: str | None = None,
              province: str | None = None, now: float | None = None,
              ttl_seconds: int | None = None) -> tuple[str, int]:
        """(token, seconds until it expires)."""
        issued = int(now if now is not None else time.time())
        ttl = self.ttl_seconds if ttl_seconds is None else ttl_seconds
        claims: dict[str, Any] = {
            "iss": self.issuer, "aud": self.issuer, "sub": client_id, "kind": kind,
            "iat": issued, "nbf": issued, "exp": issued + ttl, "jti": secrets.token_hex(8),
        }
        if agency is not None:
            claims["agency"] = agency
        if province is not None:
            claims["province"] = province
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self._kid})
        return token, ttl

    def verify(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None:
            if known.expires_at + LEEWAY_SECONDS > time.time():
                return known
            del self._verified[token]
        principal = self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE:
            self._verified.clear()
        self._verified[token] = principal
        return principal

    def _verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("The bearer token is malformed.", error="invalid_token") from exc
        key = self._keys.get(str(header.get("kid", "")))
        if key is None or header.get("alg") != ALGORITHM:
            raise Unauthorized("The bearer token was not signed by this deployment.",
                               error="invalid_token")
        try:
            claims = jwt.decode(
                token, key, algorithms=[ALGORITHM], audience=self.issuer, issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "sub", "jti", "kind"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("The bearer token has expired; ask POST /v1/auth/token for a "
                               "new one.", error="invalid_token") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"The bearer token is not valid: {exc}.",
                               error="invalid_token") from exc
        kind = claims.get("kind")
        if kind not in KINDS:
            raise Unauthorized("The bearer token names no known client kind.",
                               error="invalid_token")
        return Principal(
            client_id=str(claims["sub"]), kind=kind, agency=_opt(claims.get("agency")),
            province=_opt(claims.get("province")), token_id=str(claims["jti"]),
            expires_at=int(claims["exp"]),
        )


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)
