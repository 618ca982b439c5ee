"""What a service contributes to an app: routers, background tasks, readiness checks.

One process may host one component (`motcua intake`) or all three (`motcua up`); the app
factory neither knows nor cares which.
"""

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol

from fastapi import APIRouter


class Component(Protocol):
    name: str

    def routers(self) -> list[APIRouter]: ...

    async def start(self) -> None:
        """Migrate and open resources; the bus is already started."""
        ...

    def background(self, stop: asyncio.Event) -> list[Coroutine[Any, Any, None]]:
        """Long-running loops (consumers, relays) that end when `stop` is set."""
        ...

    async def stop(self) -> None: ...

    async def readiness(self) -> dict[str, Any]:
        """Named checks; a check whose value is False makes /readyz answer 503."""
        ...

    def topics(self) -> list[str]:
        """Topics (unprefixed) this component publishes or consumes, created at start-up."""
        ...
