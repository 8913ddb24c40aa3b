"""A self-contained HTML report of one result: one file, no network, all user text escaped.

The page shows the input with its players highlighted (text inline, patches as a grid over the image, other
players as chips); hovering or clicking a player colours the others by its row (who moves it, φ_{j→i}) or its
column (whom it moves, φ_{i→k}). Then the pictures (PNG as data URIs), the numbers as a sortable table and the
run's metadata. Data reach the script as JSON in ``<script type="application/json">`` with ``<``, ``>``, ``&``
escaped; the script builds DOM text with ``textContent`` only, and a Content-Security-Policy with a per-report
nonce keeps any other script from running and any request from leaving the page.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import json
import math
import secrets
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .._version import __version__
from ..results.codec import json_for_script
from ..results.result import MetaAttribution
from .style import has_cross_kinds, kind_noun
from .terminal import cross_kind_pairs, header_line

TEXT_KINDS = ("token", "word", "word_a", "word_b")
TEXT_GROUP_TITLES = {"word_a": "text A", "word_b": "text B", "token": "tokens", "word": "words"}
#: pictures that get the full width of the page
WIDE_FIGURES = ("comparison", "image", "concept_maps", "meta_maps", "cross_blocks")
#: at most this many pairs go into the numbers table (strongest first)
MAX_TABLE_ROWS = 2000
FIGURE_CAPTIONS = {
    "heatmap": "Directed heatmap: cell (i, j) = φ_{j→i}, how source j moves the attribution of target i "
    "(rows = targets, columns = sources; boxed diagonal = each player's own effect).",
    "arcs": "Strongest directed pairs: arrow from source to target, width ∝ |φ_{j→i}|, red = pushes up, blue = down.",
    "waterfall": "How one player's attribution φ_i splits into its own effect and the pushes of the others.",
    "image": "Patch attributions over the image.",
    "comparison": "First-order attribution, the meta matrix and its symmetric counterpart side by side.",
    "tensor": "Third order for one target i: cell (j, k) = T[i, j, k], how k moves the push of j on i.",
    "cross_blocks": "Cross blocks by player kind: panel 'a → b' holds φ_{j→i} for sources j of kind a and targets i of "
    "kind b (each panel on its own scale).",
    "concept_maps": "The generated image and each concept's map (ConceptAttention, all concepts present).",
    "meta_maps": "Meta-maps: row = target concept i, column = source j; each cell shows where j raises (red) or "
    "lowers (blue) i's map; a row sums to i's full map.",
}

_esc = html.escape


@functools.lru_cache(maxsize=None)
def _asset(name: str) -> str:
    """A file of the report's package data (``metagame/viz/assets``): the page's CSS and JavaScript."""
    return resources.files("metagame.viz").joinpath("assets", name).read_text(encoding="utf-8")


def _num(v: float, digits: int = 6) -> float | None:
    v = float(v)
    return float(f"{v:.{digits}g}") if math.isfinite(v) else None


def _fmt(v: float | None) -> str:
    if v is None or not math.isfinite(float(v)):
        return "nan"
    return f"{float(v):.4g}"


def _png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _figure_png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


def _image_png(img: np.ndarray) -> bytes:
    arr = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    try:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG")
        return buf.getvalue()
    except ImportError:  # pragma: no cover - pillow ships with matplotlib installs
        from matplotlib.image import imsave

        buf = io.BytesIO()
        imsave(buf, arr, format="png")
        return buf.getvalue()


def _kinds(result: MetaAttribution) -> list[str]:
    return list(result.player_kinds) if result.player_kinds is not None else ["feature"] * result.n_players


# ------------------------------------------------------------------------------------------------- sections
def _player_span(k: int, label: str, kind: str, cls: str) -> str:
    return (f'<span class="player {cls}" data-i="{k}" tabindex="0" title="{_esc(label)} ({_esc(kind)})">'
            f"{_esc(label)}</span>")


def _input_section(result: MetaAttribution) -> str:
    kinds = _kinds(result)
    ctx = result.context
    parts: list[str] = []
    # the raw texts as given
    ctx_rows = []
    for key, name in (("prompt", "prompt"), ("text", "text"), ("text_a", "text A"), ("text_b", "text B"),
                      ("answer", "answer")):
        if isinstance(ctx.get(key), str):
            ctx_rows.append(f'<div class="ctx"><span class="ctx-k">{_esc(name)}</span>'
                            f'<span class="ctx-v">{_esc(ctx[key])}</span></div>')
    if ctx_rows:
        parts.append('<div class="ctx-block">' + "".join(ctx_rows) + "</div>")
    parts.append(
        '<div class="controls"><span class="hint">Hover or click a player.</span> Colour the others by '
        '<label><input type="radio" name="mg-dir" value="row" checked> what moves it (its row, φ<sub>j→i</sub>)</label> '
        '<label><input type="radio" name="mg-dir" value="col"> what it moves (its column, φ<sub>i→k</sub>)</label>'
        '<button type="button" id="mg-clear">clear</button></div>'
    )
    groups: list[str] = []
    # text players, in order, one block per text kind run
    d = result.n_players
    text_idx = [i for i in range(d) if kinds[i] in TEXT_KINDS]
    if text_idx:
        runs: list[tuple[str, list[int]]] = []
        for i in text_idx:
            if runs and runs[-1][0] == kinds[i]:
                runs[-1][1].append(i)
            else:
                runs.append((kinds[i], [i]))
        for kind, idx in runs:
            spans = " ".join(_player_span(i, result.players[i], kind, "tok") for i in idx)
            groups.append(f'<div class="group"><div class="group-t">{_esc(TEXT_GROUP_TITLES.get(kind, kind))}</div>'
                          f'<div class="seq">{spans}</div></div>')
    # patches: a grid over the image
    patch_idx = [i for i in range(d) if kinds[i] == "patch"]
    if patch_idx:
        from .images import input_image, patch_layout

        idx, rows, cols, cells = patch_layout(result)
        img = input_image(result)
        aspect = f"{cols} / {rows}"
        img_html = ""
        if img is not None:
            aspect = f"{img.shape[1]} / {img.shape[0]}"
            img_html = f'<img class="patch-img" alt="input image" src="{_png_data_uri(_image_png(img))}">'
        cells_html = "".join(
            f'<div class="player cell" data-i="{i}" tabindex="0" title="{_esc(result.players[i])}" '
            f'style="grid-row:{r + 1};grid-column:{c + 1}"></div>'
            for i, (r, c) in zip(idx, cells)
        )
        groups.append(
            f'<div class="group"><div class="group-t">image patches ({rows} × {cols})</div>'
            f'<div class="patch-wrap" style="aspect-ratio:{aspect}">{img_html}'
            f'<div class="patch-grid" style="grid-template-columns:repeat({cols},1fr);'
            f'grid-template-rows:repeat({rows},1fr)">{cells_html}</div></div></div>'
        )
    # everything else: chips, grouped by kind
    other: dict[str, list[int]] = {}
    for i in range(d):
        if kinds[i] not in TEXT_KINDS and kinds[i] != "patch":
            other.setdefault(kinds[i], []).append(i)
    for kind, idx in other.items():
        chips = "".join(_player_span(i, result.players[i], kind, "chip") for i in idx)
        groups.append(f'<div class="group"><div class="group-t">{_esc(kind)} players</div>'
                      f'<div class="chips">{chips}</div></div>')
    parts.append('<div class="input-row"><div class="players">' + "".join(groups) + "</div>"
                 '<aside id="mg-info" class="info" aria-live="polite"></aside></div>')
    parts.append('<div class="legend"><span>pushes down</span><span class="bar"></span><span>pushes up</span>'
                 '<span class="legend-note" id="mg-mode"></span></div>')
    return '<section id="input"><h2>Input and players</h2>' + "".join(parts) + "</section>"


def _pictures_section(figures: Mapping[str, bytes]) -> str:
    if not figures:
        return ('<section id="pictures"><h2>Pictures</h2><p class="muted">No pictures: install matplotlib '
                "(<code>pip install metagame[viz]</code>) to draw them.</p></section>")
    items = []
    for name, png in figures.items():
        cap = FIGURE_CAPTIONS.get(name, name)
        wide = " wide" if name in WIDE_FIGURES else ""
        items.append(f'<figure class="fig{wide}"><img alt="{_esc(name)}" src="{_png_data_uri(png)}">'
                     f"<figcaption><b>{_esc(name)}</b> · {_esc(cap)}</figcaption></figure>")
    return '<section id="pictures"><h2>Pictures</h2><div class="figs">' + "".join(items) + "</div></section>"


def _numbers_section(result: MetaAttribution) -> str:
    d = result.n_players
    m = result.matrix
    absm = np.where(np.isfinite(m), np.abs(m), -1.0)
    order = np.argsort(-absm, axis=None, kind="stable")[:MAX_TABLE_ROWS]
    rows = []
    for flat in order:
        i, j = divmod(int(flat), d)
        v = m[i, j]
        se = None if result.stderr is None else result.stderr[i, j]
        vs = "" if not math.isfinite(v) else repr(float(v))
        ses = "" if se is None or not math.isfinite(se) else repr(float(se))
        rows.append(
            f"<tr><td>{_esc(result.players[j])}</td><td>{_esc(result.players[i])}</td>"
            f'<td class="n" data-v="{vs}">{_fmt(v)}</td>'
            f'<td class="n" data-v="{ses}">{"" if se is None else _fmt(se)}</td>'
            f'<td data-v="{"0" if i == j else "1"}">{"own effect" if i == j else "pair"}</td></tr>'
        )
    note = (f"strongest {len(order)} of {d * d} entries" if d * d > len(order) else f"all {d * d} entries")
    return (
        '<section id="numbers"><h2>Numbers</h2>'
        f'<p class="muted">φ<sub>j→i</sub> = how source j moves the attribution of target i; {note}. '
        "Click a column header to sort.</p>"
        '<div class="table-wrap"><table id="mg-table" class="sortable"><thead><tr>'
        '<th data-type="text">source j</th><th data-type="text">target i</th>'
        '<th data-type="num">φ<sub>j→i</sub></th><th data-type="num">± stderr</th><th data-type="num">kind</th>'
        "</tr></thead><tbody>" + "".join(rows) + "</tbody></table></div></section>"
    )


def cross_sentence(result: MetaAttribution) -> str:
    """One sentence on what the cross blocks of a result with players of several aspects mean."""
    from ..models.joint import kind_blocks

    kinds = [k for k, _ in kind_blocks(_kinds(result))]
    a, b = kinds[0], kinds[1]
    return (
        f"Players of different kinds share one game, so the cross blocks measure how the parts of the model interact: "
        f"the {b} → {a} block says how much each {b} changes the attribution of each {a} (and {a} → {b} the reverse), "
        f"e.g. M[{a} i, {b} j] > 0 means {a} i gets more credit when {b} j is present; the own-kind blocks are the "
        f"usual {kind_noun(a)}-only and {kind_noun(b)}-only meta-attributions."
    )


def _cross_section(result: MetaAttribution, n: int = 12) -> str:
    """Players of several aspects (words and heads, features and training points): the meaning of the cross blocks in
    one sentence and the strongest cross-kind pairs."""
    kinds = _kinds(result)
    if not has_cross_kinds(kinds) or result.n_players < 2:
        return ""
    rows = "".join(
        f"<tr><td>{_esc(result.players[j])} <span class=\"muted\">({_esc(kinds[j])})</span></td>"
        f"<td>{_esc(result.players[i])} <span class=\"muted\">({_esc(kinds[i])})</span></td>"
        f'<td class="n" data-v="{v!r}">{_fmt(v)}</td></tr>'
        for i, j, v in cross_kind_pairs(result, n)
    )
    return (
        '<section id="cross"><h2>Across kinds</h2>'
        f"<p>{_esc(cross_sentence(result))}</p>"
        '<div class="table-wrap"><table class="sortable"><thead><tr><th data-type="text">source j</th>'
        '<th data-type="text">target i</th><th data-type="num">φ<sub>j→i</sub></th></tr></thead><tbody>'
        + rows + "</tbody></table></div></section>"
    )


def _triples_section(result: MetaAttribution, n: int = 50) -> str:
    """Third order (order=3 results): the strongest "k moves j → i" effects T[i, j, k]."""
    triples = result.top_triples(n)
    if not triples:
        return ""
    se = result.tensor_stderr
    rows = "".join(
        f"<tr><td>{_esc(result.players[k])}</td><td>{_esc(result.players[j])}</td><td>{_esc(result.players[i])}</td>"
        f'<td class="n" data-v="{v!r}">{_fmt(v)}</td>'
        f'<td class="n">{"" if se is None else _fmt(se[i, j, k])}</td></tr>'
        for i, j, k, v in triples
    )
    return (
        '<section id="triples"><h2>Third order</h2>'
        f'<p class="muted">T[i, j, k] = how player k moves the push φ<sub>j→i</sub> of j on i (Σ<sub>k</sub> T[i, j, k] '
        f"= φ<sub>j→i</sub>); the strongest {len(triples)} with i, j, k distinct.</p>"
        '<div class="table-wrap"><table class="sortable"><thead><tr><th data-type="text">mover k</th>'
        '<th data-type="text">source j</th><th data-type="text">target i</th><th data-type="num">T[i, j, k]</th>'
        '<th data-type="num">± stderr</th></tr></thead><tbody>' + rows + "</tbody></table></div></section>"
    )


def _meta_rows(result: MetaAttribution) -> list[tuple[str, str]]:
    md = result.metadata
    params = md.get("parameters") or {}
    model = md.get("model")
    explained = md.get("explained") or {}
    rows: list[tuple[str, str]] = [
        (label, str(explained[key])) for key, label in (("f", "f (what was explained)"), ("masking", "masking"),
                                                        ("empty", "empty coalition"), ("estimator", "computed"))
        if explained.get(key)
    ]
    if isinstance(model, dict):
        for k, v in model.items():
            rows.append((f"model.{k}", v if isinstance(v, str) else json.dumps(v, default=str)))
    elif model is not None:
        rows.append(("model", str(model)))
    elif result.context.get("model") is not None:
        rows.append(("model", str(result.context["model"])))
    rows += [("method", result.method), ("variant", result.variant), ("value", result.value)]
    if params.get("method_params"):
        rows.append(("method parameters", json.dumps(params["method_params"], default=str)))
    rows.append(("budget", "exhaustive (exact)" if params.get("budget") is None else str(params.get("budget"))))
    rows.append(("seed", str(params.get("seed"))))
    if result.exact:
        rows.append(("exact / stderr", "exact enumeration; no standard errors"))
    elif result.stderr is not None and np.isfinite(result.stderr).any():
        rows.append(("exact / stderr", f"estimated; max stderr {np.nanmax(result.stderr):.3g}, "
                     f"mean {np.nanmean(result.stderr):.3g}"))
    else:
        rows.append(("exact / stderr", "estimated; no standard errors"))
    for k, v in params.items():
        if k not in ("method", "method_params", "variant", "value", "budget", "seed"):
            rows.append((k, v if isinstance(v, str) else json.dumps(v, default=str)))
    rows.append(("attribution calls", str(result.n_evaluations)))
    if result.n_model_rows is not None:
        rows.append(("model rows", str(result.n_model_rows)))
    b = result.balance()
    if isinstance(b["value_full"], (int, float)):
        rows.append(("f(x)", _fmt(b["value_full"])))
    if isinstance(b["value_empty"], (int, float)):
        rows.append(("f(∅) (every player absent)", _fmt(b["value_empty"])))
    if isinstance(b["value_reference"], (int, float)):
        rows.append((f"f(r), r = {b['reference']}", _fmt(b["value_reference"])))
    rows.append(("Σ_i φ_i (first order)", result.value_line()))
    if result.n_players:
        gap = np.nanmax(np.abs(result.row_sums() - result.first_order)) if np.isfinite(result.matrix).any() else math.nan
        rows.append(("max |Σ_j M[i, j] − φ_i|", _fmt(gap)))
    for k in ("created", "saved"):
        if md.get(k):
            rows.append((k, str(md[k])))
    rows.append(("library", f"metagame {md.get('version', __version__)}"))
    return rows


def _run_section(result: MetaAttribution) -> str:
    body = "".join(f"<tr><th>{_esc(str(k))}</th><td>{_esc(str(v))}</td></tr>" for k, v in _meta_rows(result))
    return f'<section id="run"><h2>Run</h2><table class="meta">{body}</table></section>'


def _data_json(result: MetaAttribution) -> str:
    data = {
        "players": list(result.players),
        "kinds": _kinds(result),
        "first_order": [_num(v) for v in result.first_order],
        "matrix": [[_num(v) for v in row] for row in result.matrix],
        "stderr": None if result.stderr is None else [[_num(v, 3) for v in row] for row in result.stderr],
    }
    return json_for_script(data)


# ------------------------------------------------------------------------------------------------- page
def render_report(
    result: MetaAttribution,
    figures: Mapping[str, Any] | None = None,
    *,
    title: str | None = None,
) -> str:
    """The report as one HTML string.

    Args:
        result: the meta-attributions to show.
        figures: pictures by name, each PNG bytes, a path to a PNG, or a matplotlib Figure; None draws the
            default set (when matplotlib is installed).
        title: page title (escaped); defaults to the method and the prompt.
    """
    pngs: dict[str, bytes] = {}
    if figures is None:
        try:
            from .plots import default_figures
            from .style import HAVE_MPL as _HAVE_MPL

            figures = default_figures(result) if _HAVE_MPL else {}
        except ImportError:  # pragma: no cover
            figures = {}
    for name, fig in figures.items():
        if isinstance(fig, (bytes, bytearray)):
            pngs[name] = bytes(fig)
        elif isinstance(fig, (str, Path)):
            pngs[name] = Path(fig).read_bytes()
        else:
            pngs[name] = _figure_png(fig)
    text = result.context.get("prompt") or result.context.get("text") or result.context.get("text_a") or ""
    if title is None:
        title = f"metagame · {result.method}" + (f" · {text[:60]}" if isinstance(text, str) and text else "")
    nonce = secrets.token_urlsafe(18)
    csp = (f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; "
           "base-uri 'none'; form-action 'none'")
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>{_esc(str(title))}</title><style>{_asset('report.css')}</style></head><body>",
        f'<header><h1>{_esc(str(title))}</h1><div class="sub">{_esc(header_line(result))}</div></header><main>',
        _input_section(result),
        _cross_section(result),
        _pictures_section(pngs),
        _numbers_section(result),
        _triples_section(result),
        _run_section(result),
        "</main>",
        f'<footer>metagame {_esc(__version__)} · matrix convention: row = target i, column = source j, '
        "cell = φ<sub>j→i</sub></footer>",
        f'<script type="application/json" id="mg-data">{_data_json(result)}</script>',
        f'<script nonce="{nonce}">{_asset("report.js")}</script>',
        "</body></html>\n",
    ])


def write_report(
    result: MetaAttribution,
    path: str | Path,
    figures: Mapping[str, Any] | None = None,
    *,
    title: str | None = None,
) -> Path:
    """Write :func:`render_report` to ``path`` (UTF-8). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(result, figures, title=title), encoding="utf-8")
    return path

