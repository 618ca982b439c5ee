"""Process-wide settings a motcua service process starts with."""

import gc

# Collections of the youngest generation every 10,000 net allocations instead of 700 (50,000
# was a little faster and let routing's reference cycles double its memory: docs/benchmarks.md).
GEN0_THRESHOLD = 10_000


def tune_gc() -> None:
    """Fewer, cheaper garbage collections for a long-running service process.

    A consumer batch or a group-commit batch allocates hundreds of thousands of short-lived
    objects (envelopes, rows, answers) that reference counting frees on its own; at Python's
    default threshold the cycle collector ran hundreds of times a batch to find almost
    nothing, a third of the projection's CPU (docs/benchmarks.md). `gc.freeze()` moves what
    start-up loaded (modules, compiled SQL, the catalogue) out of the collector's sight.
    Call it once, in the process's entry point: tests that build many apps in one process
    must not freeze each one's garbage for good.
    """
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, 10, 10)
