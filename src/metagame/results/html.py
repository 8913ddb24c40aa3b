"""The notebook view of a result (``MetaAttribution._repr_html_``): what f is, the run, then the matrix for small d
or a table of the strongest pairs at any d. All user text is escaped."""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .result import MetaAttribution

#: the matrix is drawn as a table up to this many players; beyond, only the strongest pairs are listed
MATRIX_MAX_PLAYERS = 12

_TEXT_KEYS = (("prompt", "prompt"), ("text_a", "text A"), ("text_b", "text B"), ("text", "text"),
              ("answer", "answer"), ("alternative", "alternative"), ("caption", "caption"), ("game", "game"))


def _number(v: Any) -> str | None:
    return f"{v:.4g}" if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def describe_f(result: MetaAttribution) -> list[tuple[str, str]]:
    """What the explained function f is, as (label, text) rows read from the result: the stored description of f
    (:attr:`MetaAttribution.f_description`), the model, the texts/prompt/answer/alternative, f(x) and f(∅)."""
    ctx = result.context
    rows: list[tuple[str, str]] = []
    if result.f_description:
        rows.append(("f", result.f_description))
    model = result.metadata.get("model")
    name = (model.get("name") or model.get("model") or model.get("adapter")) if isinstance(model, dict) else model
    name = ctx.get("model") or name
    if name:
        rows.append(("model", str(name)))
    for key, label in _TEXT_KEYS:
        value = ctx.get(key)
        if isinstance(value, str) and value:
            rows.append((label, value[:300] + ("…" if len(value) > 300 else "")))
    full, empty = _number(ctx.get("value_full")), _number(ctx.get("value_empty"))
    if full is not None:
        rows.append(("f(x)", full))
    if empty is not None:
        rows.append(("f(∅)", empty))
    return rows


def _run_line(result: MetaAttribution) -> str:
    params = result.metadata.get("parameters") or {}
    how = "exact" if result.exact else (
        f"estimated: {params.get('estimator') or 'estimator'}, budget {params.get('budget')}, seed {params.get('seed')}")
    route = f", route {params['route']}" if params.get("route") else ""
    return (f"Meta-{result.method} · {result.variant}/{result.value} · d = {result.n_players} · {how}{route} · "
            f"{result.n_evaluations} attribution calls")


def result_html(result: MetaAttribution, n_pairs: int = 10) -> str:
    """HTML for Jupyter: description of f, the run, the matrix (d ≤ 12) and the ``n_pairs`` strongest pairs."""
    esc = html.escape
    finite = result.matrix[np.isfinite(result.matrix)]
    vmax = float(np.max(np.abs(finite))) if finite.size else 0.0
    vmax = vmax or 1.0
    players = result.players

    def cell(v: float, title: str) -> str:
        if not math.isfinite(v):
            return f'<td title="{title}" style="color:#999">nan</td>'
        a = min(1.0, abs(v) / vmax) * 0.8
        color = f"rgba(214,48,39,{a:.2f})" if v > 0 else f"rgba(38,104,179,{a:.2f})"
        return f'<td style="background:{color};text-align:right" title="{title}">{v:.3g}</td>'

    def se(i: int, j: int) -> str:
        return "" if result.stderr is None else f" ± {result.stderr[i, j]:.2g}"

    cap = "<caption style='caption-side:top;text-align:left'>"
    parts = [f"<div><b>{esc(_run_line(result))}</b>"]
    about = describe_f(result)
    if about:
        body = "".join(f"<tr><th style='text-align:left'>{esc(k)}</th><td style='text-align:left'>{esc(v)}</td></tr>"
                       for k, v in about)
        parts.append(f"<table>{body}</table>")
    d = result.n_players
    if d <= MATRIX_MAX_PLAYERS:
        head = "".join(f"<th>{esc(p)}</th>" for p in players)
        rows = []
        for i, p in enumerate(players):
            cells = "".join(cell(result.matrix[i, j], f"{esc(players[j])} → {esc(p)}{se(i, j)}") for j in range(d))
            rows.append(f"<tr><th>{esc(p)}</th>{cells}<td><b>{result.first_order[i]:.3g}</b></td></tr>")
        parts.append(f"<table>{cap}row = target i, column = source j, cell = φ<sub>j→i</sub>; last column = "
                     f"φ<sub>i</sub></caption><tr><th></th>{head}<th>φ</th></tr>{''.join(rows)}</table>")
    else:
        parts.append(f"<div style='color:#666'>{d} players: the matrix is not drawn here "
                     "(<code>metagame.viz.heatmap(res)</code> draws it; <code>np.asarray(res)</code> is the matrix)</div>")
    pairs = result.top_pairs(n_pairs)
    if pairs:
        body = "".join(
            f"<tr><td>{esc(players[j])}</td><td>→</td><td>{esc(players[i])}</td>"
            f"{cell(v, esc(players[j]) + ' → ' + esc(players[i]) + se(i, j))}<td>{esc(se(i, j))}</td></tr>"
            for i, j, v in pairs
        )
        parts.append(f"<table>{cap}strongest directed pairs (source j → target i, φ<sub>j→i</sub>)</caption>"
                     f"{body}</table>")
    parts.append("</div>")
    return "".join(parts)


__all__ = ["MATRIX_MAX_PLAYERS", "describe_f", "result_html"]
