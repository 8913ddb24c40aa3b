"""Pictures, report and output folder of a :class:`~metagame.ResultSet`.

* ``position_plot``: the mean directed meta-attribution by relative position j − i (source minus target, among
  players of one kind) across the inputs, with ±1.96 stderr bars — which neighbours move a word, on average.
* ``top_pairs_plot``: the strongest aggregated word pairs "source → target" (mean across inputs, ±1.96 stderr).
* ``write_set_report``: ``report.html`` — an index with the aggregate pictures and tables, linking one page per
  input (``inputs/<id>.html``, the single-result report).
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..results.result_set import ResultSet, _file_id
from .style import NEG_COLOR, POS_COLOR, finish, kind_noun, new_figure, short

_esc = html.escape
SET_CAPTIONS = {
    "positions": "Mean directed meta-attribution by relative position d = j − i (source j sits d places after target i; "
                 "negative d = an earlier word), across the inputs, with 95% bars (±1.96 stderr across inputs).",
    "top_pairs": "Strongest aggregated pairs 'source → target' (words folded: case, punctuation, #n), mean φ_{j→i} across "
                 "the inputs holding the pair (n), with 95% bars; pairs seen in one input have no bar.",
}


def position_plot(rs: ResultSet, *, max_distance: int = 8, save: str | Path | None = None):
    """Bars of the mean off-diagonal M[i, j] by d = j − i (|d| ≤ ``max_distance``), one panel per kind of player."""
    agg = rs.aggregate("distance")
    kinds = sorted({k[0] for k in agg.keys if k[0] == k[1]})
    fig = new_figure(6.4, 2.6 * max(len(kinds), 1))
    axes = fig.subplots(max(len(kinds), 1), 1, squeeze=False)[:, 0]
    for ax, kind in zip(axes, kinds or ["-"]):
        rows = sorted((r for r in agg.rows() if r["target_kind"] == kind and r["source_kind"] == kind
                       and abs(r["distance"]) <= max_distance), key=lambda r: r["distance"])
        d = np.array([r["distance"] for r in rows])
        m = np.array([r["mean"] for r in rows])
        se = np.array([r["stderr"] if math.isfinite(r["stderr"]) else 0.0 for r in rows])
        ax.bar(d, m, color=[POS_COLOR if v >= 0 else NEG_COLOR for v in m], yerr=1.96 * se, capsize=2,
               error_kw={"lw": 0.8})
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xticks(d)
        ax.set_xlabel("relative position d = j − i (source after target: d > 0)")
        ax.set_ylabel(r"mean $\varphi_{j\to i}$")
        ax.set_title(f"{kind_noun(kind)}: mean push of a source at distance d ({len(rs.distinct())} inputs)", fontsize=9)
    return finish(fig, save)


def top_pairs_plot(rs: ResultSet, n: int = 15, *, min_inputs: int = 1, save: str | Path | None = None):
    """Horizontal bars of the ``n`` strongest aggregated pairs (by mean |φ_{j→i}|), signed mean with 95% bars."""
    rows = rs.aggregate("pair").top(n, min_inputs=min_inputs)[::-1]
    fig = new_figure(6.4, 0.3 * max(len(rows), 3) + 1.0)
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    m = np.array([r["mean"] for r in rows])
    se = np.array([1.96 * r["stderr"] if math.isfinite(r["stderr"]) else 0.0 for r in rows])
    ax.barh(y, m, xerr=se, color=[POS_COLOR if v >= 0 else NEG_COLOR for v in m], capsize=2, error_kw={"lw": 0.8})
    ax.set_yticks(y, [f"{short(r['source'])} → {short(r['target'])}  (n={r['n_inputs']})" for r in rows], fontsize=8)
    ax.axvline(0, color="black", lw=0.6)
    ax.set_xlabel(r"mean $\varphi_{j\to i}$ across inputs (source j → target i)")
    ax.set_title(f"strongest word pairs over {len(rs.distinct())} inputs", fontsize=9)
    return finish(fig, save)


def set_figures(rs: ResultSet) -> dict[str, Any]:
    """The set's default pictures (relative positions when players have an order of one kind, top pairs)."""
    figs = {"top_pairs": top_pairs_plot(rs)}
    kinds = {k for r in rs.distinct() for k in (r.player_kinds or ["feature"])}
    if kinds & {"word", "token", "word_a", "word_b", "feature"}:
        figs = {"positions": position_plot(rs), **figs}
    return figs


