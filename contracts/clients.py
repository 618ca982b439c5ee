"""Client events: facts about the API clients intake registers (counters, portals, admins).

Only what every service needs to refuse a revoked client's still-unexpired tokens travels here:
the client id and when it was revoked. Secrets, names and scopes stay in intake's database.
"""

from typing import Annotated, ClassVar

from pydantic import AwareDatetime, ConfigDict, Field, StringConstraints

from contracts.event import Event

ClientId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{2,63}$")]


class ClientEvent(Event):
    model_config = ConfigDict(frozen=True, extra="forbid")

    TYPE_PREFIX: ClassVar[str] = "vn.motcua.client."

    client_id: ClientId = Field(description="The client the fact is about.")

    def key(self) -> str:
        return self.client_id


class ClientRevoked(ClientEvent):
    """A client's credentials were revoked: every service refuses its tokens from now on."""

    NAME = "revoked"

    revoked_at: AwareDatetime = Field(description="When intake recorded the revocation.")


CLIENT_EVENT_CLASSES: tuple[type[ClientEvent], ...] = (ClientRevoked,)
