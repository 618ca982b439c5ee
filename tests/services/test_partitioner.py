"""The remembered partitioner picks what Kafka's default rule picks, for every key."""

from aiokafka.partitioner import DefaultPartitioner

from services.bus.partitioner import KeyPartitioner


def test_every_key_goes_where_the_default_rule_sends_it() -> None:
    default = DefaultPartitioner()
    remembered = KeyPartitioner(remembered=50)  # dropped and refilled many times below
    keys = [f"000.00.20.H56-2611{d:02d}-{n:04d}".encode() for d in range(1, 4)
            for n in range(1, 120)] + ["Sở Tư pháp".encode(), b""]
    for partitions in (1, 3, 6, 12):
        every = list(range(partitions))
        for _ in range(2):  # the first time computed, the second remembered
            chosen = [remembered(k, every, every) for k in keys]
            assert chosen == [default(k, every, every) for k in keys]
    assert len({remembered(k, list(range(6)), []) for k in keys}) == 6


def test_an_unkeyed_record_goes_to_an_available_partition() -> None:
    partitioner = KeyPartitioner()
    picked = {partitioner(None, [0, 1, 2, 3], [1, 3]) for _ in range(200)}
    assert picked == {1, 3}
