"""Exact meta-attributions: speed against the model-work floor and against a careful user's pipeline.

Measured side by side in one run (best of ``--repeats``), MLP d → 64 → 64 → 1 (tanh, float32), inner
Integrated Gradients with ``--steps`` Gauss-Legendre nodes:

(a) ``metagame.meta_attributions`` ÷ one plain batched forward+backward over the same 2^d·steps rows
    (the model work every exact method must do; target ≤ 1.3);
(b) ``metagame.meta_attributions`` ÷ today's pipeline: one batched Captum IG call over all 2^d masked
    inputs (``internal_batch_size``), then shapiq's exact Shapley value of each target's (d−1)-player
    game u_i(T) = φ_i(x_{T∪{i}}) (target ≤ 0.2);
(c) model rows used (≤ 2^d·steps), and exact Meta-SV at ``--d-sv`` players (rows ≤ 2^d);
(d) third order: ``order=3`` time ÷ ``order=2`` time (same run otherwise) at d = 12 and ``--d-order3`` (the tensor
    is post-processing of the same attribution table; target ≤ 1.5 at d = 12 with IG 16 steps).

    python benchmarks/exact_metagame.py                      # d = 12, 16 steps, 1 thread, CPU time
    python benchmarks/exact_metagame.py --threads 2 --clock wall
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import metagame
from metagame.players import all_coalitions
from metagame.domains.tensors.adapter import auto_batch_size
from metagame.players.coalitions import coalition_index


def make_mlp(d: int, hidden: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(d, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1)
    )
    for p in net.parameters():
        p.requires_grad_(False)  # the explained model is fixed; gradients are taken w.r.t. inputs only
    return net


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def timed(fn, clock) -> tuple[float, object]:
    t0 = clock()
    out = fn()
    return clock() - t0, out


def ours(f, x, b, steps: int):
    return metagame.meta_attributions(f, x, b, method="integrated_gradients", method_kwargs={"n_steps": steps})


def floor_forward_backward(f, rows: torch.Tensor) -> None:
    """One batched forward+backward over ``rows`` (gradient of every row's output w.r.t. its input)."""
    z = rows.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(f(z).sum(), z)
    return g


def floor_chunked(f, rows: torch.Tensor, batch_size: int) -> None:
    """The same forward+backward in chunks of ``batch_size`` rows (the batch size the engine uses)."""
    for start in range(0, rows.shape[0], batch_size):
        floor_forward_backward(f, rows[start : start + batch_size])


def captum_shapiq_pipeline(f, x, b, steps: int, internal_batch_size: int) -> np.ndarray:
    """Captum IG on all 2^d masked inputs, then shapiq's exact SV per target (the metagame by hand)."""
    from captum.attr import IntegratedGradients
    from shapiq import ExactComputer

    d = x.shape[0]
    coalitions = all_coalitions(d)
    masked = torch.where(torch.as_tensor(coalitions), x, b)
    ig = IntegratedGradients(f)
    table = ig.attribute(masked, b.expand_as(masked), n_steps=steps, method="gausslegendre", internal_batch_size=internal_batch_size)
    table = table.detach().double().numpy()  # table[S, i] = φ_i(x_S)
    matrix = np.zeros((d, d))
    for i in range(d):
        others = [j for j in range(d) if j != i]

        def game(t: np.ndarray, i=i, others=others) -> np.ndarray:
            full = np.zeros((len(t), d), dtype=bool)
            full[:, others] = np.asarray(t, dtype=bool)
            full[:, i] = True
            return table[coalition_index(full), i]

        sv = ExactComputer(game, n_players=d - 1)("SV")
        for pos, j in enumerate(others):
            matrix[i, j] = sv[(pos,)]
        matrix[i, i] = table[1 << i, i]
    return matrix


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d", type=int, default=12, help="players (input features) of the IG benchmark")
    ap.add_argument("--steps", type=int, default=16, help="IG quadrature nodes")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--d-sv", type=int, default=14, help="players of the Meta-SV row count check")
    ap.add_argument("--threads", type=int, default=1, help="torch threads, the same for every side")
    ap.add_argument(
        "--clock", choices=sorted(CLOCKS), default="cpu",
        help="cpu: process CPU time (robust on a shared machine; use with --threads 1); wall: elapsed time",
    )
    ap.add_argument("--repeats", type=int, default=3, help="timings are the best of this many runs")
    ap.add_argument("--internal-batch-size", type=int, default=4096, help="Captum's internal_batch_size (rows)")
    ap.add_argument("--skip-pipeline", action="store_true", help="skip the Captum + shapiq pipeline (b)")
    ap.add_argument("--d-order3", type=int, default=16, help="second size of the order-3 ÷ order-2 measurement (d)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    d, steps = args.d, args.steps
    net = make_mlp(d, args.hidden, seed=0)
    f = lambda z: net(z)[:, 0]
    x = torch.randn(d)
    b = torch.zeros(d)

    # the floor: the same 2^d·steps path points, one forward+backward
    alphas, _ = metagame.methods.quadrature(steps)
    masked = torch.where(torch.as_tensor(all_coalitions(d)), x, b)
    path = (b + torch.as_tensor(alphas, dtype=torch.float32)[None, :, None] * (masked - b)[:, None, :]).reshape(-1, d)

    clock = CLOCKS[args.clock]
    engine_rows = auto_batch_size(x)  # rows per model call metagame.meta_attributions picks for this input
    sides = {
        "floor": lambda: floor_forward_backward(f, path),
        "floor_chunked": lambda: floor_chunked(f, path, engine_rows),
        "ours": lambda: ours(f, x, b, steps),
    }
    if not args.skip_pipeline:
        sides["pipeline"] = lambda: captum_shapiq_pipeline(f, x, b, steps, args.internal_batch_size)
    for fn in sides.values():  # warm-up (imports, allocator)
        fn()
    best = {k: float("inf") for k in sides}
    outs = {}
    for _ in range(args.repeats):  # interleaved, so every side sees the same machine load
        for k, fn in sides.items():
            t, outs[k] = timed(fn, clock)
            best[k] = min(best[k], t)
    t_floor, t_ours, res = best["floor"], best["ours"], outs["ours"]

    rows_limit = 2**d * steps
    table = [
        ("(a) ours / forward+backward floor", f"{t_ours / t_floor:.3f}", "<= 1.3"),
        (f"    ours / same floor in {engine_rows}-row chunks", f"{t_ours / best['floor_chunked']:.3f}", "(info)"),
    ]
    lines = [
        f"exact meta-attributions, MLP {d}->{args.hidden}->{args.hidden}->1 tanh float32, IG {steps} steps, "
        f"{args.threads} thread(s), {args.clock} clock, best of {args.repeats} interleaved runs",
        f"  ours (metagame.meta_attributions): {t_ours * 1e3:9.1f} ms",
        f"  floor (one forward+backward, {path.shape[0]} rows): {t_floor * 1e3:9.1f} ms",
        f"  floor in {engine_rows}-row chunks (engine's batch size): {best['floor_chunked'] * 1e3:9.1f} ms",
    ]
    if not args.skip_pipeline:
        t_pipe, pipe = best["pipeline"], outs["pipeline"]
        diff = float(np.max(np.abs(pipe - res.matrix)))
        lines.append(f"  Captum IG + shapiq SV per target:  {t_pipe * 1e3:9.1f} ms  (max |ours - pipeline| = {diff:.2e})")
        table.append(("(b) ours / Captum + shapiq pipeline", f"{t_ours / t_pipe:.3f}", "<= 0.2"))
    table.append((f"(c) model rows used (d={d})", f"{res.n_model_rows}", f"<= {rows_limit}"))

    # Meta-SV: the Möbius route needs only the 2^d model values
    net_sv = make_mlp(args.d_sv, args.hidden, seed=1)
    f_sv = lambda z: net_sv(z)[:, 0]
    t_sv, sv = timed(lambda: metagame.meta_attributions(f_sv, torch.randn(args.d_sv), method="shapley"), clock)
    lines.append(f"  Meta-SV d={args.d_sv}: {t_sv * 1e3:9.1f} ms, route {sv.metadata['parameters']['route']}")
    table.append((f"    Meta-SV model rows (d={args.d_sv})", f"{sv.n_model_rows}", f"<= {2**args.d_sv}"))

    # third order: order=3 ÷ order=2, interleaved (the tensor is post-processing of the same table)
    for d3 in sorted({12, args.d_order3}):
        net3 = make_mlp(d3, args.hidden, seed=2)
        f3 = lambda z, net3=net3: net3(z)[:, 0]
        x3 = torch.randn(d3)
        run = lambda order: metagame.meta_attributions(f3, x3, method="integrated_gradients",
                                                       method_kwargs={"n_steps": steps}, order=order)
        best3 = {2: float("inf"), 3: float("inf")}
        for _ in range(args.repeats if d3 <= 12 else 1):
            for order in (2, 3):
                t, _ = timed(lambda: run(order), clock)
                best3[order] = min(best3[order], t)
        lines.append(f"  order 3 at d={d3}: {best3[3] * 1e3:9.1f} ms vs order 2 {best3[2] * 1e3:9.1f} ms")
        table.append((f"(d) order-3 time / order-2 time (d={d3}, IG {steps} steps)", f"{best3[3] / best3[2]:.3f}",
                      "<= 1.5" if d3 == 12 else "(info)"))

    print("\n".join(lines))
    print()
    w = max(len(r[0]) for r in table)
    print(f"| {'measure':<{w}} | {'value':>9} | target     |")
    print(f"|{'-' * (w + 2)}|{'-' * 11}|------------|")
    for name, value, target in table:
        print(f"| {name:<{w}} | {value:>9} | {target:<10} |")


if __name__ == "__main__":
    main()
