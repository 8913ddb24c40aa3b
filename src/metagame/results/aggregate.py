"""Aggregation across the inputs of a set, and the long (tidy) table of one result.

A key (a normalised word, a word pair, a relative position j − i, a kind pair, a word triple) collects the
entries of every input that carry it. Per input the entries with one key are averaged (a word that occurs twice
in a prompt counts once per prompt), then across inputs: mean = (1/n) Σ_n v_n, mean |M| the same over |v_n|, and
stderr = sd(v_n) / √n with the sample sd (ddof = 1); a key seen in one input only has stderr = inf.
"""

from __future__ import annotations

import math
import re
import string
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np

from ..errors import MetagameError
from .result import MetaAttribution

AggregateBy = Literal["word", "pair", "target", "source", "distance", "kind", "triple"]
#: which keys each order offers (order 1: first-order φ_i; 2: M[i, j]; 3: T[i, j, k])
ORDER_KEYS: dict[int, tuple[str, ...]] = {
    1: ("word", "distance", "kind"),
    2: ("pair", "target", "source", "distance", "kind"),
    3: ("triple", "kind"),
}
_PUNCT = string.punctuation + "“”‘’«»…–—¿¡"
_SUFFIX = re.compile(r"#\d+$")


def normalise_label(label: str) -> str:
    """A word label folded for aggregation: ``"#n"`` duplicate suffix removed, lower case, surrounding punctuation
    and spaces stripped (``"The#2"`` → ``"the"``, ``"bad."`` → ``"bad"``); a label of punctuation only is kept."""
    text = _SUFFIX.sub("", str(label)).strip().lower()
    stripped = text.strip(_PUNCT + " ")
    return stripped or text


def _positions(kinds: Sequence[str]) -> np.ndarray:
    """Index of each player among the players of its kind (so j − i never compares words of two texts)."""
    seen: dict[str, int] = {}
    out = np.empty(len(kinds), dtype=np.int64)
    for k, kind in enumerate(kinds):
        out[k] = seen.get(kind, 0)
        seen[kind] = out[k] + 1
    return out


def _kinds(result: MetaAttribution) -> list[str]:
    return list(result.player_kinds) if result.player_kinds is not None else ["feature"] * result.n_players


@dataclass
class Aggregate:
    """One aggregation of a set: a row per key, sorted by mean |value| (strongest first).

    Attributes:
        by, order: what was aggregated (see :meth:`ResultSet.aggregate`).
        key_names: the names of the key's parts (e.g. ``("target", "source")``).
        keys: one tuple per row.
        mean, mean_abs, stderr, stderr_abs: across inputs (module docstring).
        n_inputs: inputs holding the key; n_entries: entries averaged in all.
    """

    by: str
    order: int
    key_names: tuple[str, ...]
    keys: list[tuple]
    mean: np.ndarray
    mean_abs: np.ndarray
    stderr: np.ndarray
    stderr_abs: np.ndarray
    n_inputs: np.ndarray
    n_entries: np.ndarray
    diagonal: bool = field(default=False)

    def __len__(self) -> int:
        return len(self.keys)

    def rows(self) -> list[dict[str, Any]]:
        """The rows as dictionaries (key parts by name, then the statistics)."""
        return [
            {**dict(zip(self.key_names, key)), "mean": float(self.mean[r]), "mean_abs": float(self.mean_abs[r]),
             "stderr": float(self.stderr[r]), "stderr_abs": float(self.stderr_abs[r]),
             "n_inputs": int(self.n_inputs[r]), "n_entries": int(self.n_entries[r])}
            for r, key in enumerate(self.keys)
        ]

    def top(self, n: int = 10, *, min_inputs: int = 1) -> list[dict[str, Any]]:
        """The ``n`` strongest keys by mean |value| held by at least ``min_inputs`` inputs."""
        return [row for row in self.rows() if row["n_inputs"] >= min_inputs][:n]

    def lookup(self, *key: Any) -> dict[str, Any]:
        """The row of one key (e.g. ``agg.lookup("not", "bad")``)."""
        for row, k in zip(self.rows(), self.keys):
            if k == tuple(key):
                return row
        raise MetagameError(f"no key {key!r} in this aggregation by {self.by!r}; keys look like {self.keys[:3]!r}")

    def to_dataframe(self):
        """The rows as a pandas DataFrame (pandas needed)."""
        return _dataframe(self.rows())


def _dataframe(rows: Any):
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is optional
        raise MetagameError("to_dataframe needs pandas; pip install pandas (or use .rows() / .to_records())") from None
    return pd.DataFrame(rows)


