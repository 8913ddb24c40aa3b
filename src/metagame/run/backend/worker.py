"""The Ray actor that builds the adapter once and attributes pieces of the run."""


from __future__ import annotations

import contextlib
import os
import pickle
import sys
from typing import Any, Callable

import numpy as np

from ...games.masked import checked_attributions
from ...methods.base import AttributionMethod
from ...models.base import ModelAdapter
from .common import COUNTERS


# ------------------------------------------------------------------------------------------------ the worker
class _Worker:
    """A Ray actor holding one copy of the adapter (built in the constructor; a build error is kept and raised by
    every call, so the driver sees the user's own exception)."""

    def __init__(self, payload: bytes, batch_size: int, torch_threads: int | None = None):
        import ray
        import torch

        if torch_threads is not None:  # the driver's thread count: the same float32 reduction order as the local run
            torch.set_num_threads(int(torch_threads))

        self.adapter: ModelAdapter | None = None
        self.error: BaseException | None = None
        kind = "adapter"
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # one progress bar per run, the driver's
        try:
            kind, obj = pickle.loads(payload)
            if "transformers" in sys.modules:
                with contextlib.suppress(Exception):
                    sys.modules["transformers"].utils.logging.disable_progress_bar()
            adapter = obj.build(gpu=bool(ray.get_gpu_ids())) if kind == "recipe" else obj
            adapter.batch_size = batch_size
            self.adapter = adapter
        except Exception as exc:  # noqa: BLE001 - raised to the driver by the first call
            if isinstance(exc, ImportError):
                exc.add_note("(on a Ray worker: install that module on every node, or define the model in the script "
                             "you run)")
            elif kind == "recipe":
                exc.add_note("(while a Ray worker built the adapter from its recipe: the model name/path must be "
                             "reachable from every node)")
            self.error = exc

    def _adapter(self) -> ModelAdapter:
        if self.error is not None:
            raise self.error
        assert self.adapter is not None
        return self.adapter

    def info(self) -> dict[str, Any]:
        import ray
        import torch

        adapter = self._adapter()
        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(),
                "gpus": [str(g) for g in ray.get_gpu_ids()], "players": list(adapter.players),
                "torch_threads": torch.get_num_threads()}

    def _counted(self, fn: Callable[[ModelAdapter], Any]) -> tuple[np.ndarray, dict[str, int]]:
        adapter = self._adapter()
        before = {k: int(getattr(adapter, k)) for k in COUNTERS if hasattr(adapter, k)}
        out = fn(adapter).detach().cpu().double().numpy()
        return out, {k: int(getattr(adapter, k)) - v for k, v in before.items()}

    def attribute(self, method: AttributionMethod, coalitions: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
        """φ(f, x_S) of each row, exactly as the local game computes it."""
        rows = np.array(coalitions, dtype=bool)  # a writable copy (Ray hands arrays over read-only)
        phi, counts = self._counted(lambda adapter: adapter.attribute(method, rows))
        return checked_attributions(phi, rows, self._adapter(), method), counts

    def values(self, coalitions: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
        """f(x_S) of each row."""
        rows = np.array(coalitions, dtype=bool)
        return self._counted(lambda adapter: adapter.values(rows))


_REMOTE_WORKER: Any = None


def _remote_worker(ray: Any) -> Any:
    global _REMOTE_WORKER
    if _REMOTE_WORKER is None:
        _REMOTE_WORKER = ray.remote(_Worker)
    return _REMOTE_WORKER
