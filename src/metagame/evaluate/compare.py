"""Side-by-side evaluation of several results on the same input: one table (CSV / markdown / JSON) and one plot."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, get_args

import numpy as np

from ..errors import MetagameError, one_of
from ..games.base import Game
from ..games.masked import AttributionGame
from ..models.base import ModelAdapter
from ..models.state import keeps_model_argument
from ..results.result import MetaAttribution
from ._shared import inner_method, label, role, value_game
from .agreement import (
    Annotations,
    MapAgreement,
    RecallCurve,
    direction_accuracy,
    load_annotations,
    map_agreement,
    pair_scores,
    recall_at_k,
)
from .baselines import first_order_baseline, stii_result
from .faithfulness import Faithfulness, surrogate_r2
from .insertion import InsertionReport, PlayerOrder, pair_insertion

#: how Recall@K counts an annotated pair: in either direction (its better rank) or only as annotated
RecallDirection = Literal["better", "annotated"]


@dataclass
class Comparison:
    """Metrics of several results on one input.

    Attributes:
        rows: one dictionary per result (``"method"`` = its label, then one key per metric; see :meth:`columns`).
        results: the evaluated results by label (baselines included).
        faithfulness: label -> one :class:`Faithfulness` per p.
        insertion: label -> :class:`InsertionReport`.
        recall: label -> :class:`RecallCurve`.
        maps: label -> :class:`MapAgreement`.
    """

    rows: list[dict[str, Any]]
    results: dict[str, MetaAttribution] = field(default_factory=dict)
    faithfulness: dict[str, list[Faithfulness]] = field(default_factory=dict)
    insertion: dict[str, InsertionReport] = field(default_factory=dict)
    recall: dict[str, RecallCurve] = field(default_factory=dict)
    maps: dict[str, MapAgreement] = field(default_factory=dict)

    def columns(self) -> list[str]:
        """Column names in table order (the union over rows)."""
        cols: list[str] = []
        for row in self.rows:
            for k in row:
                if k not in cols:
                    cols.append(k)
        return cols

    def to_markdown(self, digits: int = 3) -> str:
        """The table as GitHub markdown (numbers to ``digits`` significant places; blank where not measured)."""
        cols = self.columns()
        lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" if c == "method" else "---:" for c in cols) + "|"]
        for row in self.rows:
            lines.append("| " + " | ".join(_fmt(row.get(c), digits) for c in cols) + " |")
        return "\n".join(lines)

    def to_csv(self, path: str | Path) -> Path:
        """Write the table (one row per result, one column per metric) as CSV; returns the path."""
        path = Path(path)
        cols = self.columns()
        with path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=cols)
            w.writeheader()
            for row in self.rows:
                w.writerow({c: ("" if row.get(c) is None else row.get(c)) for c in cols})
        return path

    def to_dict(self) -> dict:
        """JSON-ready: the table rows and every metric's details."""
        return {
            "format": "metagame.comparison/1",
            "rows": [{k: _json_num(v) for k, v in row.items()} for row in self.rows],
            "players": next(iter(self.results.values())).players if self.results else [],
            "faithfulness": {k: [f.to_dict() for f in v] for k, v in self.faithfulness.items()},
            "insertion": {k: v.to_dict() for k, v in self.insertion.items()},
            "recall": {k: v.to_dict() for k, v in self.recall.items()},
            "maps": {k: {"words": v.words, **v.summary()} for k, v in self.maps.items()},
        }

    def plot(self, path: str | Path | None = None):
        """One figure: Recall@K curves (with annotations), surrogate R² per p, and AID against the first-order
        ranking and random orders (with a model). Returns the matplotlib figure; saves a PNG when ``path`` is given."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        panels = [k for k, have in (("recall", self.recall), ("r2", self.faithfulness), ("aid", self.insertion)) if have]
        if not panels:
            raise MetagameError("nothing to plot: the comparison has neither model metrics nor annotations")
        fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.0), squeeze=False)
        labels = [r["method"] for r in self.rows]
        colors = {lab: plt.cm.tab10(k % 10) for k, lab in enumerate(labels)}
        for ax, panel in zip(axes[0], panels):
            if panel == "recall":
                for k, (lab, curve) in enumerate(self.recall.items()):
                    style = "--" if role(self.results[lab]) == "first_order" else "-"
                    ax.plot(100 * curve.k / curve.n_pairs, curve.recall, style, color=colors[lab], label=lab,
                            drawstyle="steps-post", lw=max(0.8, 3.2 - 0.45 * k), alpha=0.85)  # overlapping curves stay visible
                ax.set_xlabel("top K of the d(d−1) directed pairs (%)")
                ax.set_ylabel("Recall@K of annotated pairs")
                ax.set_ylim(-0.02, 1.02)
                ax.set_title("agreement with annotations")
            elif panel == "r2":
                ps = sorted({f.p for fs in self.faithfulness.values() for f in fs}, reverse=True)
                labs = list(self.faithfulness)
                width = 0.8 / max(1, len(ps))
                for k, pv in enumerate(ps):
                    vals = [next((f.r2 for f in self.faithfulness[lab] if f.p == pv), np.nan) for lab in labs]
                    ax.bar(np.arange(len(labs)) + k * width, np.clip(vals, -1, 1), width, label=f"p = {pv:g}")
                ax.set_xticks(np.arange(len(labs)) + width * (len(ps) - 1) / 2, labs, rotation=35, ha="right", fontsize=8)
                ax.axhline(0, color="k", lw=0.6)
                ax.set_ylim(-1.05, 1.05)
                ax.set_ylabel("surrogate R² (clipped at −1)")
                ax.set_title("faithfulness to u_i(T) = φ_i(x_{T∪i})")
            else:
                labs = list(self.insertion)
                vals = [self.insertion[lab].result.aid for lab in labs]
                ax.bar(np.arange(len(labs)), vals, color=[colors[lab] for lab in labs])
                first = [self.insertion[lab].first_order.aid for lab in labs]
                ax.scatter(np.arange(len(labs)), first, marker="_", s=400, color="k", zorder=3, label="first-order ranking")
                rnd = [self.insertion[lab].random_mean for lab in labs]
                sd = [self.insertion[lab].random_std for lab in labs]
                ax.errorbar(np.arange(len(labs)), rnd, yerr=sd, fmt="o", color="0.3", ms=3, zorder=4, label="random order ± sd")
                ax.set_xticks(np.arange(len(labs)), labs, rotation=35, ha="right", fontsize=8)
                ax.axhline(0, color="k", lw=0.6)
                ax.set_ylabel("AID (units of f)")
                ax.set_title("insertion − deletion area of f")
            ax.legend(fontsize=7)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=120)
        return fig

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``comparison.csv``, ``comparison.md``, ``comparison.json`` and ``comparison.png`` (with matplotlib)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = {"csv": self.to_csv(out / "comparison.csv")}
        (out / "comparison.md").write_text(self.to_markdown() + "\n")
        written["markdown"] = out / "comparison.md"
        (out / "comparison.json").write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False))
        written["json"] = out / "comparison.json"
        try:
            import matplotlib  # noqa: F401
        except ImportError:  # pragma: no cover - matplotlib is in the viz extra
            return written
        import matplotlib.pyplot as plt

        fig = self.plot(out / "comparison.png")
        plt.close(fig)
        written["plot"] = out / "comparison.png"
        return written


def _fmt(v: Any, digits: int) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(v):
            return "nan"
        return f"{v:.{digits}g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
    return str(v)


def _json_num(v: Any):
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


def _method_key(result: MetaAttribution) -> str:
    params = (result.metadata.get("parameters") or {}).get("method_params") or {}
    return json.dumps([result.method, params], sort_keys=True, default=repr)


def _as_labelled(results: Mapping[str, MetaAttribution] | Sequence[MetaAttribution]) -> dict[str, MetaAttribution]:
    if isinstance(results, Mapping):
        items = list(results.items())
    else:
        items = [(label(r), r) for r in results]
    out: dict[str, MetaAttribution] = {}
    for lab, res in items:
        if not isinstance(res, MetaAttribution):
            raise MetagameError(f"{lab!r} is a {type(res).__name__}; compare takes MetaAttribution results")
        name, k = lab, 2
        while name in out:
            name, k = f"{lab} #{k}", k + 1
        out[name] = res
    return out


@keeps_model_argument
def compare(
    results: Mapping[str, MetaAttribution] | Sequence[MetaAttribution],
    model: ModelAdapter | None = None,
    *,
    annotations: Annotations | Mapping | str | Path | None = None,
    baselines: bool = True,
    stii: bool = False,
    p: Sequence[float] = (0.5, 0.1),
    budget: int | None = 512,
    seed: int | None = 0,
    order: PlayerOrder = "meta",
    n_random: int = 32,
    max_fraction: float = 0.15,
    recall_at: Sequence[float] = (0.05, 0.15),
    recall_direction: RecallDirection = "better",
    map_threshold: float | Literal["mean"] = "mean",
    out: str | Path | None = None,
) -> Comparison:
    """Evaluate several results of the same input side by side.

    Every result gets the metrics its inputs allow: with ``model``, the surrogate R² at each ``p``
    (:func:`~metagame.evaluate.surrogate_r2`; results with the same inner method share the evaluated coalitions)
    and the AID of its order against the first-order ranking and random orders
    (:func:`~metagame.evaluate.pair_insertion`); with ``annotations``, Recall@K of the annotated pairs
    (:func:`~metagame.evaluate.recall_at_k`, plus direction accuracy for directed pairs) and, for
    vision-language results with regions, the pointing game, IoU and AP of the word→patch maps.

    Args:
        results: labelled results (``{"Meta-IG": res, ...}``) or a list (labelled ``Meta-IG``, ``serial Meta-SV``, …).
        model: the adapter every result was computed with (needed for R² and AID).
        annotations: an :class:`~metagame.evaluate.Annotations`, a dict or a JSON file (format in
            :mod:`metagame.evaluate.agreement`).
        baselines: add :func:`~metagame.evaluate.first_order_baseline` of each inner method's first metagame result.
        stii: add the exact Shapley-Taylor index (:func:`~metagame.evaluate.stii_result`; needs ``model``).
        p, budget, seed: the faithfulness design (one R² column per p).
        order: the player order read off meta results for AID (baselines use the first-order ranking).
        n_random: random orders for the AID chance level.
        max_fraction, recall_at: the Recall@K range and the fractions reported as columns.
        recall_direction: ``"better"`` finds a pair in either direction (its better rank); ``"annotated"`` counts only
            the annotated direction of directed annotations. Directed annotations also get a direction-accuracy column.
        map_threshold: threshold of the IoU (see :func:`~metagame.evaluate.iou`).
        out: when given, write the table, JSON and plot there (:meth:`Comparison.save`).

    Example:
        >>> cmp = compare({"Meta-IG": ig, "Meta-SV": sv}, adapter, annotations="pairs.json", out="eval")  # doctest: +SKIP
        >>> print(cmp.to_markdown())
    """
    if recall_direction not in get_args(RecallDirection):
        raise MetagameError(f"unknown recall_direction {recall_direction!r}; use {one_of(RecallDirection)}")
    labelled = _as_labelled(results)
    if not labelled:
        raise MetagameError("compare needs at least one result")
    first = next(iter(labelled.values()))
    for lab, res in labelled.items():
        if res.players != first.players:
            raise MetagameError(
                f"{lab!r} has players {res.players} but the first result has {first.players}; compare results of the same input"
            )
    if stii:
        if model is None:
            raise MetagameError("stii=True computes the Shapley-Taylor index from the model; pass model=...")
        labelled["STII"] = stii_result(model, player_kinds=first.player_kinds)
    if baselines:
        seen: set[str] = set()
        for res in list(labelled.values()):
            key = _method_key(res)
            if role(res) == "metagame" and key not in seen:
                seen.add(key)
                base = first_order_baseline(res)
                name = label(base)
                if name in labelled:
                    name = f"{name} ({len(seen)})"
                labelled[name] = base
    ann = load_annotations(annotations) if annotations is not None else None
    pairs = ann.pair_indices(first.players) if ann is not None and ann.pairs else None

    cmp = Comparison(rows=[], results=labelled)
    games: dict[str, Game] = {}
    values = value_game(model, first.n_players) if model is not None else None
    for lab, res in labelled.items():
        row: dict[str, Any] = {"method": lab, "inner": res.method, "variant": res.variant, "exact": bool(res.exact)}
        if model is not None:
            inner = inner_method(res)
            key = json.dumps([inner.name, inner.params()], sort_keys=True, default=repr)  # results with one φ share a game
            if key not in games:
                games[key] = AttributionGame(model, inner, cache=True)
            fa = [surrogate_r2(res, games[key], p=pv, budget=budget, seed=seed) for pv in p]
            cmp.faithfulness[lab] = fa
            for f in fa:
                row[f"R2 p={f.p:g}"] = f.r2
            rep = pair_insertion(res, values, order="first_order" if role(res) == "first_order" else order,
                                 n_random=n_random, seed=seed)
            cmp.insertion[lab] = rep
            row["AID"] = rep.result.aid
            row["AID first-order"] = rep.first_order.aid
            row["AID random"] = rep.random_mean
            row["AID random sd"] = rep.random_std
        if pairs:
            curve = recall_at_k(pair_scores(res), pairs, max_fraction=max_fraction,
                                directed=ann.directed and recall_direction == "annotated")
            cmp.recall[lab] = curve
            row["Recall AUC"] = curve.auc
            for fr in recall_at:
                row[f"Recall@{100 * fr:g}%"] = curve.at_fraction(fr)
            if ann.directed:
                row["direction acc"] = 0.5 if role(res) == "first_order" else direction_accuracy(res.matrix, pairs)
        if ann is not None and ann.regions:
            try:
                agree = map_agreement(res, ann.regions, map_threshold)
            except MetagameError:
                agree = None
            if agree is not None:
                cmp.maps[lab] = agree
                s = agree.summary()
                fo = role(res) == "first_order"
                row["pointing"] = s["pointing_first_order" if fo else "pointing"]
                row["IoU"] = s["iou_first_order" if fo else "iou"]
                row["AP"] = s["ap_first_order" if fo else "ap"]
        cmp.rows.append(row)
    if out is not None:
        cmp.save(out)
    return cmp


@keeps_model_argument
def evaluate_result(result: MetaAttribution, model: ModelAdapter | None = None, **kwargs) -> dict[str, Any]:
    """All metrics of one result as one table row (:func:`compare` with the result alone, no baselines)."""
    kwargs.setdefault("baselines", False)
    return compare([result], model, **kwargs).rows[0]


__all__ = ["Comparison", "compare", "evaluate_result"]
