"""`motcua deadletters list|replay`: what the consumers gave up on, and sending it back.

Settings come from the environment, as for the services (KAFKA_BOOTSTRAP_SERVERS or the
embedded bus in MOTCUA_DATA_DIR, MOTCUA_TOPIC_PREFIX). `replay` republishes each dead letter's
original bytes and headers to the topic it was read from, once per original record (routing and
metrics may both have dead-lettered it). Replaying is idempotent: consumers skip event ids they
have already applied. It keeps, by default, what this build still cannot decode (replaying it
would only dead-letter it again) and remembers how far it got in a consumer group of its own,
so the next run replays only newer dead letters (`--from-beginning` looks at all of them again).
"""

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import orjson
from pydantic import ValidationError

from contracts import DEAD_LETTER_TOPIC, DecodeError, decode
from contracts.deadletter import REASON_HEADER, DeadLetterReason
from services.bus import Bus, Message, Record, TopicPartition, make_bus
from services.settings import ServiceSettings

# Remembers where `replay` stopped (prefixed like every group).
REPLAY_GROUP = "motcua.deadletters.replay"
REPLAYED_HEADER = "dlq_replayed_from"


@dataclass(frozen=True)
class DeadLetter:
    message: Message
    reason: DeadLetterReason | None  # None: no readable reason header (not ours)

    @property
    def event_id(self) -> str | None:
        ids = [v for k, v in self.message.headers if k == "ce_id"]
        return ids[0].decode(errors="replace") if ids else None

    @property
    def original(self) -> tuple[str, int, int] | None:
        r = self.reason
        return (r.topic, r.partition, r.offset) if r is not None else None

    def describe(self) -> dict[str, Any]:
        r = self.reason
        m = self.message
        return {
            "dead_letter": f"{m.partition}:{m.offset}",
            "code": r.code if r else "no_reason",
            "group": r.group_id if r else None,
            "original": f"{r.topic}[{r.partition}]@{r.offset}" if r else None,
            "event_id": self.event_id,
            "reason": r.reason if r else None,
        }


def parse(m: Message) -> DeadLetter:
    raw = next((v for k, v in m.headers if k == REASON_HEADER), None)
    try:
        reason = DeadLetterReason.model_validate(orjson.loads(raw)) if raw else None
    except (orjson.JSONDecodeError, ValidationError):
        reason = None
    return DeadLetter(m, reason)


Progress = Callable[[int, int], None]


