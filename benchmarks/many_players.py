"""Many players (issue 25): our estimators against the paper's xgboost + TreeSHAP estimator at equal attribution calls.

The paper's estimator (used for Gemma-3): sample coalitions; for each target i fit a gradient-boosted tree
surrogate g_i to its game u_i(T) = φ_i(x_{T∪i}) on the evaluated coalitions that contain i; read the surrogate's
Shapley values off with interventional TreeSHAP (background: the empty coalition, explained point: the full one).
Here it is fed *the same coalitions and attribution calls* as our first estimator's run at each d and budget, for the
same targets. xgboost and shap are benchmark-only dependencies.

Games (inner method gradient×input; builders and references in tests/many_player_games.py):

* ``poly``: a multilinear polynomial with planted pairs, triples and quadruples, closed-form M at every d;
* ``poly6``: the same with planted sets up to size 6 (target games up to order 5, beyond the sparse surrogate's
  order 4), closed-form M at every d;
* ``mlp``: a random two-layer tanh MLP, d = 12 … 256;
* ``lm``: a tiny random Llama-style causal LM whose players are the words of a long prompt, d = 24, 32, 64;
* ``clip``: a tiny random CLIP whose players are the patches of a 14 × 14 grid, d = 196.

References: exact (closed form, or the exact engine for d ≤ 16); beyond, a ``montecarlo`` run with a multiple of the
largest compared budget (mlp 50×, lm 25×, clip 20×; ``--ref-mult``) and its own seed (unbiased; per-entry stderr). Against such a reference the
printed error is noise-corrected: E||est − ref||² = ||est − M||² + Σ stderr_ref² for independent runs, so
``rel. error`` = √max(||est − ref||² − Σ stderr_ref², 0) / ||ref|| and ``raw`` = ||est − ref|| / ||ref||; ``ref se``
is the reference's own relative standard error √Σ stderr_ref² / ||ref||, and ``‡`` marks rows where the reference's
noise is ≥ 25% of the raw squared error (the corrected error is then itself uncertain). Coverage against a sampled
reference tests |est − ref| ≤ 1.96·√(stderr² + stderr_ref²).

Per game, d and budget (calls = mult × d) it prints the relative Frobenius error of the off-diagonal entries of the
evaluated target rows, the peer's error at the same calls and the ratio peer ÷ ours, the share of finite-stderr
entries inside the 95% interval (and the share with stderr = inf), the entries beyond 10σ, the estimator's own
compute time and its ratio to the model's time (the attribution calls), and the peak memory the estimator allocated
(tracemalloc). The peer is fitted on at most ``--peer-targets`` target rows (its cost grows with d × trees); errors
are compared on those rows. Estimators: every one registered in ``metagame.run.estimators.ESTIMATORS`` (a newly
registered one joins automatically), except where its cost rule (``MAX_PLAYERS``) excludes it at that d.

Run: ``python benchmarks/many_players.py`` (every game at its default d's and budgets: about 25–30 minutes on 2
cores, estimated from pieces measured on busy cores, not timed end to end: lm ≈ 9 min (its d = 64 reference alone
≈ 3 min), clip ≈ 4 min (reference 39 200 calls ≈ 3.5 min), poly and mlp the rest), ``--quick`` (4–8 minutes on a loaded 2-core machine: each
game at one small d, budget 20·d, a 20× reference), or select with ``--games``, ``--ds`` (applied to every selected
game), ``--mults``, ``--seeds``, ``--estimators``, ``--ref-mult``, ``--peer-targets``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from metagame.methods.base import AttributionMethod  # noqa: E402
from metagame.methods.registry import get_method  # noqa: E402
from metagame.run import RunOptions  # noqa: E402
from metagame.run.estimators import ESTIMATORS, estimate_meta_attributions, resolve_estimator  # noqa: E402
from many_player_games import METHOD, Game, build_clip, build_lm, build_mlp, build_poly, build_poly6  # noqa: E402

DS = (12, 16, 24, 32, 64, 128, 256)
#: budgets of the tensor games as multiples of d, per d (fewer at large d so that the run stays within its time)
TENSOR_MULTS = {12: [20, 100], 16: [20, 100], 24: [20, 100], 32: [20, 100]}
#: the largest d at which an estimator runs (its own compute grows fast with d: the stratified pairwise surrogate has
#: d(d−1)/2 terms, the regression solves d-sized systems per target); any other registered estimator runs at every d
MAX_PLAYERS = {"stratified": 32, "regression": 64}
#: the reference's noise is flagged when its variance is at least this share of the raw squared error
NOISE_FLAG = 0.25


@dataclass(frozen=True)
class Spec:
    """A game's builder, default d's, budgets (multiples of d per d; default [20]) and reference multiplier."""

    build: Callable[..., Game]
    ds: tuple[int, ...]
    mults: dict[int, list[int]]
    ref_mult: int

    def budgets(self, d: int) -> list[int]:
        return self.mults.get(d, [20])


GAMES = {
    "poly": Spec(build_poly, DS, TENSOR_MULTS, 0),
    "poly6": Spec(build_poly6, DS, TENSOR_MULTS, 0),
    "mlp": Spec(build_mlp, DS, TENSOR_MULTS, 50),
    "lm": Spec(build_lm, (24, 32, 64), {}, 25),
    "clip": Spec(build_clip, (196,), {196: [10]}, 20),
}
#: ``--quick``: small d per game, one budget (20·d), a 20× reference and 6 peer targets
QUICK_DS = {"poly": (16,), "poly6": (32,), "mlp": (24,), "lm": (24,), "clip": (36,)}


def estimators_for(d: int, names: list[str]) -> list[str]:
    """The estimators run at ``d`` (``names`` filtered by ``MAX_PLAYERS``)."""
    return [n for n in names if d <= MAX_PLAYERS.get(n, sys.maxsize)]


class Recorder(AttributionMethod):
    """The inner method, recording every coalition attributed, its attribution vector and the model's time (it has no
    ``path_rule``, so two-tower adapters attribute through it on their joint view)."""

    name = "recorder"

    def __init__(self, inner: AttributionMethod):
        self.inner = inner
        self.rows: list[np.ndarray] = []
        self.phi: list[np.ndarray] = []
        self.seconds = 0.0

    def attribute(self, model, coalitions):
        t = time.perf_counter()
        out = self.inner.attribute(model, coalitions)
        self.seconds += time.perf_counter() - t
        self.rows.append(np.asarray(coalitions, dtype=bool).copy())
        self.phi.append(out.detach().double().numpy()[:, : coalitions.shape[1]].copy())
        return out


def paper_estimator(rows: np.ndarray, phi: np.ndarray, targets: np.ndarray, seed: int) -> np.ndarray:
    """M[i, ·] for ``targets``: xgboost surrogate of u_i on the coalitions containing i, interventional TreeSHAP."""
    import shap
    import xgboost

    d = rows.shape[1]
    _, first = np.unique(np.packbits(rows, axis=1), axis=0, return_index=True)
    rows, phi = rows[first], phi[first]
    out = np.zeros((len(targets), d))
    for r, i in enumerate(targets):
        sel = rows[:, i]
        cols = np.flatnonzero(np.arange(d) != i)
        z, y = rows[sel][:, cols].astype(np.float64), phi[sel, i]
        model = xgboost.XGBRegressor(n_estimators=200, max_depth=4, learning_rate=0.1, subsample=0.8,
                                     random_state=seed, n_jobs=1)
        model.fit(z, y)
        explainer = shap.TreeExplainer(model, data=np.zeros((1, len(cols))), feature_perturbation="interventional")
        out[r, cols] = explainer.shap_values(np.ones((1, len(cols))))[0]
        single = np.flatnonzero((rows.sum(axis=1) == 1) & rows[:, i])[0]
        out[r, i] = phi[single, i]  # M[i, i] = u_i(∅) = φ_i(x_{i}), paid by every run
    return out


@dataclass
class Scored:
    """Errors of one matrix on the compared rows: noise-corrected and raw relative errors."""

    err: float
    raw: float


class Compare:
    """The compared entries of a game (off-diagonal entries of the target rows) and the reference's noise on them."""

    def __init__(self, game: Game, targets: np.ndarray):
        d = len(game.reference)
        self.targets = targets
        self.off = ~np.eye(d, dtype=bool)[targets]
        self.ref = game.reference[targets][self.off]
        self.ref_se = np.zeros_like(self.ref) if game.ref_stderr is None else game.ref_stderr[targets][self.off]
        self.norm = float(np.linalg.norm(self.ref))
        self.ref_var = float(np.sum(self.ref_se**2))
        self.ref_rel_se = np.sqrt(self.ref_var) / self.norm

    def entries(self, m: np.ndarray) -> np.ndarray:
        return m[self.targets][self.off]

    def score(self, m: np.ndarray) -> Scored:
        sq = float(np.sum((self.entries(m) - self.ref) ** 2))
        return Scored(np.sqrt(max(sq - self.ref_var, 0.0)) / self.norm, np.sqrt(sq) / self.norm)


