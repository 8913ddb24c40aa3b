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
import html
import io
import json
import math
import secrets
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .._version import __version__
from ..results.result import MetaAttribution
from .terminal import header_line

TEXT_KINDS = ("token", "word", "word_a", "word_b")
TEXT_GROUP_TITLES = {"word_a": "text A", "word_b": "text B", "token": "tokens", "word": "words"}
#: pictures that get the full width of the page
WIDE_FIGURES = ("comparison", "image", "concept_maps", "meta_maps")
#: at most this many pairs go into the numbers table (strongest first)
MAX_TABLE_ROWS = 2000
FIGURE_CAPTIONS = {
    "heatmap": "Directed heatmap: cell (i, j) = φ_{j→i}, how source j moves the attribution of target i "
    "(rows = targets, columns = sources; boxed diagonal = each player's own effect).",
    "arcs": "Strongest directed pairs: arrow from source to target, width ∝ |φ_{j→i}|, red = pushes up, blue = down.",
    "waterfall": "How one player's attribution φ_i splits into its own effect and the pushes of the others.",
    "image": "Patch attributions over the image.",
    "comparison": "First-order attribution, the meta matrix and its symmetric counterpart side by side.",
    "concept_maps": "The generated image and each concept's map (ConceptAttention, all concepts present).",
    "meta_maps": "Meta-maps: row = target concept i, column = source j; each cell shows where j raises (red) or "
    "lowers (blue) i's map; a row sums to i's full map.",
}

_esc = html.escape


def _num(v: float, digits: int = 6) -> float | None:
    v = float(v)
    return float(f"{v:.{digits}g}") if math.isfinite(v) else None


def _fmt(v: float | None) -> str:
    if v is None or not math.isfinite(float(v)):
        return "nan"
    return f"{float(v):.4g}"


