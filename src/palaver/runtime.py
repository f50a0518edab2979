"""Settings of the Python runtime that the server and the delivery worker processes share."""

from __future__ import annotations

import gc

# CPython collects its youngest generation when tracked objects allocated minus
# freed pass this number. The default (700) is passed every few batches by what
# a busy process holds for a moment: the ends in flight until their group
# commit in the server, the deliveries taken and outcomes waiting to be
# recorded in the worker. Each such collection promotes them, and the older
# generations' collections then walk them again (docs/performance.md).
GC_GEN0_THRESHOLD = 20_000


def collect_young_objects_less_often() -> None:
    gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])