def run_one(game: Game, cmp: Compare, name: str, budget: int, seed: int, peer: bool) -> dict:
    """One estimator run on ``game`` (and the peer on its coalitions when ``peer``): errors, coverage, cost."""
    d = game.model.n_players
    rec = Recorder(get_method(METHOD))
    tracemalloc.start()
    t0 = time.perf_counter()
    est = estimate_meta_attributions(game.model, rec, RunOptions(budget=budget, seed=seed, estimator=name,
                                                                progress=False))
    wall = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    ours = cmp.score(est.matrix)
    err = np.abs(cmp.entries(est.matrix) - cmp.ref)
    se = cmp.entries(est.stderr)
    fin = np.isfinite(se)
    band = np.sqrt(se**2 + cmp.ref_se**2)
    out = {
        "err": ours.err, "raw": ours.raw, "ref_se": cmp.ref_rel_se,
        "cov": float(np.mean(err[fin] <= 1.96 * band[fin])) if fin.any() else float("nan"),
        "inf": float(np.mean(~fin)),
        "far": int(np.sum(err > 10 * band + 1e-12)),
        "own_s": wall - rec.seconds, "model_s": rec.seconds, "calls": est.n_evaluations, "peak_mb": peak / 2**20,
    }
    if peer:
        m_peer = np.zeros((d, d))
        m_peer[cmp.targets] = paper_estimator(np.concatenate(rec.rows), np.concatenate(rec.phi), cmp.targets, seed)
        out["peer_err"] = cmp.score(m_peer).err
    return out


