"""The files every command writes into its ``--out`` folder."""

from __future__ import annotations

from pathlib import Path

from ..results.result import MetaAttribution


def write_outputs(result: MetaAttribution, out_dir: str | Path) -> dict[str, Path]:
    """Write ``result.json`` (and, as they exist, ``report.html`` and PNG figures) into ``out_dir``.

    Returns the written paths by name.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"result": result.save(out / "result.json")}
    return written
