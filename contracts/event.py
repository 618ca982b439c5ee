"""The base of every payload: frozen, versioned, named, and keyed by the entity it is about.

Case events (contracts.cases) are keyed by case code; catalogue events (contracts.catalogue)
by the agency or procedure code. The key is the envelope's `subject` and the Kafka record key,
so one entity's events stay in order on one partition.
"""

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    NAME: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1
    TYPE_PREFIX: ClassVar[str] = "vn.motcua."

    @classmethod
    def event_type(cls) -> str:
        return cls.TYPE_PREFIX + cls.NAME

    def key(self) -> str:
        """The entity this event is about: the envelope's subject and the record key."""
        raise NotImplementedError(f"{type(self).__name__} does not name its entity")
