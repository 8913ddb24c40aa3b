"""Compact terminal summary: a header line and a rich table of the strongest directed pairs."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..results.pairs import Pair
from ..results.result import MetaAttribution


def header_line(result: MetaAttribution) -> str:
    """One line: method, variant/value, number of players, exact or estimated (budget), model."""
    params = result.metadata.get("parameters") or {}
    model = result.metadata.get("model")
    if isinstance(model, dict):
        model = model.get("name") or model.get("model") or model.get("type")
    model = model or result.context.get("model")
    how = "exact" if result.exact else f"estimated (budget {params.get('budget', '?')}, seed {params.get('seed', '?')})"
    parts = [f"{result.method} · {result.variant}/{result.value}", f"d = {result.n_players}", how,
             f"{result.n_evaluations} attribution calls"]
    if model:
        parts.append(f"model {model}")
    return "metagame · " + " · ".join(str(p) for p in parts)


def _fmt(v: float) -> str:
    return "nan" if not np.isfinite(v) else f"{v:+.4g}"


def summary_rows(result: MetaAttribution, n: int = 10) -> list[tuple[str, str, float, float | None, float]]:
    """The ``n`` strongest directed pairs as ``(source, target, φ_{j→i}, stderr or None, φ_target)``."""
    rows = []
    for i, j, v in result.top_pairs(n):
        se = None if result.stderr is None else float(result.stderr[i, j])
        rows.append((result.players[j], result.players[i], v, se, float(result.first_order[i])))
    return rows


def cross_kind_pairs(result: MetaAttribution, n: int = 10) -> list[Pair]:
    """The ``n`` strongest pairs whose source and target are of different kinds: ``(target i, source j, φ_{j→i})``."""
    kinds = result.player_kinds
    if kinds is None or len(set(kinds)) < 2:
        return []
    m = np.asarray(result.matrix, dtype=np.float64)
    ka = np.asarray(list(kinds))
    cross = ka[:, None] != ka[None, :]
    score = np.where(cross & np.isfinite(m), np.abs(m), -1.0)
    out = []
    for flat in np.argsort(-score, axis=None, kind="stable")[:n]:
        i, j = divmod(int(flat), m.shape[1])
        if score[i, j] < 0:
            break
        out.append(Pair(i, j, float(m[i, j])))
    return out


def summary_table(result: MetaAttribution, n: int = 10) -> Any:
    """A :class:`rich.table.Table` of the ``n`` strongest pairs: source → target, φ_{j→i} ± stderr, φ_i."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(header_line(result)), title_justify="left", show_lines=False, header_style="bold")
    table.add_column("#", justify="right", style="dim")
    table.add_column("source j")
    table.add_column("")
    table.add_column("target i")
    table.add_column("φ_{j→i}", justify="right")
    table.add_column("φ_i (target)", justify="right", style="dim")
    for k, (src, tgt, v, se, phi) in enumerate(summary_rows(result, n), start=1):
        txt = _fmt(v) + ("" if se is None else f" ± {se:.2g}")
        style = "red" if v > 0 else "blue" if v < 0 else ""
        # Text objects: labels are shown literally, never parsed as rich markup
        table.add_row(str(k), Text(src), "→", Text(tgt), Text(txt, style=style), Text(_fmt(phi)))
    return table


def print_summary(result: MetaAttribution, n: int = 10, console: Any | None = None) -> None:
    """Print the header line and the ``n`` strongest directed pairs (source → target, φ_{j→i} ± stderr)."""
    try:
        from rich.console import Console
    except ImportError:  # plain text without rich
        print(header_line(result))
        for src, tgt, v, se, _ in summary_rows(result, n):
            print(f"  {src} → {tgt}: {_fmt(v)}" + ("" if se is None else f" ± {se:.2g}"))
        print(result.describe())
        return
    console = console or Console()
    table = summary_table(result, n)
    if not table.rows:
        from rich.text import Text

        console.print(Text(header_line(result)))
        console.print(Text("no off-diagonal meta-attributions (all zero)"))
        console.print(Text(result.describe(), style="dim"))
        return
    console.print(table)
    triples = result.top_triples(n)
    if triples:
        from rich.table import Table
        from rich.text import Text

        third = Table(title=Text("third order: k moves the push of j on i, T[i, j, k]"), title_justify="left",
                      header_style="bold")
        for name, justify in (("#", "right"), ("mover k", "left"), ("", "left"), ("push j → i", "left"),
                              ("T[i, j, k]", "right")):
            third.add_column(name, justify=justify)
        se = result.tensor_stderr
        for r, (i, j, k, v) in enumerate(triples, start=1):
            txt = _fmt(v) + ("" if se is None else f" ± {se[i, j, k]:.2g}")
            third.add_row(str(r), Text(result.players[k]), "moves", Text(f"{result.players[j]} → {result.players[i]}"),
                          Text(txt, style="red" if v > 0 else "blue"))
        console.print(third)
    from .style import has_cross_kinds

    if has_cross_kinds(result.player_kinds or []):
        from rich.table import Table
        from rich.text import Text

        cross = Table(title=Text("across kinds: how a player of one kind moves the attribution of another"),
                      title_justify="left", header_style="bold")
        for name, justify in (("#", "right"), ("source j", "left"), ("", "left"), ("target i", "left"),
                              ("φ_{j→i}", "right")):
            cross.add_column(name, justify=justify)
        kinds = result.player_kinds
        for r, (i, j, v) in enumerate(cross_kind_pairs(result, n), start=1):
            cross.add_row(str(r), Text(f"{result.players[j]} ({kinds[j]})"), "→", Text(f"{result.players[i]} ({kinds[i]})"),
                          Text(_fmt(v), style="red" if v > 0 else "blue" if v < 0 else ""))
        console.print(cross)
    from rich.text import Text

    console.print(Text(result.describe(), style="dim"))  # f in words, masking, empty side, method, estimator, values
