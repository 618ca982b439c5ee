"""A build that knows one more version of an event type than this checkout: what an upgrade
looks like to a consumer that parked a partition at that version.

In-process: `with knows_next_version(Transferred): ...`. As a process:
`python -m tests.faults.upgraded received routing --port N` runs `motcua routing` as that build.
"""

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ClassVar

from contracts import EVENT_CLASSES, CaseEvent, codec


def install(event_cls: type[CaseEvent]) -> Callable[[], None]:
    """Teach the codec version N+1 of `event_cls` (N's payload plus nothing: an additive change,
    so N upcasts to N+1 unchanged); returns the function that forgets it again."""
    event_type = event_cls.event_type()
    known = codec.REGISTRY[event_type]

    class Newer(known):  # type: ignore[valid-type,misc]
        VERSION: ClassVar[int] = known.VERSION + 1

    Newer.__name__ = f"{known.__name__}V{Newer.VERSION}"
    codec.REGISTRY[event_type] = Newer
    codec.UPCASTERS[(event_type, known.VERSION)] = lambda data: data

    def undo() -> None:
        codec.REGISTRY[event_type] = known
        codec.UPCASTERS.pop((event_type, known.VERSION), None)

    return undo


@contextmanager
def knows_next_version(event_cls: type[CaseEvent]) -> Iterator[None]:
    undo = install(event_cls)
    try:
        yield
    finally:
        undo()


def main(argv: list[str]) -> None:
    name, rest = argv[0], argv[1:]
    install(next(c for c in EVENT_CLASSES if name == c.NAME))
    from motcua.cli import main as motcua

    motcua(rest)


if __name__ == "__main__":
    main(sys.argv[1:])
