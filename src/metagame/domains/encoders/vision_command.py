"""``metagame vision``: meta-attributions of a CLIP/SigLIP image–text logit over image patches and words.

    metagame vision --model NAME_OR_PATH --image PATH --text T [--grid G] [--mode scalar|patch_maps]
                    [--patch-masking mean|blur|zero] [run options: --method M --budget N ...] --out DIR
"""

from __future__ import annotations

import argparse

from ...commands.common import add_model_options, add_run_options, explain_command, finish, signature_option
from .entry import vision_adapter


HELP = "meta-attributions of a CLIP/SigLIP image-text similarity (patches and words)"
DESCRIPTION = (
    "Players are image patches (the model's grid, or G×G groups with --grid G) and the words of the text; "
    "f is the image-text logit. --mode patch_maps makes the words the players and gives, for each word, a "
    "map of how it moves every patch's attribution. Writes DIR/result.json, the pictures and report.html."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``vision`` command's arguments."""
    add_model_options(p, "CLIP or SigLIP model: Hugging Face name (cached) or local folder", 32, device=True)
    p.add_argument("--image", default=None, help="image file (PNG, JPEG, ...)")
    p.add_argument("--text", default=None, help="the caption")
    p.add_argument("--pairs-file", default=None, metavar="FILE",
                   help="a set of (image, caption) pairs: TSV (image path<TAB>caption) or JSON Lines with image/caption; "
                        "paths relative to the file")
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
    from .entry import explain_vision, vision_adapter
    from ...applications.common import build_adapter
    from ...errors import MetagameError

    if args.pairs_file is not None:
        if args.image is not None or args.text is not None:
            raise MetagameError("pass --image/--text or --pairs-file, not both")
        from ...commands.sets import read_pairs_file, run_set_command

        pairs = read_pairs_file(args.pairs_file, ("image", "caption"), paths_first=True)
        return run_set_command(args, lambda **kw: explain_vision(
            args.model, pairs, mode=args.mode, grid=args.grid, patch_masking=args.patch_masking, empty=args.empty,
            batch_size=args.batch_size, device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code,
            **kw))
    if args.image is None or args.text is None:
        raise MetagameError("pass --image FILE and --text CAPTION (or --pairs-file FILE)")
    _, result = explain_command(args, lambda: build_adapter(  # its recipe rebuilds it (Ray workers, evaluate)
        vision_adapter, "metagame vision", args.model, args.image, args.text, mode=args.mode, grid=args.grid,
        patch_masking=args.patch_masking, empty=args.empty, batch_size=args.batch_size, device=args.device,
        dtype=args.dtype, trust_remote_code=args.trust_remote_code,
    ))
    return finish(result, args)