def row(game: str, d: int, name: str, cells: list[dict], peer_err: float) -> str:
    """A table row: the mean over seeds of one estimator's cells."""
    mean = {k: float(np.nanmean([c[k] for c in cells])) for k in cells[0]}
    flag = "‡" if mean["ref_se"] ** 2 >= NOISE_FLAG * mean["raw"] ** 2 > 0 else ""
    peer = f"{peer_err:.4f}" if "peer_err" in mean else ""
    ratio = f"{peer_err / mean['err']:.1f}×" if mean["err"] > 0 else "∞"
    ref_se = f"{mean['ref_se']:.4f}" if mean["ref_se"] > 0 else "exact"
    return (f"| {game} | {d} | {int(mean['calls'])} | {name} | {mean['err']:.4f}{flag} | {mean['raw']:.4f} | {ref_se} | "
            f"{peer} | {ratio} | {mean['cov']:.3f} ({mean['inf']:.0%}) | {int(mean['far'])} | {mean['own_s']:.2f} | "
            f"{mean['own_s'] / max(mean['model_s'], 1e-9):.1f} | {mean['peak_mb']:.0f} |")


def run_game(kind: str, d: int, args) -> tuple[list[str], list[str]]:
    """Table rows and reference notes of one game at one d (every seed, budget and estimator)."""
    spec = GAMES[kind]
    mults = args.mults or spec.budgets(d)
    names = estimators_for(d, args.estimators)
    ref_mult = spec.ref_mult if args.ref_mult is None else args.ref_mult
    cells: dict[tuple[int, str], list[dict]] = {}
    peers: dict[int, list[float]] = {}
    notes = []
    for seed in args.seeds:
        game = spec.build(d, 100 + seed, ref_mult * max(mults) * d)
        notes.append(f"{kind} d={d} seed {seed}: {game.description}; {game.ref_seconds:.1f} s")
        cmp = Compare(game, np.sort(np.random.default_rng(seed).permutation(d)[: args.peer_targets]))
        for mult in mults:
            default = resolve_estimator("auto", d, "shapley", mult * d)  # its coalitions feed the peer
            for name in names:
                cell = run_one(game, cmp, name, mult * d, seed, peer=name == (default if default in names else names[0]))
                cells.setdefault((mult, name), []).append(cell)
                if "peer_err" in cell:
                    peers.setdefault(mult, []).append(cell["peer_err"])
    rows = [row(kind, d, name, cells[mult, name], float(np.mean(peers[mult]))) for mult in mults for name in names]
    return rows, notes


