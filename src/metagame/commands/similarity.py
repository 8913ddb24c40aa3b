"""``metagame similarity``: word-to-word meta-attributions of a sentence encoder's cosine similarity.

    metagame similarity --model NAME_OR_PATH --text-a A --text-b B [--masking attention|mask_token]
                        [run options: --method M --budget N --seed S ...] --out DIR
"""

from __future__ import annotations

import argparse
from typing import Any

from .common import add_run_options, check_out_dir, finish, method_kwargs, run_options


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the ``similarity`` sub-command on ``sub`` (the CLI's sub-parsers)."""
    p = sub.add_parser(
        "similarity",
        help="meta-attributions of the cosine similarity of two texts (sentence-embedding model)",
        description=(
            "Players are the words of text A, then the words of text B; f is the cosine similarity of their "
            "embeddings. Writes DIR/result.json (matrix[i][j] = φ_{j→i}), the pictures and report.html."
        ),
    )
    p.add_argument("--model", required=True, help="sentence-embedding model: Hugging Face name (cached) or local folder")
    p.add_argument("--text-a", required=True, help="first text")
    p.add_argument("--text-b", required=True, help="second text")
    p.add_argument("--masking", default="attention", choices=("attention", "mask_token"), help="how absent words are masked (default attention)")
    p.add_argument("--pooling", default="auto", choices=("auto", "mean", "cls", "max"), help="default: from the sentence-transformers files")
    p.add_argument("--batch-size", type=int, default=256, help="text pairs per forward pass (default 256)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow the checkpoint's own Python code")
    add_run_options(p, default_method="integrated_gradients")
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``metagame similarity``; returns the exit code."""
    from ..applications.encoders import text_pair_adapter
    from ..run import explain

    check_out_dir(args.out)
    options = run_options(args)
    adapter = text_pair_adapter(
        args.model, args.text_a, args.text_b, masking=args.masking, pooling=args.pooling,
        batch_size=args.batch_size, trust_remote_code=args.trust_remote_code,
    )
    return finish(explain(adapter, args.method, method_kwargs=method_kwargs(args), options=options), args)