def _table(rows: list[dict], cols: list[tuple[str, str]]) -> str:
    head = "".join(f"<th>{_esc(t)}</th>" for _, t in cols)
    body = []
    for r in rows:
        cells = []
        for key, _ in cols:
            v = r[key]
            if isinstance(v, float):
                v = "∞" if math.isinf(v) else f"{v:+.4g}" if key in ("mean", "value") else f"{v:.4g}"
            cells.append(f"<td>{_esc(str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _input_title(desc: Any, k: int) -> str:
    if isinstance(desc, dict):
        for key in ("prompt", "text_a", "caption"):
            if isinstance(desc.get(key), str):
                extra = desc.get("text_b") if key == "text_a" else None
                return desc[key] + (f" ‖ {extra}" if isinstance(extra, str) else "")
    return f"input {k}"


def render_set_report(rs: ResultSet, figures: dict[str, bytes], pages: dict[str, str], *, title: str | None = None) -> str:
    """The set's index page: aggregate pictures (PNG bytes), strongest pairs and words, one link per input."""
    from .report import _asset, _png_data_uri  # the single report's stylesheet and image encoding

    title = title or f"metagame · set of {len(rs)} inputs"
    pics = "".join(
        f'<figure><img alt="{_esc(name)}" src="{_png_data_uri(png)}"><figcaption>{_esc(SET_CAPTIONS.get(name, name))}'
        f"</figcaption></figure>" for name, png in figures.items())
    pairs = _table(rs.aggregate("pair").top(20), [("source", "source j"), ("target", "target i"), ("mean", "mean φ_{j→i}"),
                                                   ("stderr", "stderr"), ("mean_abs", "mean |φ|"), ("n_inputs", "inputs")])
    words = _table(rs.aggregate("word", order=1).top(20), [("word", "word"), ("kind", "kind"), ("mean", "mean φ_i"),
                                                           ("stderr", "stderr"), ("n_inputs", "inputs")])
    entries = _table(rs.top_entries(10), [("input_id", "input"), ("source", "source j"), ("target", "target i"),
                                          ("value", "φ_{j→i}")])
    items = []
    for k, (rid, res, desc) in enumerate(zip(rs.ids, rs.results, rs.inputs)):
        dup = (rs.metadata.get("duplicate_of") or {}).get(rid)
        note = f" (same input as {dup})" if dup is not None else ""
        items.append(f'<li><a href="{_esc(pages[rid])}">{_esc(rid)}</a>: {_esc(_input_title(desc, k))}'
                     f" — {res.n_players} players, f(x) = {res.context.get('value_full', float('nan')):.4g}{_esc(note)}</li>")
    meta = rs.metadata
    sub = (f"{len(rs)} inputs ({meta.get('distinct_inputs', len(rs))} distinct) · method {'/'.join(sorted({r.method for r in rs}))}"
           + (f" · {meta['wall_seconds']:.1f} s" if isinstance(meta.get("wall_seconds"), (int, float)) else ""))
    return "".join([
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'\">",
        f"<title>{_esc(title)}</title><style>{_asset('report.css')}</style></head><body>",
        f'<header><h1>{_esc(title)}</h1><div class="sub">{_esc(sub)}</div></header><main>',
        f"<section><h2>Across the set</h2>{pics}</section>",
        f"<section><h2>Strongest pairs (aggregated)</h2>{pairs}</section>",
        f"<section><h2>Strongest words, first order (aggregated)</h2>{words}</section>",
        f"<section><h2>Strongest single entries</h2>{entries}</section>",
        f"<section><h2>Inputs</h2><ol start=\"0\">{''.join(items)}</ol></section>",
        f"</main><footer>metagame {_esc(__version__)} · mean and stderr across inputs (sd/√n; ∞ for one input) · "
        "row = target i, column = source j, cell = φ<sub>j→i</sub></footer></body></html>\n",
    ])


def write_set_outputs(rs: ResultSet, out_dir: str | Path) -> dict[str, Path]:
    """Write the set into ``out_dir``: ``set.json`` + ``inputs/<id>.json`` (:meth:`ResultSet.save`), one report page
    per input (``inputs/<id>.html``), the aggregate PNGs and ``report.html`` (the index). Returns the paths."""
    from .report import write_report
    from .style import HAVE_MPL

    out = Path(out_dir)
    written: dict[str, Path] = {"set": rs.save(out)}
    pages: dict[str, str] = {}
    for rid, res in zip(rs.ids, rs.results):
        page = f"inputs/{_file_id(rid)}.html"
        write_report(res, out / page, figures=None if HAVE_MPL else {})
        pages[rid] = page
    pngs: dict[str, bytes] = {}
    if HAVE_MPL:
        from .style import save_figure

        for name, fig in set_figures(rs).items():
            written[name] = save_figure(fig, out / f"{name}.png")
            pngs[name] = written[name].read_bytes()
            fig.clear()
    report = out / "report.html"
    report.write_text(render_set_report(rs, pngs, pages), encoding="utf-8")
    written["report"] = report
    return written


__all__ = ["position_plot", "render_set_report", "set_figures", "top_pairs_plot", "write_set_outputs"]