def main() -> None:
    ap = argparse.ArgumentParser(description="our estimators vs the paper's xgboost + TreeSHAP estimator, many players")
    ap.add_argument("--games", nargs="+", default=list(GAMES), choices=list(GAMES))
    ap.add_argument("--ds", type=int, nargs="+",
                    help="players, for every selected game (default: each game's own; clip skips non-square d)")
    ap.add_argument("--mults", type=int, nargs="+", help="budgets as multiples of d (default: per game and d)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--estimators", nargs="+", default=list(ESTIMATORS), choices=list(ESTIMATORS),
                    help="default: every registered estimator, each where its cost rule allows")
    ap.add_argument("--ref-mult", type=int, help="reference calls ÷ the largest compared budget (default: per game)")
    ap.add_argument("--peer-targets", type=int, default=12, help="target rows the peer is fitted for (default 12)")
    ap.add_argument("--quick", action="store_true", help="a few minutes: small d per game, budget 20·d, 20× reference")
    args = ap.parse_args()
    if args.quick:
        args.mults = args.mults or [20]
        args.ref_mult = args.ref_mult or 20
        args.peer_targets = min(args.peer_targets, 6)
    torch.manual_seed(0)
    print(f"inner {METHOD}; seeds {args.seeds}; peer fitted on at most {args.peer_targets} target rows, errors "
          "compared on those rows; rel. error: noise-corrected against a sampled reference (raw: uncorrected; ref se: "
          f"the reference's relative stderr; ‡: reference noise ≥ {NOISE_FLAG:.0%} of the raw squared error); "
          "peer ÷ ours on the corrected errors; cov: share of finite-stderr entries inside ±1.96·√(se² + se_ref²) "
          "(inf share); own ÷ model: the estimator's compute time ÷ the attribution calls' time; peak: estimator "
          "allocations")
    print("| game | d | calls | estimator | rel. error | raw | ref se | peer rel. error | peer ÷ ours | cov (inf) "
          "| >10σ | own s | own ÷ model | peak MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    t_all = time.time()
    notes = []
    for kind in args.games:
        ds = args.ds or (QUICK_DS[kind] if args.quick else GAMES[kind].ds)
        for d in ds:
            if kind == "clip" and int(np.sqrt(d)) ** 2 != d:
                continue
            t0 = time.time()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rows, game_notes = run_game(kind, d, args)
            print("\n".join(rows), flush=True)
            notes += game_notes + [f"{kind} d={d}: {time.time() - t0:.0f} s in all (reference, estimators, peer)"]
    print("\nreferences:\n" + "\n".join(f"- {n}" for n in notes))
    print(f"total time {time.time() - t_all:.0f} s")


if __name__ == "__main__":
    main()
