"""``ResultSet``: the results of one call over many inputs (prompts, text pairs, image–caption pairs, queries,
tensor rows), in input order, with aggregation across them, a long table, and JSON + npz save/load (no pickle)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

from .._version import __version__
from ..errors import MetagameError
from .aggregate import Aggregate, AggregateBy, aggregate, long_records, records_dataframe
from .codec import exact_json, from_exact_json
from .result import MetaAttribution

FORMAT = "metagame.result_set/1"
INDEX = "set.json"


class ResultSet(Sequence[MetaAttribution]):
    """A sequence of per-input :class:`~metagame.MetaAttribution` results (``rs[k]`` is input k's).

    Attributes:
        results: one result per input, in the order given (a duplicated input shares its computed numbers).
        inputs: a JSON description of each input (its prompt, texts, caption, ...).
        ids: one identifier per input (``"0"``, ``"1"``, ...), the ``input_id`` of :meth:`to_dataframe`.
        metadata: what the set call recorded (entry point, number of distinct inputs, run time, ...).
    """

    def __init__(self, results: Sequence[MetaAttribution], inputs: Sequence[Any] | None = None,
                 ids: Sequence[str] | None = None, metadata: dict | None = None):
        self.results = list(results)
        n = len(self.results)
        self.inputs = list(inputs) if inputs is not None else [{} for _ in range(n)]
        self.ids = [str(i) for i in ids] if ids is not None else [str(k) for k in range(n)]
        if len(self.inputs) != n or len(self.ids) != n:
            raise MetagameError(f"a ResultSet needs one input description and id per result; got {n} results, "
                                f"{len(self.inputs)} inputs, {len(self.ids)} ids")
        if len(set(self.ids)) != n:
            raise MetagameError("the ids of a ResultSet must be distinct")
        self.metadata = dict(metadata or {})

    # ------------------------------------------------------------------ sequence
    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, k):  # type: ignore[override]
        if isinstance(k, slice):
            meta = {k2: v for k2, v in self.metadata.items() if k2 != "duplicate_of"}
            return ResultSet(self.results[k], self.inputs[k], self.ids[k], meta)
        return self.results[k]

    def __iter__(self) -> Iterator[MetaAttribution]:
        return iter(self.results)

    def __repr__(self) -> str:
        methods = sorted({r.method for r in self.results})
        return f"ResultSet({len(self)} inputs, method={'/'.join(methods) or '-'})"

    # ------------------------------------------------------------------ aggregation
    def aggregate(self, by: AggregateBy = "pair", *, order: int = 2, diagonal: bool = False) -> Aggregate:
        """Aggregate across the inputs (mean, mean |·|, counts, stderr = sd/√n across inputs).

        ``order=2`` (M[i, j], off-diagonal unless ``diagonal``): ``by="pair"`` (normalised target word, source word),
        ``"target"``, ``"source"``, ``"distance"`` (relative position j − i among players of the same kind) or
        ``"kind"``; ``order=1`` (φ_i): ``"word"``, ``"distance"`` (position), ``"kind"``; ``order=3`` (T[i, j, k]):
        ``"triple"`` or ``"kind"``. Words are folded by :func:`~metagame.results.aggregate.normalise_label`. A
        duplicated input (``metadata["duplicate_of"]``) counts once.
        """
        return aggregate(self.distinct(), by, order, diagonal=diagonal)

    def distinct(self) -> list[MetaAttribution]:
        """The results of the distinct inputs (a duplicated input's copies left out)."""
        dup = set((self.metadata.get("duplicate_of") or {}).keys())
        return [r for rid, r in zip(self.ids, self.results) if rid not in dup]

    def strongest(self, n: int = 10, *, order: int = 2, min_inputs: int = 1) -> list[dict[str, Any]]:
        """The ``n`` strongest aggregated interactions (word pairs for order 2, words for 1, triples for 3)."""
        by = {1: "word", 2: "pair", 3: "triple"}.get(order)
        if by is None:
            raise MetagameError(f"order must be 1, 2 or 3; got {order!r}")
        return self.aggregate(by, order=order).top(n, min_inputs=min_inputs)  # type: ignore[arg-type]

    def top_entries(self, n: int = 10) -> list[dict[str, Any]]:
        """The ``n`` largest |M[i, j]| (i ≠ j) over every input, with the input they belong to."""
        rows = []
        dup = set((self.metadata.get("duplicate_of") or {}).keys())
        for rid, res in zip(self.ids, self.results):
            if rid in dup:
                continue
            for i, j, v in res.top_pairs(n):
                rows.append({"input_id": rid, "target": res.players[i], "source": res.players[j], "value": float(v)})
        rows.sort(key=lambda r: -abs(r["value"]))
        return rows[:n]

    # ------------------------------------------------------------------ tidy data
    def to_records(self) -> dict[str, list]:
        """Every entry of every input in long format (columns as :meth:`MetaAttribution.to_dataframe`, plus
        ``input_id``)."""
        cols: dict[str, list] = {}
        for rid, res in zip(self.ids, self.results):
            for k, v in long_records(res, rid).items():
                cols.setdefault(k, []).extend(v)
        return cols

    def to_dataframe(self):
        """:meth:`to_records` as a pandas DataFrame (pandas needed)."""
        return records_dataframe(self.to_records())

    # ------------------------------------------------------------------ save / load
    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``folder/set.json`` (ids, inputs, metadata) and one ``folder/inputs/<id>.json`` (+ ``.npz``) per
        input. Returns the index path."""
        root = Path(folder)
        (root / "inputs").mkdir(parents=True, exist_ok=True)
        files = []
        for rid, res in zip(self.ids, self.results):
            name = f"inputs/{_file_id(rid)}.json"
            res.save(root / name)
            files.append(name)
        index = {"format": FORMAT, "library": "metagame", "version": __version__, "ids": self.ids,
                 "inputs": exact_json(self.inputs), "files": files, "metadata": exact_json(self.metadata)}
        path = root / INDEX
        path.write_text(json.dumps(index, indent=1, allow_nan=False))
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "ResultSet":
        """Read a set written by :meth:`save` (the folder, or its ``set.json``)."""
        root = Path(folder)
        path = root if root.suffix == ".json" else root / INDEX
        if not path.is_file():
            raise MetagameError(f"no result set at {root} (no {INDEX}); pass the folder ResultSet.save wrote")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise MetagameError(f"{path} is not valid JSON ({e})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise MetagameError(f"{path} is not a metagame result set (format {FORMAT!r} expected)")
        base = path.parent.resolve()
        results = []
        for name in data.get("files") or []:
            file = (base / str(name)).resolve()
            if base not in file.parents:
                raise MetagameError(f"{path}: the result file {name!r} leaves the set's folder")
            results.append(MetaAttribution.load(file))
        return cls(results, from_exact_json(data.get("inputs")), data.get("ids"), from_exact_json(data.get("metadata") or {}))


def _file_id(rid: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in rid)
    return safe or "input"


def load_set(folder: str | os.PathLike) -> ResultSet:
    """Load a :class:`ResultSet` saved with ``.save(folder)``."""
    return ResultSet.load(folder)


__all__ = ["FORMAT", "ResultSet", "load_set"]
