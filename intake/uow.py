"""Intake's runtime (units of work, settings, deps) for routes: a FastAPI dependency, or a call."""

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

if TYPE_CHECKING:
    from intake.app import IntakeComponent


def intake_of(request: Request) -> "IntakeComponent":
    """The app's intake component. The routes every counter's write goes through call this
    themselves: FastAPI 0.165 solves a declared dependency for about 10 µs a request
    (docs/benchmarks.md, ninth pass), for a dict look-up."""
    component: IntakeComponent = request.app.state.components["intake"]
    return component


# async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per request.
async def get_intake(request: Request) -> "IntakeComponent":
    return intake_of(request)


IntakeDep = Annotated["IntakeComponent", Depends(get_intake)]
