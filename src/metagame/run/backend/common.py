"""Constants and the Ray import shared by the backend modules."""


from __future__ import annotations

import weakref
from typing import Any

from ...errors import MetagameError

#: the install hint of every "Ray is missing" error
RAY_EXTRA = "pip install 'metagame[ray]'"
#: adapter counters of model work: workers report their increments, which the driver's adapter adds to its own
COUNTERS = ("n_model_rows", "n_forward_passes", "n_tower_rows")
#: pieces in flight per worker: one running and one waiting behind it, so no worker idles while the driver collects
DEPTH = 2
#: pieces per worker a cuttable call is cut into (more balance the load, fewer cost less overhead)
PIECES_PER_WORKER = 2
#: seconds between checks for Ctrl-C while waiting for workers
_POLL = 0.2


def require_ray() -> Any:
    """The ``ray`` module, or a :class:`MetagameError` naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise MetagameError(f"backend='ray' needs Ray, which is not installed; {RAY_EXTRA} (or use backend='local')") from None
    return ray

#: the pools alive in this process (``live_pools``)
_LIVE: "weakref.WeakSet[Any]" = weakref.WeakSet()
