"""FastAPI dependency giving routes routing's runtime."""

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

if TYPE_CHECKING:
    from routing.app import RoutingComponent


# async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per request.
async def get_routing(request: Request) -> "RoutingComponent":
    return request.app.state.components["routing"]


RoutingDep = Annotated["RoutingComponent", Depends(get_routing)]
