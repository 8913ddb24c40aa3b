"""The files every command writes into its ``--out`` folder."""

from __future__ import annotations

from pathlib import Path

from ..results.result import MetaAttribution
from .report import write_report


def write_outputs(result: MetaAttribution, out_dir: str | Path) -> dict[str, Path]:
    """Write ``result.json``, one PNG per suitable picture and ``report.html`` into ``out_dir``.

    Pictures need matplotlib (``pip install metagame[viz]``); without it the JSON and the report are still written.
    Returns the written paths by name (``result``, ``report``, and the figure names: ``heatmap``, ``arcs``,
    ``waterfall``, ``image``, ``comparison`` as they apply).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {"result": result.save(out / "result.json")}
    pngs: dict[str, Path] = {}
    from .style import HAVE_MPL as _HAVE_MPL

    if _HAVE_MPL:
        from .plots import default_figures, save_figure

        for name, fig in default_figures(result).items():
            pngs[name] = save_figure(fig, out / f"{name}.png")
            fig.clear()
    written["report"] = write_report(result, out / "report.html", figures=pngs)
    written.update(pngs)
    return written
