"""Benchmark: Meta-ConceptAttention routes on a random Flux transformer (diffusers), CPU or GPU.

For d concepts, all 2^d coalitions of one denoising step:

* **decoupled** (concepts do not attend to each other): one partial forward with d concept rows, then a masked
  softmax per coalition;
* **coupled** (concepts attend to each other): one concept stream per coalition, all 2^d streams in one
  partial forward (the image stream is shared: it never sees the concepts);
* **words** (players = prompt words): one masked forward per coalition, many per batch (per-row key masks).

Ratios reported: coupled route ÷ one plain forward of the same batch (2^d rows, the cost of running every
coalition as its own row) and ÷ one plain forward of one row; the masked word forward of m rows ÷ the plain
forward of the same m rows (full depth, to isolate the masking; and early-stopped, as the route runs); and how
much the decoupled maps differ from the coupled ones when concepts may attend to each other.

    python benchmarks/diffusion.py [--concepts 8] [--grid 16] [--layers 4] [--single 8] [--heads 4] [--head-dim 32]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from tiny_diffusion import tiny_flux_transformer  # noqa: E402

from metagame.domains.diffusion.entry import diffusion_adapter  # noqa: E402
from metagame.run.tables import metagame_from_table as metagame_maps_from_table  # noqa: E402
from metagame.domains.diffusion import masked_text_forward, run_transformer  # noqa: E402
from metagame.players import all_coalitions  # noqa: E402


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def best_of_rounds(fns: dict, repeats: int) -> dict:
    """Best time of each function over ``repeats`` interleaved rounds (load drift hits every side alike)."""
    best = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            best[k] = min(best[k], timed(fn))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--concepts", type=int, default=8)
    ap.add_argument("--words", type=int, default=6)
    ap.add_argument("--grid", type=int, default=16, help="image patches per side (P = grid^2)")
    ap.add_argument("--text", type=int, default=64, help="text tokens")
    ap.add_argument("--layers", type=int, default=4, help="joint (double-stream) blocks")
    ap.add_argument("--single", type=int, default=8, help="single-stream blocks")
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--head-dim", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--scaling", default="4,6,8,10", help="concept counts for the coalitions/s table ('' to skip)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    torch.manual_seed(0)
    dev = torch.device(args.device)
    hd, h = args.head_dim, args.heads
    tr = tiny_flux_transformer(num_layers=args.layers, num_single_layers=args.single, heads=h, head_dim=hd,
                               joint_dim=64, pooled_dim=32).eval().to(dev)
    g, t, d = args.grid, args.text, args.concepts
    ids = torch.zeros(g, g, 3)
    ids[..., 1] = torch.arange(g)[:, None]
    ids[..., 2] = torch.arange(g)[None, :]
    kwargs = dict(hidden_states=torch.randn(1, g * g, 4), encoder_hidden_states=torch.randn(1, t, 64),
                  pooled_projections=torch.randn(1, 32), timestep=torch.tensor([0.6]), img_ids=ids.reshape(-1, 3),
                  txt_ids=torch.zeros(t, 3))
    kwargs = {k: v.to(dev) for k, v in kwargs.items()}
    ce = torch.randn(d, 64, device=dev)
    blocks = list(range(max(0, args.layers - 2), args.layers))  # the last two joint blocks
    coalitions = all_coalitions(d)
    m = len(coalitions)
    print(f"random Flux transformer on {dev}: {args.layers} joint + {args.single} single blocks, {h} heads x {hd}, "
          f"P = {g * g} patches, {t} text tokens; d = {d} concepts ({m} coalitions), blocks read {blocks}")

    common = dict(concepts=[f"c{k}" for k in range(d)], inputs=kwargs, concept_embeds=ce, blocks=blocks)

    def decoupled():
        diffusion_adapter(tr, route="decoupled", **common).maps(coalitions)

    def coupled():
        diffusion_adapter(tr, route="coupled", **common).maps(coalitions)

    # words: players = prompt words (each 4 tokens of the 64), per-row key masks
    w = args.words
    words = [(f"w{k}", list(range(4 * k, 4 * k + 4))) for k in range(w)]
    wc = all_coalitions(w)
    wa = diffusion_adapter(tr, players="words", inputs=kwargs, words=words, blocks=blocks, batch_size=len(wc))
    keep = wa.keep_text(wc).to(dev)
    times = best_of_rounds({
        "dec": decoupled, "cpl": coupled, "plain_m": lambda: run_transformer(tr, kwargs, m),
        "plain_1": lambda: run_transformer(tr, kwargs, 1), "words": lambda: wa.maps(wc),
        "mask_full": lambda: masked_text_forward(tr, kwargs, keep),
        "plain_w": lambda: run_transformer(tr, kwargs, len(wc)),
    }, args.repeats)
    t_dec, t_cpl, t_plain_m, t_plain_1 = times["dec"], times["cpl"], times["plain_m"], times["plain_1"]
    t_words, t_mask_full, t_plain_w = times["words"], times["mask_full"], times["plain_w"]

    # how much the routes differ when concepts may attend to each other
    a = diffusion_adapter(tr, route="decoupled", **common).maps(coalitions).numpy()
    b = diffusion_adapter(tr, route="coupled", **common).maps(coalitions).numpy()
    ma, mb = metagame_maps_from_table(a), metagame_maps_from_table(b)
    off = ~np.eye(d, dtype=bool)
    same = diffusion_adapter(tr, route="coupled", concept_self_attention=False, **common).maps(coalitions).numpy()

    rows = [
        ("decoupled route: all coalitions", t_dec, f"{m / t_dec:,.0f} coalitions/s"),
        ("coupled route: all coalitions", t_cpl, f"{m / t_cpl:,.0f} coalitions/s"),
        (f"plain forward, batch {m}", t_plain_m, ""),
        ("plain forward, batch 1", t_plain_1, ""),
        (f"words route: {len(wc)} coalitions", t_words, f"{len(wc) / t_words:,.0f} coalitions/s"),
        (f"masked forward, {len(wc)} rows, full depth", t_mask_full, ""),
        (f"plain forward, batch {len(wc)}", t_plain_w, ""),
    ]
    for name, sec, extra in rows:
        print(f"  {name:<44} {sec * 1e3:9.1f} ms  {extra}")
    print(f"coupled ÷ decoupled time:                        {t_cpl / t_dec:.2f}")
    print(f"coupled route ÷ one plain forward of the same {m} rows: {t_cpl / t_plain_m:.3f}   (target <= 1.3)")
    print(f"coupled route ÷ one plain forward of 1 row:        {t_cpl / t_plain_1:.2f}")
    print(f"masked word forward ÷ plain forward, {len(wc)} rows, full depth: {t_mask_full / t_plain_w:.3f}   (target <= 1.3)")
    print(f"words route (early stop, hooks) ÷ plain forward of {len(wc)} rows: {t_words / t_plain_w:.3f}")
    print(f"decoupled vs coupled without concept self-attention: max |Δ map| = {np.abs(same - a).max():.2e}")
    print(f"decoupled vs coupled (concepts attend to each other): max |Δ map| = {np.abs(a - b).max():.3f}, "
          f"mean |Δ map| = {np.abs(a - b).mean():.4f}; off-diagonal meta-maps: max |Δ| = {np.abs(ma - mb)[off].max():.3f}, "
          f"relative L1 = {np.abs(ma - mb)[off].sum() / np.abs(mb)[off].sum():.3f}")


    if args.scaling:
        print("coalitions/s by number of concepts (all 2^d coalitions, one step):")
        for dd in [int(x) for x in args.scaling.split(",")]:
            cc = all_coalitions(dd)
            kw = dict(concepts=[f"c{k}" for k in range(dd)], inputs=kwargs, concept_embeds=torch.randn(dd, 64, device=dev),
                      blocks=blocks)
            tt = best_of_rounds({r: (lambda r=r: diffusion_adapter(tr, route=r, **kw).maps(cc))
                                 for r in ("decoupled", "coupled")}, args.repeats)
            print(f"  d = {dd:2d}: {len(cc):5d} coalitions  decoupled {len(cc) / tt['decoupled']:9,.0f}/s   "
                  f"coupled {len(cc) / tt['coupled']:9,.0f}/s   coupled ÷ plain forward of 1 row "
                  f"{tt['coupled'] / t_plain_1:5.2f}")


if __name__ == "__main__":
    main()
