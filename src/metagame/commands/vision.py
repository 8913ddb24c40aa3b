"""``metagame vision``: meta-attributions of a CLIP/SigLIP image–text logit over image patches and words.

    metagame vision --model NAME_OR_PATH --image PATH --text T [--grid G] [--mode scalar|patch_maps]
                    [--patch-masking mean|blur|zero] [run options: --method M --budget N ...] --out DIR
"""

from __future__ import annotations

import argparse
from typing import Any

from .common import add_run_options, check_out_dir, finish, method_kwargs, run_options


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the ``vision`` sub-command on ``sub`` (the CLI's sub-parsers)."""
    p = sub.add_parser(
        "vision",
        help="meta-attributions of a CLIP/SigLIP image-text similarity (patches and words)",
        description=(
            "Players are image patches (the model's grid, or G×G groups with --grid G) and the words of the text; "
            "f is the image-text logit. --mode patch_maps makes the words the players and gives, for each word, a "
            "map of how it moves every patch's attribution. Writes DIR/result.json, the pictures and report.html."
        ),
    )
    p.add_argument("--model", required=True, help="CLIP or SigLIP model: Hugging Face name (cached) or local folder")
    p.add_argument("--image", required=True, help="image file (PNG, JPEG, ...)")
    p.add_argument("--text", required=True, help="the caption")
    p.add_argument("--grid", type=int, default=None, help="G×G groups of patches (default: the model's patch grid)")
    p.add_argument("--mode", default="scalar", choices=("scalar", "patch_maps"), help="default scalar")
    p.add_argument("--patch-masking", default="mean", choices=("mean", "blur", "zero"), help="baseline of absent patches (default mean)")
    p.add_argument("--batch-size", type=int, default=32, help="rows per forward pass (default 32)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow the checkpoint's own Python code")
    add_run_options(p, default_method="integrated_gradients")
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``metagame vision``; returns the exit code."""
    from ..applications.encoders import vision_adapter
    from ..run import explain

    check_out_dir(args.out)
    options = run_options(args)
    adapter = vision_adapter(
        args.model, args.image, args.text, mode=args.mode, grid=args.grid, patch_masking=args.patch_masking,
        batch_size=args.batch_size, trust_remote_code=args.trust_remote_code,
    )
    return finish(explain(adapter, args.method, method_kwargs=method_kwargs(args), options=options), args)
