"""Administrators manage the API clients: create (the secret is shown once), list, revoke."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from intake import clients
from intake.access import actor
from intake.audit import Note
from intake.clients import ClientCreate
from intake.uow import IntakeDep
from services.security.policy import AdminDep, security_of

router = APIRouter(prefix="/v1/admin/clients", tags=["admin"])
PROBLEMS: dict[int | str, dict[str, Any]] = {
    s: {"content": {"application/problem+json": {}}} for s in (401, 403, 404, 422)
}
ClientIdPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{2,63}$")]


@router.post("", status_code=201, responses=PROBLEMS,
             summary="Register a client; the answer holds its secret, shown this once")
async def create_client(data: ClientCreate, intake: IntakeDep, principal: AdminDep,
                        request: Request) -> dict[str, Any]:
    def create(*, session: Any, deps: Any) -> tuple[dict[str, Any], bool]:
        client, secret = clients.create_client(
            session=session, data=data, catalogue=deps.catalogue(session),
            created_by=principal.client_id, now=deps.clock())
        return {**client, "client_secret": secret}, True

    body, _ = await intake.write(create, audit=Note(actor(request, principal),
                                                    "client.created", detail=data.kind))
    return body


@router.get("", responses=PROBLEMS, summary="Every client (never a secret)")
async def list_clients(
    intake: IntakeDep, _admin: AdminDep,
    active: Annotated[bool, Query(description="Only clients not revoked.")] = False,
) -> dict[str, Any]:
    items = await intake.read(clients.list_clients, include_revoked=not active)
    return {"items": items}


@router.post("/{client_id}/revoke", responses=PROBLEMS,
             summary="Revoke a client: its tokens are refused everywhere from now on")
async def revoke_client(client_id: ClientIdPath, intake: IntakeDep, principal: AdminDep,
                        request: Request, response: Response) -> dict[str, Any]:
    def revoke(*, session: Any, deps: Any) -> tuple[dict[str, Any], bool]:
        return clients.revoke_client(session=session, client_id=client_id,
                                     revoked_by=principal.client_id, now=deps.clock(),
                                     source=deps.source)

    body, changed = await intake.write(
        revoke, audit=Note(actor(request, principal), "client.revoked", detail=client_id))
    # This process refuses the client at once; the others when they read the clients topic.
    security_of(request).revoke(client_id)
    response.status_code = 200
    return {**body, "changed": changed}