def _entries(result: MetaAttribution, by: str, order: int, diagonal: bool) -> tuple[list[tuple], np.ndarray]:
    """(key, value) of every entry of one result for this aggregation."""
    words = [normalise_label(p) for p in result.players]
    kinds = _kinds(result)
    pos = _positions(kinds)
    d = result.n_players
    if order == 1:
        keyf = {"word": lambda i: (kinds[i], words[i]), "kind": lambda i: (kinds[i],),
                "distance": lambda i: (kinds[i], int(pos[i]))}[by]
        return [keyf(i) for i in range(d)], np.asarray(result.first_order, dtype=float)
    if order == 2:
        ii, jj = np.nonzero(np.ones((d, d), dtype=bool) if diagonal else ~np.eye(d, dtype=bool))
        keyf = {
            "pair": lambda i, j: (words[i], words[j]),
            "target": lambda i, j: (kinds[i], words[i]),
            "source": lambda i, j: (kinds[j], words[j]),
            "distance": lambda i, j: (kinds[i], kinds[j], int(pos[j] - pos[i])),
            "kind": lambda i, j: (kinds[i], kinds[j]),
        }[by]
        return [keyf(i, j) for i, j in zip(ii, jj)], result.matrix[ii, jj]
    tensor = result.tensor
    if tensor is None:
        raise MetagameError("order=3 aggregation needs third-order results; run the set with order=3")
    idx = np.argwhere(np.ones((d, d, d), dtype=bool)) if diagonal else np.array(
        [(i, j, k) for i in range(d) for j in range(d) for k in range(d) if len({i, j, k}) == 3], dtype=np.int64
    ).reshape(-1, 3)
    keyf3 = {"triple": lambda i, j, k: (words[i], words[j], words[k]),
             "kind": lambda i, j, k: (kinds[i], kinds[j], kinds[k])}[by]
    return [keyf3(*t) for t in idx], tensor[idx[:, 0], idx[:, 1], idx[:, 2]] if len(idx) else np.zeros(0)


KEY_NAMES = {
    (1, "word"): ("kind", "word"), (1, "kind"): ("kind",), (1, "distance"): ("kind", "position"),
    (2, "pair"): ("target", "source"), (2, "target"): ("kind", "target"), (2, "source"): ("kind", "source"),
    (2, "distance"): ("target_kind", "source_kind", "distance"), (2, "kind"): ("target_kind", "source_kind"),
    (3, "triple"): ("target", "source", "mover"), (3, "kind"): ("target_kind", "source_kind", "mover_kind"),
}


def aggregate(results: Sequence[MetaAttribution], by: AggregateBy = "pair", order: int = 2, *,
              diagonal: bool = False) -> Aggregate:
    """Aggregate ``results`` by key: per input the mean over its entries with the key, then mean, mean |·| and
    stderr = sd / √n across the inputs holding it (module docstring). ``diagonal``: include M[i, i] (order 2) or
    repeated indices (order 3)."""
    if order not in ORDER_KEYS:
        raise MetagameError(f"order must be 1 (first order), 2 (meta-attributions) or 3 (triples); got {order!r}")
    if by not in ORDER_KEYS[order]:
        raise MetagameError(f"order {order} aggregates by one of {', '.join(ORDER_KEYS[order])}; got by={by!r}")
    per_key: dict[tuple, list[tuple[float, float, int]]] = {}
    for result in results:
        keys, values = _entries(result, by, order, diagonal)
        groups: dict[tuple, list[float]] = {}
        for key, v in zip(keys, np.asarray(values, dtype=float).tolist()):
            groups.setdefault(key, []).append(v)
        for key, vs in groups.items():
            per_key.setdefault(key, []).append((float(np.mean(vs)), float(np.mean(np.abs(vs))), len(vs)))
    stats = []
    for key, items in per_key.items():
        v = np.array([t[0] for t in items])
        a = np.array([t[1] for t in items])
        n = len(items)
        se = float(np.std(v, ddof=1) / math.sqrt(n)) if n > 1 else math.inf
        se_abs = float(np.std(a, ddof=1) / math.sqrt(n)) if n > 1 else math.inf
        stats.append((key, float(v.mean()), float(a.mean()), se, se_abs, n, sum(t[2] for t in items)))
    stats.sort(key=lambda s: (-s[2], str(s[0])))
    col = lambda k, dt=float: np.array([s[k] for s in stats], dtype=dt)  # noqa: E731
    return Aggregate(by=by, order=order, key_names=KEY_NAMES[(order, by)], keys=[s[0] for s in stats],
                     mean=col(1), mean_abs=col(2), stderr=col(3), stderr_abs=col(4), n_inputs=col(5, np.int64),
                     n_entries=col(6, np.int64), diagonal=diagonal)


def long_records(result: MetaAttribution, input_id: str | None = None) -> dict[str, list]:
    """The entries of one result in long format: one row per (target, source) with labels, kinds, value,
    stderr (0 when exact) and the first-order attribution of each."""
    d = result.n_players
    kinds = _kinds(result)
    stderr = result.stderr if result.stderr is not None else np.zeros((d, d))
    ii, jj = np.divmod(np.arange(d * d), d)
    cols: dict[str, list] = {}
    if input_id is not None:
        cols["input_id"] = [input_id] * (d * d)
    cols.update({
        "target": ii.tolist(), "source": jj.tolist(),
        "target_label": [result.players[i] for i in ii], "source_label": [result.players[j] for j in jj],
        "target_kind": [kinds[i] for i in ii], "source_kind": [kinds[j] for j in jj],
        "value": result.matrix[ii, jj].tolist(), "stderr": stderr[ii, jj].tolist(),
        "first_order_target": result.first_order[ii].tolist(), "first_order_source": result.first_order[jj].tolist(),
    })
    return cols


def records_dataframe(cols: dict[str, list]):
    """A pandas DataFrame of :func:`long_records` columns."""
    return _dataframe(cols)


__all__ = ["Aggregate", "AggregateBy", "ORDER_KEYS", "aggregate", "long_records", "normalise_label", "records_dataframe"]