async def read(
    bus: Bus, topic: str, *, group_id: str, from_beginning: bool,
    on_batch: Callable[[list[Message]], Any] | None = None, commit: bool = False,
    progress: Progress | None = None, timeout_s: float = 60.0,
) -> list[Message]:
    """The topic's records up to its end as of now (later ones are left for the next run);
    with `commit`, the group's offsets move past each batch once `on_batch` handled it."""
    ends = await bus.end_offsets([topic])
    total = sum(ends.values())

    async def load(tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        # From the start, or (empty answer) from the group's committed offsets.
        return {tp: 0 for tp in tps} if from_beginning else {}

    consumer = bus.consumer(group_id=group_id, topics=[topic], load_positions=load)
    out: list[Message] = []
    reached: dict[TopicPartition, int] = {}
    deadline = time.monotonic() + timeout_s
    await consumer.start()
    try:
        while True:
            lag = await consumer.lag()
            assigned = consumer.assignment()
            if assigned >= {tp for tp, e in ends.items() if e} and all(
                e == 0 or reached.get(tp, 0) >= e or (tp in lag and lag[tp] == 0)
                for tp, e in ends.items()
            ):
                return out
            if time.monotonic() > deadline:
                raise TimeoutError(f"read {len(out)} of up to {total} dead letters in "
                                   f"{timeout_s:.0f}s; is the bus reachable?")
            batch = await consumer.getmany(timeout_ms=300, max_records=500)
            fresh = [m for m in batch if m.offset < ends.get(m.tp, 0)]
            for m in batch:
                reached[m.tp] = max(reached.get(m.tp, 0), m.offset + 1)
            if fresh:
                out.extend(fresh)
                if on_batch is not None:
                    await on_batch(fresh)
                if commit:
                    await consumer.commit({
                        tp: min(o, ends.get(tp, 0)) for tp, o in _next_offsets(fresh).items()
                    })
            if progress is not None and batch:
                progress(len(out), total)
    finally:
        await consumer.stop()


def _next_offsets(messages: Sequence[Message]) -> dict[TopicPartition, int]:
    out: dict[TopicPartition, int] = {}
    for m in messages:
        out[m.tp] = max(out.get(m.tp, 0), m.offset + 1)
    return out


@dataclass
class ReplayReport:
    replayed: int = 0
    same_original: int = 0  # a second dead letter of an original record already replayed
    kept_undecodable: int = 0
    kept_no_reason: int = 0
    filtered: int = 0


def replay_record(d: DeadLetter, dlq_topic: str) -> Record:
    assert d.reason is not None
    m = d.message
    headers = tuple((k, v) for k, v in m.headers if k not in (REASON_HEADER, REPLAYED_HEADER))
    origin = f"{dlq_topic}:{m.partition}:{m.offset}".encode()
    return Record(topic=d.reason.topic, key=m.key, value=m.value,
                  headers=(*headers, (REPLAYED_HEADER, origin)))


async def replay(
    bus: Bus, prefix: str, *, from_beginning: bool = False, code: str | None = None,
    group: str | None = None, force: bool = False, dry_run: bool = False,
    progress: Progress | None = None, out: TextIO = sys.stdout,
) -> ReplayReport:
    topic = prefix + DEAD_LETTER_TOPIC
    report = ReplayReport()
    seen: set[tuple[str, int, int]] = set()

    async def handle(batch: list[Message]) -> None:
        records: list[Record] = []
        for m in batch:
            d = parse(m)
            if d.reason is None or d.original is None:
                report.kept_no_reason += 1
                continue
            if (code and d.reason.code != code) or (group and d.reason.group_id != group):
                report.filtered += 1
                continue
            if d.original in seen:
                report.same_original += 1
                continue
            seen.add(d.original)
            if not force:
                try:
                    decode(m.value)
                except DecodeError as exc:
                    report.kept_undecodable += 1
                    print(f"kept {d.describe()['dead_letter']}: still {exc.code} with this "
                          f"build: {str(exc)[:200]}", file=out)
                    continue
            records.append(replay_record(d, topic))
        if records and not dry_run:
            await bus.publish(records)
        report.replayed += len(records)

    await read(bus, topic, group_id=prefix + REPLAY_GROUP, from_beginning=from_beginning,
               on_batch=handle, commit=not dry_run, progress=progress)
    return report


async def list_dead_letters(bus: Bus, prefix: str, *, progress: Progress | None = None,
                            ) -> list[DeadLetter]:
    # A throwaway group that never commits: listing moves no one's cursor.
    group_id = f"{prefix}motcua.deadletters.list.{time.time_ns()}"
    topic = prefix + DEAD_LETTER_TOPIC
    messages = await read(bus, topic, group_id=group_id, from_beginning=True, progress=progress)
    return [parse(m) for m in messages]


# --- command line --------------------------------------------------------------------------


def register(sub: Any) -> None:
    p = sub.add_parser("deadletters", help="list or replay dead letters (bus and prefix from "
                                           "the environment, as for the services)")
    actions = p.add_subparsers(dest="action", required=True)
    ls = actions.add_parser("list", help="every dead letter with its reason")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ls.set_defaults(func=cmd_list)
    rp = actions.add_parser(
        "replay", help="republish dead letters to their original topic (after a fix or an "
                       "upgrade); consumers skip events they already applied")
    rp.add_argument("--from-beginning", action="store_true",
                    help="look at every dead letter again, not only those after the last replay")
    rp.add_argument("--code", help="only dead letters with this reason code (e.g. undecodable)")
    rp.add_argument("--group", help="only dead letters of this consumer group (full name)")
    rp.add_argument("--force", action="store_true",
                    help="replay even what this build still cannot decode")
    rp.add_argument("--dry-run", action="store_true", help="count, publish nothing")
    rp.set_defaults(func=cmd_replay)


def _progress(verb: str) -> Progress:
    last = [0.0]

    def show(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.5 or done >= total:
            last[0] = now
            print(f"{verb} {done}/{total}", file=sys.stderr, flush=True)

    return show


async def _with_bus(fn: Callable[[Bus, str], Any]) -> Any:
    settings = ServiceSettings()
    if not settings.kafka_bootstrap_servers and not settings.embedded_bus_url:
        path = settings.data_dir / "bus.db"
        if not path.exists():
            raise SystemExit(f"no embedded bus log at {path.resolve()} (set MOTCUA_DATA_DIR, or "
                             "KAFKA_BOOTSTRAP_SERVERS for Kafka)")
    bus = make_bus(settings)
    await bus.start()
    try:
        return await fn(bus, settings.topic_prefix)
    finally:
        await bus.close()


def cmd_list(args: argparse.Namespace) -> None:
    letters: list[DeadLetter] = asyncio.run(_with_bus(
        lambda bus, prefix: list_dead_letters(bus, prefix, progress=_progress("read"))))
    by_code: dict[str, int] = {}
    for d in letters:
        row = d.describe()
        by_code[row["code"]] = by_code.get(row["code"], 0) + 1
        if args.json:
            print(orjson.dumps(row).decode())
        else:
            print(f"{row['dead_letter']:>9}  {row['code']:<15} {row['group'] or '-':<28} "
                  f"{row['original'] or '-'}  id={row['event_id'] or '-'}  "
                  f"{(row['reason'] or '')[:160]}")
    summary = ", ".join(f"{n} {c}" for c, n in sorted(by_code.items())) or "none"
    print(f"{len(letters)} dead letters ({summary})", file=sys.stderr)


def cmd_replay(args: argparse.Namespace) -> None:
    report: ReplayReport = asyncio.run(_with_bus(lambda bus, prefix: replay(
        bus, prefix, from_beginning=args.from_beginning, code=args.code, group=args.group,
        force=args.force, dry_run=args.dry_run, progress=_progress("examined"))))
    verb = "would replay" if args.dry_run else "replayed"
    print(f"{verb} {report.replayed}; skipped {report.same_original} second dead letters of "
          f"the same record, {report.filtered} filtered out; kept {report.kept_undecodable} "
          f"this build still cannot decode and {report.kept_no_reason} without a reason header",
          file=sys.stderr)
