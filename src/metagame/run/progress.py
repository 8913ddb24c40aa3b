"""Progress bars shared by every run (exact tables and sampled estimates)."""

from __future__ import annotations

import sys


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where stderr is not a terminal but tqdm.auto draws a widget)."""
    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    ip = get() if callable(get) else None
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def _tqdm_class():
    """tqdm's notebook widget inside Jupyter when ipywidgets is installed, else the text bar (tqdm.auto would warn
    that IProgress is missing and fall back to text anyway)."""
    if in_notebook():
        try:
            import ipywidgets  # noqa: F401
            from tqdm.notebook import tqdm

            return tqdm
        except ImportError:
            pass
    from tqdm.std import tqdm

    return tqdm


def progress_bar(total: int, desc: str, progress: bool | None, unit: str = "coalition"):
    """A tqdm bar (a widget in Jupyter, text on a terminal): always with ``progress=True``, never with
    False; with None only on a terminal or in a notebook, and only once the work has run for more than 2 seconds."""
    tqdm = _tqdm_class()
    show = progress if progress is not None else (sys.stderr.isatty() or in_notebook())
    return tqdm(total=total, desc=desc, unit=unit, disable=not show, delay=0 if progress else 2.0, leave=False)


__all__ = ["in_notebook", "progress_bar"]
