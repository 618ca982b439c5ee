"""FastAPI dependency giving routes intake's runtime (units of work, settings, deps)."""

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

if TYPE_CHECKING:
    from intake.app import IntakeComponent


# async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per request.
async def get_intake(request: Request) -> "IntakeComponent":
    return request.app.state.components["intake"]


IntakeDep = Annotated["IntakeComponent", Depends(get_intake)]
