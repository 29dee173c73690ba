"""Workers keep the memory their nodes free, instead of faulting it back in for every array.

glibc's ``malloc`` serves each allocation above its mmap threshold (128 kB, rising with use to
at most 32 MB) with fresh pages from the kernel, and hands them back when the array is freed.
A session's GLM allocates its BOLD series and the pieces of its fit that way, so every node
touched all of that memory for the first time again: on the test machine (a Firecracker VM,
transparent huge pages on ``madvise``, which numpy asks for), about 7,900 page faults and 7 %
of a 2 mm GLM in steady state, and 15,000 faults, half a second, in a worker's first GLM.

:func:`keep_freed_memory` raises the mmap threshold so that such arrays come from the heap,
and the trim threshold so that freed memory stays there for the next node, up to
:data:`KEPT_BYTES`.  A worker's resident memory then stays near the largest node it has run
instead of falling back between nodes; its peak is the same (the bench measures it).
"""

from __future__ import annotations

import ctypes
import functools
import logging

LOGGER = logging.getLogger("hermesflow")

# mallopt's parameter numbers (<malloc.h>).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

# Arrays up to this size come from the heap (a 2 mm BOLD series in float32 is ~0.4 GB).
HEAP_ARRAYS_UP_TO = 1 << 30
# Free memory kept at the top of a process's heap for its next node.
KEPT_BYTES = 1 << 30


@functools.cache
def keep_freed_memory() -> bool:
    """Set glibc's thresholds in this process, once (the scheduler's workers call it before
    each node); False where the C library has no ``mallopt`` or refuses it (nothing
    changed).

    For the rest of the process: glibc cannot give its threshold back to its own dynamic
    adjustment, which is why only the workers, not the main process, call this.
    """
    try:
        # The C library already loaded in this process (no search for its file).
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no mallopt (macOS): leave it as is
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    done = (mallopt(M_MMAP_THRESHOLD, HEAP_ARRAYS_UP_TO) == 1
            and mallopt(M_TRIM_THRESHOLD, KEPT_BYTES) == 1)
    if not done:
        LOGGER.debug("glibc refused the malloc thresholds; arrays stay on mmap")
    return done
