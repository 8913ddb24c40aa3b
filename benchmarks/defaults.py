"""The text-pair default, measured: exact Meta-SV against exact Meta-IG (and gradient×input) on the bundled MiniLM.

    python benchmarks/defaults.py [--steps 32 4] [--repeats 2]

The issue's case: `metagame similarity` on 6 + 6 words took 5 min 31 s with IG-32 and 4.5 s with Meta-SV. Here the
model is loaded once (the entry point reuses it) and the methods run alternately in one process, so the ratios
÷ Meta-SV compare like with like. The alignment and faithfulness numbers behind the choice are in README
("Evaluating meta-attributions", the alignment check of benchmarks/encoders.py).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import metagame  # noqa: E402

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
TEXT_A = "A man is playing the guitar"
TEXT_B = "Someone is playing an acoustic guitar"


def run(method: str, steps: int | None) -> float:
    kwargs = {"n_steps": steps} if steps else None
    t = time.perf_counter()
    metagame.explain_text_pair(MODEL, TEXT_A, TEXT_B, method=method, method_kwargs=kwargs, progress=False)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[32, 4], help="IG quadrature steps to time")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    run("shapley", None)  # load the model once (reused by every later call) and warm up
    cases = [("shapley", None), ("gradient_x_input", None)] + [("integrated_gradients", s) for s in args.steps]
    times: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for method, steps in cases:
            name = method + (f"-{steps}" if steps else "")
            times.setdefault(name, []).append(run(method, steps))
            print(f"  {name}: {times[name][-1]:.2f} s", flush=True)
    base = min(times["shapley"])
    print(f"\n{TEXT_A!r} + {TEXT_B!r} (6 + 6 words), exact, best of {args.repeats}:")
    for name, ts in times.items():
        print(f"{name:24s} {min(ts):8.2f} s   ÷ Meta-SV {min(ts) / base:7.1f}")


if __name__ == "__main__":
    main()