def json_for_script(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: ``<``, ``>``, ``&`` and line separators escaped."""
    s = json.dumps(data, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    return (s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


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
        from .plots import input_image, patch_layout

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


def _meta_rows(result: MetaAttribution) -> list[tuple[str, str]]:
    md = result.metadata
    params = md.get("parameters") or {}
    model = md.get("model")
    rows: list[tuple[str, str]] = []
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
    for key in ("value_full", "value_empty"):
        v = result.context.get(key)
        if isinstance(v, (int, float)):
            rows.append(("f(x)" if key == "value_full" else "f(baseline)", _fmt(v)))
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
            from .plots import _HAVE_MPL, default_figures

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
        f"<title>{_esc(str(title))}</title><style>{_CSS}</style></head><body>",
        f'<header><h1>{_esc(str(title))}</h1><div class="sub">{_esc(header_line(result))}</div></header><main>',
        _input_section(result),
        _pictures_section(pngs),
        _numbers_section(result),
        _run_section(result),
        "</main>",
        f'<footer>metagame {_esc(__version__)} · matrix convention: row = target i, column = source j, '
        "cell = φ<sub>j→i</sub></footer>",
        f'<script type="application/json" id="mg-data">{_data_json(result)}</script>',
        f'<script nonce="{nonce}">{_JS}</script>',
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


_CSS = """
:root{--fg:#1d232b;--muted:#6b7480;--line:#e2e6ea;--bg:#f6f7f9;--card:#fff;--pos:214,48,39;--neg:38,104,179}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);background:var(--bg)}
header{padding:18px 28px 12px;background:#1f2a37;color:#fff}
header h1{margin:0 0 4px;font-size:19px;font-weight:600;word-break:break-word}
header .sub{color:#c5ced8;font-size:12.5px}
main{padding:14px 28px 28px;max-width:1280px}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 18px;margin:14px 0}
h2{font-size:15px;margin:0 0 10px;font-weight:600}
.muted{color:var(--muted);font-size:12.5px}
.ctx-block{margin-bottom:10px}
.ctx{display:flex;gap:10px;margin:3px 0}
.ctx-k{min-width:64px;color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em;padding-top:2px}
.ctx-v{white-space:pre-wrap;word-break:break-word;font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:13px}
.controls{font-size:12.5px;color:var(--muted);margin:6px 0 10px;display:flex;flex-wrap:wrap;gap:12px;align-items:center}
.controls .hint{color:var(--fg);font-weight:600}
.controls button{font:inherit;border:1px solid var(--line);background:#fff;border-radius:6px;padding:1px 9px;cursor:pointer}
.input-row{display:flex;gap:18px;align-items:flex-start;flex-wrap:wrap}
.players{flex:1 1 520px;min-width:0}
.group{margin:0 0 12px}
.group-t{font-size:11.5px;color:var(--muted);text-transform:uppercase;letter-spacing:.05em;margin-bottom:4px}
.seq{line-height:2.3;font-size:16px}
.player{cursor:pointer;transition:background-color .12s,box-shadow .12s;outline:none}
.tok{padding:3px 5px;border-radius:5px;border:1px solid var(--line);white-space:pre}
.chips{display:flex;flex-wrap:wrap;gap:6px}
.chip{padding:3px 10px;border-radius:14px;border:1px solid #cfd5db;font-size:13px;white-space:pre}
.player.sel{box-shadow:0 0 0 2.5px #111;border-color:#111}
.player.hl{font-weight:600}
.patch-wrap{position:relative;width:min(440px,100%);border-radius:6px;overflow:hidden;background:#ddd}
.patch-img{position:absolute;inset:0;width:100%;height:100%;object-fit:fill;display:block}
.patch-grid{position:absolute;inset:0;display:grid}
.cell{border:1px solid rgba(255,255,255,.35)}
.cell.sel{box-shadow:inset 0 0 0 3px #111;border-color:#111}
.info{flex:0 0 300px;border:1px solid var(--line);border-radius:8px;padding:10px 12px;background:#fbfcfd;font-size:12.5px;min-height:120px}
.info h3{margin:0 0 4px;font-size:14px;word-break:break-word}
.info .kv{color:var(--muted);margin-bottom:6px}
.info ol{margin:2px 0 8px 0;padding-left:20px}
.info li{margin:1px 0}
.info li>div{display:flex;justify-content:space-between;gap:10px}
.info .lbl{font-family:ui-monospace,"DejaVu Sans Mono",monospace;white-space:pre;overflow:hidden;text-overflow:ellipsis;min-width:0}
.info .v{font-variant-numeric:tabular-nums;flex:none}
.info .p{color:rgb(var(--pos))}.info .m{color:rgb(var(--neg))}
.legend{display:flex;gap:8px;align-items:center;font-size:11.5px;color:var(--muted);margin-top:6px}
.legend .bar{width:160px;height:10px;border-radius:5px;background:linear-gradient(90deg,rgb(var(--neg)),#fff,rgb(var(--pos)));border:1px solid var(--line)}
.legend-note{margin-left:14px;color:var(--fg)}
.figs{display:flex;flex-wrap:wrap;gap:16px}
.fig{margin:0;flex:1 1 440px;max-width:100%}
.fig.wide{flex-basis:100%}
.fig img{max-width:100%;height:auto;border:1px solid var(--line);border-radius:6px;background:#fff}
.fig figcaption{font-size:12px;color:var(--muted);margin-top:4px}
.table-wrap{max-height:480px;overflow:auto;border:1px solid var(--line);border-radius:6px}
table{border-collapse:collapse;font-size:13px;width:100%}
th,td{padding:4px 10px;border-bottom:1px solid var(--line);text-align:left;white-space:pre-wrap;word-break:break-word}
#mg-table thead th{position:sticky;top:0;background:#eef1f4;cursor:pointer;user-select:none}
#mg-table thead th[aria-sort=ascending]::after{content:" ▲"}
#mg-table thead th[aria-sort=descending]::after{content:" ▼"}
td.n{text-align:right;font-variant-numeric:tabular-nums;font-family:ui-monospace,"DejaVu Sans Mono",monospace}
table.meta{width:auto}
table.meta th{color:var(--muted);font-weight:500;padding-right:24px}
footer{color:var(--muted);font-size:12px;padding:0 28px 24px}
"""

_JS = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("mg-data").textContent);
  var d = data.players.length;
  var els = Array.prototype.slice.call(document.querySelectorAll(".player"));
  var byIndex = {};
  els.forEach(function (el) { var k = +el.getAttribute("data-i"); (byIndex[k] = byIndex[k] || []).push(el); });
  var pinned = null, hover = null;
  var info = document.getElementById("mg-info");
  var modeNote = document.getElementById("mg-mode");

  function dir() { var r = document.querySelector('input[name="mg-dir"]:checked'); return r ? r.value : "row"; }
  function colour(v, vmax, isCell) {
    if (v === null || !isFinite(v) || vmax <= 0) return isCell ? "rgba(0,0,0,0)" : "";
    var a = Math.min(1, Math.abs(v) / vmax) * (isCell ? 0.78 : 0.85);
    return v >= 0 ? "rgba(214,48,39," + a.toFixed(3) + ")" : "rgba(38,104,179," + a.toFixed(3) + ")";
  }
  function fmt(v) { return (v === null || !isFinite(v)) ? "nan" : (v >= 0 ? "+" : "") + Number(v).toPrecision(3); }
  function vector(k) {
    if (k === null) return data.first_order.slice();
    var out = [];
    for (var j = 0; j < d; j++) out.push(dir() === "row" ? data.matrix[k][j] : data.matrix[j][k]);
    return out;
  }
  function paint() {
    var k = hover !== null ? hover : pinned;
    var vec = vector(k);
    var vmax = 0;
    for (var j = 0; j < d; j++) if (j !== k && vec[j] !== null && isFinite(vec[j])) vmax = Math.max(vmax, Math.abs(vec[j]));
    els.forEach(function (el) {
      var j = +el.getAttribute("data-i");
      var isCell = el.classList.contains("cell");
      var v = (j === k) ? null : vec[j];
      el.style.backgroundColor = colour(v, vmax, isCell);
      el.classList.toggle("sel", j === k);
      el.classList.toggle("hl", j !== k && v !== null && vmax > 0 && Math.abs(v) >= 0.1 * vmax);
    });
    modeNote.textContent = k === null ? "colour = first-order attribution φ_i" :
      (dir() === "row" ? "colour = how each player j moves the selected player i (its row, j → i)"
                       : "colour = how the selected player i moves each player k (its column, i → k)");
    renderInfo(k);
  }
  function top(k, useRow) {
    var items = [];
    for (var j = 0; j < d; j++) {
      if (j === k) continue;
      var v = useRow ? data.matrix[k][j] : data.matrix[j][k];
      if (v !== null && isFinite(v) && v !== 0) items.push([j, v]);
    }
    items.sort(function (a, b) { return Math.abs(b[1]) - Math.abs(a[1]); });
    return items.slice(0, 6);
  }
  function el(tag, cls, text) { var e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; }
  function list(title, items, arrowFirst) {
    var frag = document.createDocumentFragment();
    frag.appendChild(el("div", "kv", title));
    var ol = el("ol");
    if (!items.length) ol.appendChild(el("li", "", "none"));
    items.forEach(function (it) {
      var li = el("li"), row = el("div");
      var lbl = el("span", "lbl", data.players[it[0]]);
      lbl.title = data.players[it[0]];
      row.appendChild(lbl);
      row.appendChild(el("span", "v " + (it[1] >= 0 ? "p" : "m"), fmt(it[1])));
      li.appendChild(row);
      ol.appendChild(li);
    });
    frag.appendChild(ol);
    return frag;
  }
  function renderInfo(k) {
    while (info.firstChild) info.removeChild(info.firstChild);
    if (k === null) {
      info.appendChild(el("h3", "", "No player selected"));
      info.appendChild(el("div", "kv", "Players are coloured by their first-order attribution φ_i. Hover or click one to see who moves it and whom it moves."));
      var items = data.first_order.map(function (v, j) { return [j, v]; }).filter(function (x) { return x[1] !== null; });
      items.sort(function (a, b) { return Math.abs(b[1]) - Math.abs(a[1]); });
      info.appendChild(list("largest |φ_i|", items.slice(0, 6)));
      return;
    }
    info.appendChild(el("h3", "", data.players[k]));
    var se = data.stderr ? " (± " + fmt(data.stderr[k][k]) + ")" : "";
    info.appendChild(el("div", "kv", data.kinds[k] + " · φ_i = " + fmt(data.first_order[k]) + " · own effect M[i,i] = " + fmt(data.matrix[k][k]) + se));
    info.appendChild(list("moved most by (its row, j → i)", top(k, true)));
    info.appendChild(list("moves most (its column, i → k)", top(k, false)));
  }
  els.forEach(function (e) {
    var k = +e.getAttribute("data-i");
    e.addEventListener("mouseenter", function () { hover = k; paint(); });
    e.addEventListener("mouseleave", function () { hover = null; paint(); });
    e.addEventListener("focus", function () { hover = k; paint(); });
    e.addEventListener("blur", function () { hover = null; paint(); });
    e.addEventListener("click", function () { pinned = (pinned === k) ? null : k; hover = null; paint(); });
  });
  Array.prototype.forEach.call(document.querySelectorAll('input[name="mg-dir"]'), function (r) { r.addEventListener("change", paint); });
  document.getElementById("mg-clear").addEventListener("click", function () { pinned = null; hover = null; paint(); });

  // sortable table
  var table = document.getElementById("mg-table");
  if (table) {
    var ths = table.querySelectorAll("thead th");
    Array.prototype.forEach.call(ths, function (th, col) {
      th.addEventListener("click", function () {
        var asc = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(ths, function (t) { t.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var num = th.getAttribute("data-type") === "num";
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[col], y = b.cells[col], c;
          if (num) {
            var xv = parseFloat(x.getAttribute("data-v")), yv = parseFloat(y.getAttribute("data-v"));
            if (isNaN(xv)) xv = -Infinity; if (isNaN(yv)) yv = -Infinity;
            c = xv - yv;
          } else { c = x.textContent.localeCompare(y.textContent); }
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  }
  paint();
})();
"""
