"""What every process checks on every request: the token, the revocation list, the rate.

`Security` is a component of each app (services.component): besides verifying tokens it
follows the clients topic, on which intake publishes revocations, from the beginning on every
start. So a process started after a revocation learns it before it answers (its readiness
waits for that), and a revocation reaches intake, routing and metrics processes alike without
any of them asking intake per request.
"""

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Coroutine, Sequence
from typing import Any

from fastapi import APIRouter
from prometheus_client import CollectorRegistry, Counter

from contracts import CLIENTS_TOPIC, ClientRevoked, DecodeError, decode
from services.bus.base import Bus, TopicPartition
from services.errors import MotcuaError, Unauthorized, Unavailable
from services.security.keys import signing_keys
from services.security.ratelimit import RateLimiter
from services.security.tokens import Principal, Tokens
from services.settings import ServiceSettings

log = logging.getLogger(__name__)


class Security:
    name = "auth"

    def __init__(self, settings: ServiceSettings, *, bus: Bus, registry: CollectorRegistry,
                 service: str) -> None:
        key, previous = signing_keys(settings)
        self.tokens = Tokens(key, previous=previous, issuer=settings.auth_issuer,
                             ttl_seconds=settings.auth_token_ttl_seconds)
        self.limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
        self.metrics_token = (settings.metrics_scrape_token.get_secret_value()
                              if settings.metrics_scrape_token else None)
        self.revoked: set[str] = set()
        self.caught_up = False
        self._bus = bus
        self._topic = settings.topic(CLIENTS_TOPIC)
        self._group_prefix = f"{settings.topic_prefix}auth-{service}"
        self._poll_ms = settings.consumer_poll_ms
        self.refusals = Counter(
            "motcua_auth_refused", "Requests refused by authentication, authorisation or the "
            "rate limit.", ["status", "reason"], registry=registry)

    # --- per request -----------------------------------------------------------------------

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal of a request's `Authorization` header, or a 401/429/503 problem."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            self.refuse(401, "missing")
            raise Unauthorized("This endpoint needs `Authorization: Bearer <token>`; ask POST "
                               "/v1/auth/token with your client id and secret for one.")
        try:
            principal = self.tokens.verify(token.strip())
        except Unauthorized:
            self.refuse(401, "invalid_token")
            raise
        if not self.caught_up:
            # Fail closed: until the revocation list is read, a revoked token could pass.
            raise Unavailable("Starting: the list of revoked clients is still being read.",
                              headers={"Retry-After": "1"})
        if principal.client_id in self.revoked:
            self.refuse(401, "revoked")
            raise Unauthorized("This client's credentials were revoked.", error="invalid_token")
        self.limit(principal.client_id)
        return principal

    def limit(self, key: str) -> None:
        try:
            self.limiter.take(key)
        except MotcuaError:
            self.refuse(429, "rate_limited")
            raise

    def refuse(self, status: int, reason: str) -> None:
        self.refusals.labels(str(status), reason).inc()

    def revoke(self, client_id: str) -> None:
        """Applied at once in the process that revoked; the others learn it from the topic."""
        self.revoked.add(client_id)

    # --- as a component --------------------------------------------------------------------

    def routers(self) -> list[APIRouter]:
        return []

    def topics(self) -> list[str]:
        return [CLIENTS_TOPIC]

    async def start(self) -> None:
        return None

    def background(self, stop: asyncio.Event) -> list[Coroutine[Any, Any, None]]:
        return [self.follow_revocations(stop)]

    async def stop(self) -> None:
        return None

    async def readiness(self) -> dict[str, Any]:
        return {"revocations": self.caught_up}

    async def follow_revocations(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._follow(stop)
            except Exception as exc:  # broker away: read the topic again from the start
                log.warning("reading revocations failed, retrying: %s: %s",
                            type(exc).__name__, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

    async def _follow(self, stop: asyncio.Event) -> None:
        # A group of its own, never committed: every start reads the whole (small) topic.
        async def from_start(tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
            return {tp: 0 for tp in tps}

        consumer = self._bus.consumer(group_id=f"{self._group_prefix}-{uuid.uuid4().hex[:12]}",
                                      topics=[self._topic], load_positions=from_start)
        try:
            # Inside the try: a start that fails half-way (broker away) is stopped too.
            await consumer.start()
            ends: dict[TopicPartition, int] = {}
            while not stop.is_set():
                for message in await consumer.getmany(timeout_ms=self._poll_ms,
                                                      max_records=1000):
                    self._apply(message.value)
                if self.caught_up:
                    continue
                # The topic's partitions as the broker knows them now; none known yet means
                # its metadata has not arrived, not that there is nothing to read.
                ends = ends or await self._bus.end_offsets([self._topic])
                if (ends and consumer.assignment() >= set(ends)
                        and sum((await consumer.lag()).values()) == 0):
                    self.caught_up = True
                    log.info("revocation list read: %d revoked clients", len(self.revoked))
        finally:
            await consumer.stop()

    def _apply(self, value: bytes) -> None:
        try:
            envelope = decode(value)
        except DecodeError as exc:
            log.warning("skipping an unreadable message on %s: %s", self._topic, exc)
            return
        if isinstance(envelope.data, ClientRevoked):
            self.revoked.add(envelope.data.client_id)
