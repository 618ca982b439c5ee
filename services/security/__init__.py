"""Authentication and authorisation every service shares: bearer tokens, the revocation list,
per-route decisions, agency and KPI scopes, rate limits (docs/security.md)."""

from services.security.guard import Security
from services.security.tokens import KINDS, Kind, Principal, Tokens

__all__ = ["KINDS", "Kind", "Principal", "Security", "Tokens"]
