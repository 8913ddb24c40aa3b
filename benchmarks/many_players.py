"""Many players (issue 25): our estimators against the paper's xgboost + TreeSHAP estimator at equal attribution calls.

The paper's estimator (used for Gemma-3): sample coalitions; for each target i fit a gradient-boosted tree
surrogate g_i to its game u_i(T) = φ_i(x_{T∪i}) on the evaluated coalitions that contain i; read the surrogate's
Shapley values off with interventional TreeSHAP (background: the empty coalition, explained point: the full one).
Here it is fed *the same coalitions and attribution calls* as our run (every coalition our estimator paid for), for
the same targets. xgboost and shap are benchmark-only dependencies.

Games (inner method gradient×input): ``poly``, a multilinear polynomial with planted pairs, triples and quadruples
whose meta-attributions have a closed form at every d (tests/planted_poly.py), and ``mlp``, a random two-layer tanh
MLP with an exact reference from the exact engine (d ≤ 16 only). Per d and budget (calls = mult × d) it prints the
relative Frobenius error of the off-diagonal entries of the evaluated target rows, the error ratio peer / ours,
the share of finite-stderr entries inside ±1.96·stderr (and the share with stderr = inf), the estimator's own
compute time ÷ the model's time (the attribution calls), and the peak memory the estimator allocated (tracemalloc).
The peer is fitted on at most ``--peer-targets`` target rows (its cost grows with d × trees); errors are compared
on those rows. Run: ``python benchmarks/many_players.py`` (a few minutes; ``--ds 12 16 32`` for a quick look).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

import metagame  # noqa: E402
from metagame.methods.base import AttributionMethod  # noqa: E402
from metagame.methods.registry import get_method  # noqa: E402
from metagame.models.tensor import TensorModel  # noqa: E402
from metagame.run import RunOptions  # noqa: E402
from metagame.run.estimators import estimate_meta_attributions  # noqa: E402
from planted_poly import planted_poly  # noqa: E402

DS = [12, 16, 24, 32, 64, 128, 256]
#: budgets as multiples of d, per d (fewer at large d so that the run stays a few minutes on 2 cores)
MULTS = {12: [20, 100], 16: [20, 100], 24: [20, 100], 32: [20, 100], 64: [20], 128: [20], 256: [20]}
#: estimators run per d (the Gaussian-process estimator costs O(d·n³); it is run where it is the default or near);
#: the first one's coalitions feed the peer (the default's: stratified up to d = 24, sparse beyond)
OURS = {d: (["stratified", "sparse"] if d <= 24 else ["sparse", "stratified"] if d <= 32 else ["sparse"])
        + (["regression"] if d <= 64 else []) + ["montecarlo"] for d in DS}


class Recorder(AttributionMethod):
    """The inner method, recording every coalition attributed, its attribution vector and the model's time."""

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


def game(kind: str, d: int, seed: int):
    """``(f, x, exact M)``: the planted polynomial (closed form) or a random MLP (exact engine, d ≤ 16)."""
    if kind == "poly":
        f, x, m, _ = planted_poly(d, seed, pairs=2 * d, triples=d, quads=d // 2)
        return f, x, m
    g = torch.Generator().manual_seed(seed)
    w1 = torch.randn(d, 24, generator=g, dtype=torch.float64) * 1.5 / d**0.5
    w2 = torch.randn(24, generator=g, dtype=torch.float64) / 24**0.5
    x = torch.randn(d, generator=g, dtype=torch.float64)
    f = lambda z: torch.tanh(z @ w1) @ w2  # noqa: E731
    return f, x, metagame.meta_attributions(f, x, method="gradient_x_input").matrix


def run_one(f, x, exact, name: str, budget: int, seed: int, targets: np.ndarray, peer: bool):
    d = len(x)
    rec = Recorder(get_method("gradient_x_input"))
    tracemalloc.start()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = estimate_meta_attributions(TensorModel(f, x), rec, RunOptions(budget=budget, seed=seed, estimator=name))
    wall = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    off = ~np.eye(d, dtype=bool)[targets]
    ref = exact[targets]
    err = np.abs(est.matrix[targets] - ref)[off]
    se = est.stderr[targets][off]
    fin = np.isfinite(se)
    out = {
        "err": float(np.linalg.norm(err) / np.linalg.norm(ref[off])),
        "cov": float(np.mean(err[fin] <= 1.96 * se[fin])) if fin.any() else float("nan"),
        "inf": float(np.mean(~fin)),
        "far": int(np.sum(err > 10 * se + 1e-12)),
        "own_s": wall - rec.seconds, "model_s": rec.seconds, "calls": est.n_evaluations, "peak_mb": peak / 2**20,
    }
    if peer:
        rows, phi = np.concatenate(rec.rows), np.concatenate(rec.phi)
        t0 = time.perf_counter()
        m_peer = paper_estimator(rows, phi, targets, seed)
        out["peer_s"] = time.perf_counter() - t0
        out["peer_err"] = float(np.linalg.norm((m_peer - ref)[off]) / np.linalg.norm(ref[off]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description="our estimators vs the paper's xgboost + TreeSHAP estimator, many players")
    ap.add_argument("--ds", type=int, nargs="+", default=DS)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--kinds", nargs="+", default=["poly", "mlp"], choices=["poly", "mlp"])
    ap.add_argument("--peer-targets", type=int, default=12, help="target rows the peer is fitted for (default 12)")
    args = ap.parse_args()
    print(f"inner gradient×input; seeds {args.seeds}; peer fitted on at most {args.peer_targets} target rows, "
          "errors compared on those rows; cov: share of finite-stderr entries inside ±1.96·stderr (inf share); "
          "own/model: the estimator's compute time ÷ the attribution calls' time; peak: estimator allocations")
    print("| game | d | calls | estimator | rel. error | peer rel. error | peer ÷ ours | cov (inf) | >10σ "
          "| own s | own ÷ model | peak MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    t_all = time.time()
    for kind in args.kinds:
        for d in args.ds:
            if kind == "mlp" and d > 16:
                continue
            for mult in MULTS.get(d, [20]):
                budget = mult * d
                peer_err = None
                for name in OURS.get(d, ["montecarlo"]):
                    cells = []
                    for seed in args.seeds:
                        f, x, exact = game(kind, d, 100 + seed)
                        targets = np.sort(np.random.default_rng(seed).permutation(d)[: args.peer_targets])
                        cells.append(run_one(f, x, exact, name, budget, seed, targets, peer=name == OURS[d][0]))
                    mean = {k: float(np.nanmean([c[k] for c in cells])) for k in cells[0]}
                    peer_err = mean.get("peer_err", peer_err)  # fed the first estimator's coalitions
                    peer = f"{peer_err:.4f}" if "peer_err" in mean else ""
                    ratio = f"{peer_err / mean['err']:.1f}×"
                    print(f"| {kind} | {d} | {int(mean['calls'])} | {name} | {mean['err']:.4f} | {peer} | {ratio} | "
                          f"{mean['cov']:.3f} ({mean['inf']:.0%}) | {int(mean['far'])} | {mean['own_s']:.2f} | "
                          f"{mean['own_s'] / max(mean['model_s'], 1e-9):.1f} | {mean['peak_mb']:.0f} |", flush=True)
    print(f"total time {time.time() - t_all:.0f} s")


if __name__ == "__main__":
    main()
