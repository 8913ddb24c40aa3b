"""``metagame vision``: meta-attributions of a CLIP/SigLIP image–text logit over image patches and words.

    metagame vision --model NAME_OR_PATH --image PATH --text T [--grid G] [--mode scalar|patch_maps]
                    [--patch-masking mean|blur|zero] [run options: --method M --budget N ...] --out DIR
"""

from __future__ import annotations

import argparse

from ...commands.common import add_run_options, signature_option
from .entry import vision_adapter
from .pair_command import add_pair_inputs, run_pair

HELP = "meta-attributions of a CLIP/SigLIP image-text similarity (patches and words)"
DESCRIPTION = (
    "Players are image patches (the model's grid, or G×G groups with --grid G) and the words of the text; "
    "f is the image-text logit. --mode patch_maps makes the words the players and gives, for each word, a "
    "map of how it moves every patch's attribution. Writes DIR/result.json, the pictures and report.html."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``vision`` command's arguments."""
    add_pair_inputs(p, model_help="CLIP or SigLIP model: Hugging Face name (cached) or local folder", batch_size=32,
                    first=("--image", "image file (PNG, JPEG, ...)"), second=("--text", "the caption"),
                    pairs_help="a set of (image, caption) pairs: TSV (image path<TAB>caption) or JSON Lines with "
                               "image/caption; paths relative to the file")
    p.add_argument("--grid", type=int, default=None, help="G×G groups of patches (default: the model's patch grid)")
    mode = signature_option(vision_adapter, "mode")
    p.add_argument("--mode", **mode, help=f"default {mode['default']}")
    patch_masking = signature_option(vision_adapter, "patch_masking")
    p.add_argument("--patch-masking", **patch_masking,
                   help=f"baseline of absent patches (default {patch_masking['default']})")
    p.add_argument("--empty", **signature_option(vision_adapter, "empty"),
                   help="an image with every patch masked / an empty caption: embedded by the model (model, default) "
                        "or f = the logit bias (zero)")
    add_run_options(p, default_method="integrated_gradients")


def run(args: argparse.Namespace) -> int:
    """Run ``metagame vision``; returns the exit code."""
    from .entry import explain_vision

    return run_pair(args, command="vision", factory=vision_adapter, explain_set=explain_vision,
                    first=("--image", "FILE"), second=("--text", "CAPTION"), file_fields=("image", "caption"),
                    paths_first=True, options=dict(mode=args.mode, grid=args.grid, patch_masking=args.patch_masking,
                                                   empty=args.empty))
