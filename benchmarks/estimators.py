"""Shared-sample estimators vs the per-target approach at equal attribution calls (issue 3).

Random MLP with d = 16 players, inner Integrated Gradients (16 steps) and gradient×input. Exact
reference: the exact engine (2^16 coalitions). For budgets 500 … 16,000 attribution calls we report
the relative Frobenius error ||M̂ − M||_F / ||M||_F averaged over seeds for

* ``stratified`` (the default), ``regression`` and ``montecarlo`` (metagame.meta.sampling: every coalition
  feeds every target),
* ``per-target KernelSHAP`` / ``per-target permutation``: each target i gets budget/d calls of its own
  coalitions and shapiq 1.4.1's KernelSHAP (pairing trick) or PermutationSamplingSV estimates the
  Shapley values of its (d−1)-player game u_i(T) = φ_i(x_{T∪i}) (the paper's scripts' approach),

plus the 95% interval coverage of our estimators (off-diagonal entries) and the error ratio.
Writes docs/figures/estimators.png. Run: ``python benchmarks/estimators.py`` (a few minutes).

``--coverage`` prints instead the coverage table of issues 10 and 23: for d = 10, 12, 14, 16, random MLPs and random
polynomials (pairwise, third- and fourth-order terms), inner gradient×input, Integrated Gradients (16 steps) and
the Shapley value, budgets 1.5d, 2d, 5d, 20d and 200d, the share of off-diagonal entries whose 95% interval
±1.96·stderr holds the exact value, the share with stderr = inf, and how many entries are off by more than 10×
their stderr (about 10 minutes on 2 shared cores; `--ds 10 12 --seeds 0` for a quick look). ``--order 3`` does the
same for the tensor T[i, j, k] of the stratified estimator (exact tensor: each target's Meta-SV from the table).
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np
import torch

import metagame
from metagame.games.masked import AttributionGame
from metagame.methods.base import AttributionMethod
from metagame.methods.registry import get_method
from metagame.domains.tensors.adapter import TensorModel
from metagame.players.coalitions import coalition_index
from metagame.run import RunOptions
from metagame.run.estimators import estimate_meta_attributions
from metagame.run.exact import attribution_table, value_table
from metagame.run.tables import metagame_from_table
from metagame.solvers.exact import restricted_attributions

D = 16
BUDGETS = [500, 1000, 2000, 4000, 8000, 16000]
SEEDS = [0, 1, 2]
METHODS = {"integrated_gradients": {"n_steps": 16}, "gradient_x_input": {}}
FIGURE = os.path.join(os.path.dirname(__file__), "..", "docs", "figures", "estimators.png")


def make_model():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(D, 32), torch.nn.Tanh(), torch.nn.Linear(32, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1)
    ).double()
    x = torch.randn(D, dtype=torch.float64)
    return (lambda z: net(z)[:, 0]), x


def per_target(f, x, method: str, kwargs: dict, budget: int, seed: int, kind: str) -> tuple[np.ndarray, int]:
    """Each target pays for its own budget/d coalitions; shapiq estimates its (d−1)-player game."""
    from shapiq.approximator import KernelSHAP, PermutationSamplingSV

    adapter = TensorModel(f, x)
    inner = get_method(method, kwargs)
    out = np.zeros((D, D))
    per = budget // D
    calls = 0
    for i in range(D):
        game = AttributionGame(adapter, inner, cache=True)  # a target's own calls; its repeats are free
        others = np.array([j for j in range(D) if j != i])
        out[i, i] = game(np.eye(D, dtype=bool)[i : i + 1])[0, i]

        def u(coalitions, i=i, others=others, game=game):
            coalitions = np.atleast_2d(coalitions)
            rows = np.zeros((len(coalitions), D), dtype=bool)
            rows[:, others] = coalitions
            rows[:, i] = True
            return game(rows)[:, i]

        if kind == "kernelshap":
            approx = KernelSHAP(n=D - 1, pairing_trick=True, random_state=seed * 1000 + i)
        else:
            approx = PermutationSamplingSV(n=D - 1, random_state=seed * 1000 + i)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # the target's empty coalition is its singleton {i}, already paid (cached)
            if kind == "kernelshap":
                iv = approx.approximate(per, u)
            else:
                iv = approx.approximate(per, u, batch_size=1)
        out[i, others] = iv.get_n_order_values(1)
        calls += game.n_evaluations
    return out, calls


# ---------------------------------------------------------------------------------------------------- coverage
COVERAGE_DS = [10, 12, 14, 16]
COVERAGE_MULTS = [1.5, 2, 5, 20, 200]
COVERAGE_METHODS = {"gradient_x_input": {}, "integrated_gradients": {"n_steps": 16}, "shapley": {}}


def random_game(kind: str, d: int, seed: int):
    """A random model and input: ``mlp`` (two tanh layers of 24) or ``poly`` (linear, ~30% of the pairs, d triples
    and d/2 quadruples of features, Gaussian coefficients)."""
    g = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0):
        return torch.randn(*shape, generator=g, dtype=torch.float64) * scale

    x = randn(d)
    if kind == "mlp":
        w1, b1, w2, w3 = randn(d, 24, scale=1.5 / d**0.5), randn(24, scale=0.3), randn(24, 24, scale=1.5 / 24**0.5), randn(24, scale=24**-0.5)
        return (lambda z: torch.tanh(torch.tanh(z @ w1 + b1) @ w2) @ w3), x
    a = randn(d)
    pairs = torch.triu(randn(d, d, scale=0.7), 1) * (torch.rand(d, d, generator=g) < 0.3)
    triples = torch.stack([torch.randperm(d, generator=g)[:3] for _ in range(d)])
    quads = torch.stack([torch.randperm(d, generator=g)[:4] for _ in range(max(d // 2, 1))])
    c3, c4 = randn(len(triples), scale=0.5), randn(len(quads), scale=0.3)

    def f(z):
        out = z @ a + ((z @ pairs) * z).sum(dim=1)
        out = out + torch.prod(z[:, triples], dim=2) @ c3
        return out + torch.prod(z[:, quads], dim=2) @ c4

    return f, x


class TableLookup(AttributionMethod):
    """φ(f, x_S) read from a finished table (the estimators see attribution vectors only; one table serves every
    estimator, budget and seed)."""

    name = "table"

    def __init__(self, table: np.ndarray):
        self.table = torch.as_tensor(table)

    def attribute(self, model, coalitions):
        return self.table[torch.as_tensor(coalition_index(coalitions))]


def attribution_table_of(f, x, method: str, kwargs: dict) -> np.ndarray:
    """φ(f, x_S) for all 2^d coalitions (the exact route's table)."""
    model = TensorModel(f, x)
    if method == "shapley":
        return restricted_attributions(value_table(model), "shapley")
    table, _ = attribution_table(model, get_method(method, kwargs), include_empty=True)
    return table[:, : len(x)]


def exact_tensor(phi: np.ndarray) -> np.ndarray:
    """T[i, j, k] from a full attribution table: T[i, ·, ·] is the Meta-SV of u_i(T) = φ_i(x_{T∪i}) (SPEC)."""
    from metagame.run.tables import meta_shapley_from_values

    d = phi.shape[1]
    rows = ((np.arange(2**d)[:, None] >> np.arange(d)) & 1).astype(bool)
    tensor = np.zeros((d, d, d))
    for i in range(d):
        tensor[i, i, i] = phi[1 << i, i]
        cols = np.flatnonzero(np.arange(d) != i)
        sel = rows[:, i]
        table = np.zeros(2 ** (d - 1))
        table[coalition_index(rows[sel][:, cols])] = phi[sel, i] - phi[1 << i, i]
        tensor[i][np.ix_(cols, cols)] = meta_shapley_from_values(table)
    return tensor


def coverage_table(ds: list[int], seeds: list[int], games_per_kind: int = 2, order: int = 2) -> None:
    """Print the coverage table: estimator × budget (1.5d … 200d) × d (order 3: the stratified tensor)."""
    names = list(ESTIMATORS) if order == 2 else ["stratified"]
    cells: dict[tuple[str, int, int], dict] = {}
    t0 = time.time()
    for d in ds:
        tables = []
        for kind in ("mlp", "poly"):
            for gi in range(games_per_kind):
                f, x = random_game(kind, d, 1000 * d + 10 * gi + (kind == "poly"))
                for method, kwargs in COVERAGE_METHODS.items():
                    phi = attribution_table_of(f, x, method, kwargs)
                    tables.append((phi, metagame_from_table(phi) if order == 2 else exact_tensor(phi)))
        off = ~np.eye(d, dtype=bool)
        if order == 3:  # T[i, j, k] with j, k ≠ i (the rest are structural zeros and M[i, i])
            off = np.ones((d, d, d), dtype=bool)
            for i in range(d):
                off[i, i, :] = off[i, :, i] = False
        dummy = TensorModel(lambda z: z.sum(dim=1), torch.zeros(d, dtype=torch.float64))
        for name in names:
            for mult in COVERAGE_MULTS:
                inside, n_inf, n_exact, n_all, bad_zero, bad_far, errs = [], 0, 0, 0, 0, 0, []
                for phi, exact in tables:
                    for seed in seeds:
                        opts = RunOptions(budget=int(round(mult * d)), seed=seed, estimator=name, order=order)
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            est = estimate_meta_attributions(dummy, TableLookup(phi), opts)
                        value, stderr = (est.matrix, est.stderr) if order == 2 else (
                            est.tensor, est.tensor_stderr)
                        err, se = np.abs(value - exact)[off], stderr[off]
                        finite = np.isfinite(se) & (se > 0)
                        inside.extend(err[finite] <= 1.96 * se[finite])
                        n_inf += int(np.isinf(se).sum())
                        n_exact += int((se == 0).sum())
                        n_all += se.size
                        bad_zero += int(((se == 0) & (err > 1e-9)).sum())
                        bad_far += int((err > 10 * se + 1e-9).sum())
                        errs.append(np.linalg.norm((value - exact)[off]) / np.linalg.norm(exact[off]))
                cells[(name, mult, d)] = {
                    "cov": float(np.mean(inside)) if inside else None, "inf": n_inf / n_all, "exact": n_exact / n_all,
                    "bad_zero": bad_zero, "bad_far": bad_far, "err": float(np.mean(errs)), "n": n_all,
                }
        print(f"d = {d} done ({time.time() - t0:.0f} s)", flush=True)

    def show(c: dict) -> str:
        if c["cov"] is None or c["inf"] > 0.95:  # (almost) nothing identified: no coverage to speak of
            return "exact" if c["exact"] == 1.0 else f"— ({c['inf']:.1%} inf)"
        note = f" ({c['inf']:.0%} inf)" if c["inf"] >= 0.005 else ""
        far = f" [{c['bad_far']} > 10σ]" if c["bad_far"] else ""
        return f"{c['cov']:.3f}{note}{far}"

    print()
    what = "off-diagonal entries of M" if order == 2 else "entries T[i, j, k] (j, k ≠ i) of the order-3 tensor"
    print(f"95% interval coverage of {what} (seeds {seeds}; {2 * games_per_kind * len(COVERAGE_METHODS)} "
          "games per d: random MLPs and polynomials × gradient×input, IG, Shapley). Coverage counts entries with "
          "0 < stderr < inf; entries with stderr = inf (not identified by the calls) are left out and their share is "
          "shown; 'exact': every coalition enumerated (stderr 0, exact values); [n > 10σ]: entries off by more than 10× "
          "their stderr.")
    print("| estimator | budget | " + " | ".join(f"d = {d}" for d in ds) + " |")
    print("|---|---|" + "---|" * len(ds))
    for name in names:
        for mult in COVERAGE_MULTS:
            print(f"| {name} | {mult:g}d | " + " | ".join(show(cells[(name, mult, d)]) for d in ds) + " |")
    print()
    print("relative Frobenius error (mean):")
    print("| estimator | budget | " + " | ".join(f"d = {d}" for d in ds) + " |")
    print("|---|---|" + "---|" * len(ds))
    for name in names:
        for mult in COVERAGE_MULTS:
            print(f"| {name} | {mult:g}d | " + " | ".join(f"{cells[(name, mult, d)]['err']:.4f}" for d in ds) + " |")
    bad_zero = sum(c["bad_zero"] for c in cells.values())
    bad_far = sum(c["bad_far"] for c in cells.values())
    print(f"entries with stderr 0 that are not exact: {bad_zero}; entries off by more than 10× their stderr: {bad_far}")
    print(f"total time {time.time() - t0:.0f} s")


def main() -> None:
    import argparse

    global BUDGETS, SEEDS, FIGURE
    ap = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0] if __doc__ else None)
    ap.add_argument("--budgets", type=int, nargs="+", default=BUDGETS, help=f"budgets (default {BUDGETS})")
    ap.add_argument("--seeds", type=int, nargs="+", default=SEEDS, help=f"seeds averaged over (default {SEEDS})")
    ap.add_argument("--quick", action="store_true", help="budgets 1000 and 4000, one seed, no figure")
    ap.add_argument("--figure", default=FIGURE, help="where to save the log-log plot ('' for none)")
    ap.add_argument("--coverage", action="store_true", help="print the coverage table (estimator × budget × d) instead")
    ap.add_argument("--ds", type=int, nargs="+", default=COVERAGE_DS, help=f"--coverage: numbers of players (default {COVERAGE_DS})")
    ap.add_argument("--mults", type=float, nargs="+", default=COVERAGE_MULTS,
                    help=f"--coverage: budgets as multiples of d (default {COVERAGE_MULTS})")
    ap.add_argument("--order", type=int, choices=(2, 3), default=2, help="--coverage: 3 for the stratified tensor")
    args = ap.parse_args()
    if args.coverage:
        COVERAGE_MULTS[:] = args.mults
        coverage_table(args.ds, args.seeds if args.seeds != SEEDS else [0, 1], order=args.order)
        return
    BUDGETS, SEEDS, FIGURE = args.budgets, args.seeds, args.figure
    if args.quick:
        BUDGETS, SEEDS, FIGURE = [1000, 4000], [0], ""
    f, x = make_model()
    ours = ["stratified", "regression", "montecarlo"]
    names = ours + ["per-target KernelSHAP", "per-target permutation"]
    rows = []
    errors = {m: {n: [] for n in names} for m in METHODS}
    coverage = {m: {n: [] for n in ours} for m in METHODS}
    t0 = time.time()
    for method, kwargs in METHODS.items():
        exact = metagame.meta_attributions(f, x, method=method, method_kwargs=kwargs)
        ref = exact.matrix
        off = ~np.eye(D, dtype=bool)
        for budget in BUDGETS:
            line = {}
            for name in names:
                errs, covs, calls, secs = [], [], [], []
                for seed in SEEDS:
                    t = time.time()
                    if name in ours:
                        res = metagame.meta_attributions(
                            f, x, method=method, method_kwargs=kwargs, budget=budget, seed=seed, estimator=name
                        )
                        est, n = res.matrix, res.n_evaluations
                        covs.append(np.mean((np.abs(est - ref) <= 1.96 * res.stderr)[off]))
                    else:
                        kind = "kernelshap" if "KernelSHAP" in name else "permutation"
                        est, n = per_target(f, x, method, kwargs, budget, seed, kind)
                    secs.append(time.time() - t)
                    assert n <= budget, (name, n, budget)
                    calls.append(n)
                    errs.append(np.linalg.norm(est - ref) / np.linalg.norm(ref))
                errors[method][name].append(float(np.mean(errs)))
                if covs:
                    coverage[method][name].append(float(np.mean(covs)))
                line[name] = (float(np.mean(errs)), float(np.mean(covs)) if covs else None, int(np.mean(calls)), float(np.mean(secs)))
            rows.append((method, budget, line))
    # ------------------------------------------------------------------ table
    print(f"d = {D}, seeds = {SEEDS}, relative Frobenius error (mean over seeds); cov = 95% CI coverage")
    hdr = (
        "| inner | budget | stratified | regression | montecarlo | per-target KernelSHAP | per-target permutation "
        "| best per-target / stratified |"
    )
    print(hdr)
    print("|" + "---|" * 8)
    for method, budget, line in rows:
        st, reg, mc, ks, pm = (line[n] for n in names)
        best_pt = min(ks[0], pm[0])

        def fmt(err: float) -> str:
            return f"{err:.4f}" if err < 10 else "diverged"

        print(
            f"| {method} | {budget} | {st[0]:.4f} (cov {st[1]:.2f}) | {reg[0]:.4f} (cov {reg[1]:.2f}) | "
            f"{mc[0]:.4f} (cov {mc[1]:.2f}) | {fmt(ks[0])} | {fmt(pm[0])} | {best_pt / st[0]:.1f}× |"
        )
    print(f"total time {time.time() - t0:.0f} s")
    if not FIGURE:
        return
    # ------------------------------------------------------------------ plot
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METHODS), figsize=(11, 4.2), sharey=True)
    styles = {"stratified": "D-", "regression": "o-", "montecarlo": "s-", "per-target KernelSHAP": "^--", "per-target permutation": "v--"}
    for ax, method in zip(axes, METHODS):
        for name in names:
            errs = [e if e < 10 else np.nan for e in errors[method][name]]  # a diverged fit is left out
            ax.loglog(BUDGETS, errs, styles[name], label=name)
        ax.axhline(0.05, color="grey", lw=0.8, ls=":")
        ax.set_title(f"inner {method} (d = {D})")
        ax.set_xlabel("attribution calls (budget)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("relative Frobenius error")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(FIGURE), exist_ok=True)
    fig.savefig(FIGURE, dpi=120)
    print(f"wrote {os.path.normpath(FIGURE)}")


if __name__ == "__main__":
    main()
