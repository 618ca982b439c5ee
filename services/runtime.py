"""Process-wide settings a motcua service process starts with."""

import gc

# Collections of the youngest generation every 10,000 net allocations instead of 700 (50,000
# was a little faster and let routing's reference cycles double its memory: docs/benchmarks.md).
GEN0_THRESHOLD = 10_000


def tune_gc(young: int = GEN0_THRESHOLD) -> None:
    """Fewer, cheaper garbage collections for a long-running service process.

    A consumer batch or a group-commit batch allocates hundreds of thousands of short-lived
    objects (envelopes, rows, answers) that reference counting frees on its own; at Python's
    default threshold the cycle collector ran hundreds of times a batch to find almost
    nothing, a third of the projection's CPU (docs/benchmarks.md). `gc.freeze()` moves what
    start-up loaded (modules, compiled SQL, the catalogue) out of the collector's sight.
    Call it once, in the process's entry point: tests that build many apps in one process
    must not freeze each one's garbage for good.

    `young` is the service's `gc_young_threshold`. The count is of net allocations (objects
    made minus objects freed), so a collection runs only when that many more objects are alive
    than at the last one: above what a service's batches in flight keep alive, the collector
    runs when the heap grows, not on every batch.
    """
    gc.freeze()
    gc.set_threshold(young, 10, 10)
