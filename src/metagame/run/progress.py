"""Progress bars shared by every run (exact tables and sampled estimates)."""

from __future__ import annotations

import sys


def progress_bar(total: int, desc: str, progress: bool | None, unit: str = "coalition"):
    """A tqdm bar: always with ``progress=True``, never with False; with None only on a terminal and only
    once the work has run for more than 2 seconds."""
    from tqdm.auto import tqdm

    show = progress if progress is not None else sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit=unit, disable=not show, delay=0 if progress else 2.0, leave=False)


__all__ = ["progress_bar"]
