"""The result object of a meta-attribution run, with JSON save/load (never pickle)."""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import MetagameError
from .codec import array_from_json, array_to_json, decode_float, encode_float, exact_json, from_exact_json, plain_json
from .extras import CONCEPT_MAPS, EXTRAS, HEATMAP, IMAGE, META_MAPS, PATCH_MAPS, STII, TENSOR, TENSOR_STDERR
from .pairs import Pair, Triple

#: arrays with more entries than this go to a side-car ``.npz`` next to the JSON file
SIDECAR_THRESHOLD = 250_000
#: extras that always go to the side-car (higher-order tensors and map stacks)
SIDECAR_KEYS = frozenset(key for key, extra in EXTRAS.items() if extra.sidecar)
FORMAT = "metagame.result/1"


_RESERVED = {
    "format", "metadata", "players", "player_kinds", "method", "variant", "value", "exact", "n_evaluations",
    "n_model_rows", "matrix", "first_order", "stderr", "budget", "model", "context", "extras",
}


def _model_name(metadata: dict):
    model = metadata.get("model") or {}
    return model.get("name") or model.get("model") if isinstance(model, dict) else model


@dataclass
class MetaAttribution:
    """Meta-attributions of one explained input.

    Attributes:
        matrix: ``(d, d)``; ``matrix[i, j]`` = φ_{j→i}, how source j moves the attribution of target i.
        first_order: ``(d,)`` first-order attribution φ(x); rows of a metagame matrix sum to it.
        players: labels, one per player.
        method, variant, value: the inner method, ``"metagame"``/``"serial"``, ``"shapley"``/``"banzhaf"``.
        exact: True when computed by exact enumeration.
        stderr: ``(d, d)`` standard errors of an estimate, None when exact.
        n_evaluations: attribution calls made (one per coalition attributed; for routes that read a
            full value table, the number of coalitions evaluated).
        n_model_rows: rows pushed through the model (None when unknown).
        player_kinds: optional kind per player (``feature``, ``token``, ``word_a``, ``patch``, ``data``, ``head`` ...).
        metadata: library version, parameters, timestamp, model description.
        context: free-form context for display (prompt, answer, image grid, value_full, value_empty ...).
        extras: further named arrays, saved with the result. The keys the library writes are declared in
            :mod:`metagame.results.extras` and read through the typed properties of the same names (:attr:`image`,
            :attr:`patch_maps`, :attr:`heatmap`, :attr:`concept_maps`, :attr:`meta_maps`, :attr:`stii`,
            :attr:`tensor`, :attr:`tensor_stderr`); any other key is kept as the caller's own.
    """

    matrix: np.ndarray
    first_order: np.ndarray
    players: list[str]
    method: str
    variant: str = "metagame"
    value: str = "shapley"
    exact: bool = True
    stderr: np.ndarray | None = None
    n_evaluations: int = 0
    n_model_rows: int | None = None
    player_kinds: list[str] | None = None
    metadata: dict = field(default_factory=dict)
    context: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)
    #: what :meth:`save` added to the file's metadata block (library, version, saved), filled by :meth:`load`
    saved_info: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        self.matrix = np.asarray(self.matrix, dtype=np.float64)
        self.first_order = np.asarray(self.first_order, dtype=np.float64)
        if self.stderr is not None:
            self.stderr = np.asarray(self.stderr, dtype=np.float64)
        self.players = [str(p) for p in self.players]
        d = len(self.players)
        if self.matrix.shape != (d, d):
            raise MetagameError(f"matrix has shape {self.matrix.shape} for {d} players; expected ({d}, {d})")
        if self.first_order.shape != (d,):
            raise MetagameError(f"first_order has shape {self.first_order.shape}; expected ({d},)")
        if self.stderr is not None and self.stderr.shape != (d, d):
            raise MetagameError(f"stderr has shape {self.stderr.shape}; expected ({d}, {d})")
        self.extras = {k: np.asarray(v, dtype=np.float64) for k, v in self.extras.items()}

    # ------------------------------------------------------------------ views
    @property
    def n_players(self) -> int:
        return len(self.players)

    # the declared extras the pictures and reports read (metagame.results.extras); None when absent
    @property
    def tensor(self) -> np.ndarray | None:
        """``(d, d, d)`` meta-meta-attributions T[i, j, k] (how k moves the push of j on i) of an ``order=3`` run;
        Σ_k T[i, j, k] = M[i, j]. None for order-2 results."""
        return self.extras.get(TENSOR)

    @property
    def tensor_stderr(self) -> np.ndarray | None:
        """Standard errors of :attr:`tensor` for sampled ``order=3`` runs (None otherwise)."""
        return self.extras.get(TENSOR_STDERR)

    @property
    def image(self) -> np.ndarray | None:
        """The input (or generated) image the maps are drawn over, ``[H, W, 3]`` in [0, 1] as the library writes it
        (vision-language and diffusion results); None otherwise."""
        return self.extras.get(IMAGE)

    @property
    def patch_maps(self) -> np.ndarray | None:
        """``[W, rows, cols]``: how each word moves every patch's attribution (the patch-maps view of a
        vision-language model); None otherwise."""
        return self.extras.get(PATCH_MAPS)

    @property
    def heatmap(self) -> np.ndarray | None:
        """``[rows, cols]`` first-order patch attribution with all words present (patch-maps view); None otherwise."""
        return self.extras.get(HEATMAP)

    @property
    def concept_maps(self) -> np.ndarray | None:
        """``[d, rows, cols]``: each concept's full map φ_i(x) over the patches (diffusion results); None otherwise."""
        return self.extras.get(CONCEPT_MAPS)

    @property
    def meta_maps(self) -> np.ndarray | None:
        """``[d, d, rows, cols]`` meta-maps: how concept j moves concept i's map at each patch, summing over j to
        :attr:`concept_maps` (diffusion results); None otherwise."""
        return self.extras.get(META_MAPS)

    @property
    def stii(self) -> np.ndarray | None:
        """``[d, d]`` Shapley-Taylor interaction index stored by the caller, drawn next to M by
        :func:`metagame.viz.comparison`; None when not stored."""
        return self.extras.get(STII)

    @property
    def diagonal(self) -> np.ndarray:
        """Each player's own (individual) effect M[i, i]."""
        return np.diag(self.matrix).copy()

    def row_sums(self) -> np.ndarray:
        """Σ_j M[i, j]: equals ``first_order`` for the metagame variant with the Shapley value."""
        return self.matrix.sum(axis=1)

    def top_pairs(self, n: int = 10, include_diagonal: bool = False) -> list[Pair]:
        """The ``n`` strongest directed pairs ``(target i, source j, φ_{j→i})`` by absolute value.

        The order of :attr:`matrix`'s indices (``matrix[i, j]``), the same on every result type; each item is a
        :class:`Pair` named tuple (``.target``, ``.source``, ``.value``)."""
        m = self.matrix.copy()
        if not include_diagonal:
            np.fill_diagonal(m, 0.0)
        score = np.where(np.isfinite(m), np.abs(m), -1.0)
        out = []
        for flat in np.argsort(-score, axis=None, kind="stable")[: max(0, n)]:
            i, j = divmod(int(flat), self.n_players)
            if score[i, j] <= 0 and not include_diagonal:
                continue
            out.append(Pair(i, j, float(self.matrix[i, j])))
        return out

    def top_triples(self, n: int = 10) -> list[Triple]:
        """The ``n`` strongest third-order effects ``(target i, source j, mover k, T[i, j, k])`` with i, j, k
        distinct, by absolute value: how k moves the push of j on i (``order=3`` results; empty otherwise)."""
        t = self.tensor
        if t is None:
            return []
        d = self.n_players
        i, j, k = np.meshgrid(np.arange(d), np.arange(d), np.arange(d), indexing="ij")
        distinct = (i != j) & (j != k) & (i != k)
        vals = np.where(distinct & np.isfinite(t), np.abs(t), -1.0)
        out = []
        for flat in np.argsort(-vals, axis=None, kind="stable")[: max(0, n)]:
            a, b, c = np.unravel_index(int(flat), t.shape)
            if vals[a, b, c] <= 0:
                break
            out.append(Triple(int(a), int(b), int(c), float(t[a, b, c])))
        return out

    # ------------------------------------------------------------------ what was explained
    @property
    def f_description(self) -> str:
        """f in words, e.g. ``"log p(' Paris' | prompt)"`` or ``"cosine similarity of the two sentence embeddings"``
        ("" for results written before 0.3)."""
        return str((self.metadata.get("explained") or {}).get("f", ""))

    def balance(self) -> dict[str, Any]:
        """What the first-order scores sum to and against which value: ``{"value_full", "value_empty",
        "first_order_sum", "value_reference", "reference"}`` (reference: the point Σ_i φ_i = f(x) − f(r) holds for
        when it is not the empty coalition, e.g. Integrated Gradients' baseline; None otherwise)."""
        ctx = self.context
        return {
            "value_full": ctx.get("value_full"), "value_empty": ctx.get("value_empty"),
            "first_order_sum": float(np.sum(self.first_order)),
            "value_reference": ctx.get("value_reference"), "reference": ctx.get("reference"),
        }

    def value_line(self) -> str:
        """One line with f(x), f(∅) and what the first-order scores sum to, naming the difference when the scores
        are complete against another point than the empty coalition (or against none)."""
        b = self.balance()
        full, empty, total = b["value_full"], b["value_empty"], b["first_order_sum"]
        if not isinstance(full, (int, float)) or not isinstance(empty, (int, float)):
            return f"first-order scores sum to {total:.4g}"
        line = f"f(x) = {full:.4g}, f(∅) = {empty:.4g}; first-order scores sum to {total:.4g}"
        ref = b["value_reference"]
        scale = max(1.0, abs(full), abs(empty))
        if isinstance(ref, (int, float)):  # complete against r up to the method's own numerical error (quadrature)
            gap = total - (full - ref)
            error = f" (numerical error {gap:.2g})" if abs(gap) > 1e-5 * scale else ""
            if abs(ref - empty) <= 1e-6 * scale:
                return line + f" = f(x) − f(∅){error}"
            return (line + f" = f(x) − f(r){error} with f(r) = {ref:.4g}, r = {b['reference']} "
                    f"(not f(x) − f(∅) = {full - empty:.4g})")
        if abs(total - (full - empty)) <= 1e-5 * scale:
            return line + " = f(x) − f(∅)"
        return line + f" (f(x) − f(∅) = {full - empty:.4g}: {self.method}'s scores are not complete against ∅)"

    def describe(self) -> str:
        """What was explained, in lines of text: f in words, the masking, the empty coalition, the method, the
        estimator and :meth:`value_line` (the terminal, the report and the notebook view show these)."""
        ex = self.metadata.get("explained") or {}
        labels = (("f", "f"), ("masking", "masking"), ("empty", "empty coalition"), ("method", "method"),
                  ("estimator", "computed"))
        lines = [f"{label}: {ex[key]}" for key, label in labels if ex.get(key)]
        return "\n".join(lines + [self.value_line()])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """``np.asarray(res)`` is the matrix M (row = target, column = source)."""
        return self.matrix.copy() if dtype is None else self.matrix.astype(dtype)

    def to_shapiq(self):
        """The result as a shapiq ``InteractionValues`` of order 2 (mapping in :func:`metagame.results.interop.to_shapiq`)."""
        from .interop import to_shapiq

        return to_shapiq(self)

    def __repr__(self) -> str:
        kind = "exact" if self.exact else "estimated"
        return (
            f"MetaAttribution(d={self.n_players}, method={self.method!r}, variant={self.variant!r}, "
            f"value={self.value!r}, {kind}, n_evaluations={self.n_evaluations})"
        )

    def _repr_html_(self) -> str:
        """Notebook view (:func:`metagame.results.html.result_html`): what f is, the matrix or the top pairs."""
        from .html import result_html

        return result_html(self)

    def to_dataframe(self, input_id: str | None = None):
        """The entries in long format (pandas): one row per (target i, source j) with labels, kinds, value = M[i, j],
        stderr (0 when exact) and the first-order attribution of each; ``input_id`` adds that column."""
        from .aggregate import long_records, records_dataframe

        return records_dataframe(long_records(self, input_id))

    # ------------------------------------------------------------------ save / load
    def to_dict(self) -> dict:
        """JSON-ready dictionary (arrays as nested lists; NaN/inf as strings)."""
        added = {k: v for k, v in (("library", "metagame"), ("version", __version__)) if k not in self.metadata}
        return {
            "format": FORMAT,
            "metadata": {**added, **exact_json(self.metadata)},
            "saved_keys": sorted(added),
            "players": list(self.players),
            "player_kinds": self.player_kinds,
            "method": self.method,
            "variant": self.variant,
            "value": self.value,
            "exact": bool(self.exact),
            "n_evaluations": int(self.n_evaluations),
            "n_model_rows": None if self.n_model_rows is None else int(self.n_model_rows),
            "matrix": [[encode_float(v) for v in row] for row in self.matrix.tolist()],
            "first_order": [encode_float(v) for v in self.first_order.tolist()],
            "stderr": None if self.stderr is None else [[encode_float(v) for v in row] for row in self.stderr.tolist()],
            "budget": (self.metadata.get("parameters") or {}).get("budget"),
            "model": _model_name(self.metadata),
            "context": exact_json(self.context),
            **{k: plain_json(v) for k, v in self.context.items() if k not in _RESERVED},
            "extras": {k: array_to_json(v) for k, v in self.extras.items()},
        }

    def save(self, path: str | Path) -> Path:
        """Write JSON to ``path`` (large extras go to ``<path>.npz`` beside it). Returns the path."""
        path = Path(path)
        if path.suffix != ".json":
            path = path.with_suffix(".json")
        path.parent.mkdir(parents=True, exist_ok=True)
        data = self.to_dict()
        if "saved" not in data["metadata"]:
            data["metadata"]["saved"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            data["saved_keys"] = sorted([*data["saved_keys"], "saved"])
        big = {k: v for k, v in self.extras.items() if v.size > SIDECAR_THRESHOLD or k in SIDECAR_KEYS}
        sidecar = path.with_suffix(".npz")
        if big:
            np.savez_compressed(sidecar, **big)
            data["extras"] = {k: ({"sidecar": sidecar.name, "key": k} if k in big else v) for k, v in data["extras"].items()}
        elif sidecar.exists():
            sidecar.unlink()  # stale side-car of an earlier save to the same path
        path.write_text(json.dumps(data, indent=1, allow_nan=False))
        return path

    @classmethod
    def from_dict(cls, data: Any, base: Path | None = None, source: str = "the data") -> "MetaAttribution":
        """A result from the dictionary :meth:`to_dict` wrote. ``base``: the folder side-cars are read from (a
        side-car must lie inside it); ``source`` names the file in errors."""
        if not isinstance(data, dict):
            raise MetagameError(f"{source} is not a metagame result: it holds a JSON {type(data).__name__}, not an object")
        if data.get("format") != FORMAT:
            raise MetagameError(f"{source} is not a metagame result (format {data.get('format')!r}; expected {FORMAT!r})")
        missing = [k for k in ("players", "matrix", "first_order", "method", "variant", "value", "exact") if k not in data]
        if missing:
            raise MetagameError(f"{source} is missing the field(s) {missing}; it was not written by MetaAttribution.save")
        players = data["players"]
        if not isinstance(players, list):
            raise MetagameError(f"{source}: 'players' must be a list of labels")
        d = len(players)

        def square(name: str, rows: Any) -> np.ndarray:
            try:
                arr = np.array([[decode_float(v) for v in row] for row in rows], dtype=np.float64)
            except (TypeError, ValueError):
                raise MetagameError(f"{source}: {name!r} is not a matrix of numbers") from None
            if arr.shape != (d, d):
                raise MetagameError(f"{source}: {name!r} has shape {arr.shape} but there are {d} players; expected ({d}, {d})")
            return arr

        extras = {}
        root = (base or Path(".")).resolve()
        for k, v in (data.get("extras") or {}).items():
            if isinstance(v, dict) and "sidecar" in v:
                extras[k] = _read_sidecar(root, v, k, source)
            else:
                try:
                    extras[k] = array_from_json(v)
                except (KeyError, TypeError, ValueError):
                    raise MetagameError(f"{source}: extra {k!r} is not an array written by MetaAttribution.save") from None
        try:
            first = np.array([decode_float(v) for v in data["first_order"]], dtype=np.float64)
        except (TypeError, ValueError):
            raise MetagameError(f"{source}: 'first_order' is not a list of numbers") from None
        meta = from_exact_json(dict(data.get("metadata") or {}))
        saved_info = {k: meta.pop(k) for k in data.get("saved_keys") or () if k in meta}
        try:
            result = cls(
                matrix=square("matrix", data["matrix"]),
                first_order=first,
                players=players,
                method=data["method"],
                variant=data["variant"],
                value=data["value"],
                exact=bool(data["exact"]),
                stderr=None if data.get("stderr") is None else square("stderr", data["stderr"]),
                n_evaluations=int(data.get("n_evaluations", 0)),
                n_model_rows=data.get("n_model_rows"),
                player_kinds=data.get("player_kinds"),
                metadata=meta,
                context=from_exact_json(data.get("context") or {}),
                extras=extras,
            )
        except MetagameError as e:
            raise MetagameError(f"{source}: {e}") from None
        result.saved_info = saved_info
        return result

    @classmethod
    def load(cls, path: str | Path) -> "MetaAttribution":
        """Read a result written by :meth:`save`."""
        path = Path(path)
        if not path.exists():
            raise MetagameError(f"no result file at {path}")
        if path.is_dir():
            raise MetagameError(f"{path} is a folder; pass the result.json file inside it")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise MetagameError(f"{path} is not valid JSON ({e}); pass a result.json written by MetaAttribution.save") from None
        return cls.from_dict(data, base=path.parent, source=str(path))


def _read_sidecar(root: Path, ref: dict, key: str, source: str) -> np.ndarray:
    """One array of a side-car ``.npz`` that must lie inside ``root`` (no absolute or ``..`` paths)."""
    name = ref.get("sidecar")
    if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
        raise MetagameError(f"{source}: the side-car path {name!r} of extra {key!r} must be a file name inside the result's folder")
    file = (root / name).resolve()
    if root not in file.parents:
        raise MetagameError(f"{source}: the side-car path {name!r} of extra {key!r} leaves the result's folder")
    if not file.is_file():
        raise MetagameError(f"{source}: the side-car file {str(file)!r} holding extra {key!r} is missing; copy it next to the JSON file")
    try:
        with np.load(file, allow_pickle=False) as z:
            return z[str(ref.get("key", key))]
    except KeyError:
        raise MetagameError(f"{source}: the side-car {str(file)!r} has no array {ref.get('key', key)!r}") from None
    except Exception as exc:  # noqa: BLE001 - a corrupt or foreign file
        raise MetagameError(f"{source}: cannot read the side-car {str(file)!r} ({exc})") from None


def load(path: str | Path) -> MetaAttribution:
    """Load a :class:`MetaAttribution` saved with ``.save(path)``."""
    return MetaAttribution.load(path)
