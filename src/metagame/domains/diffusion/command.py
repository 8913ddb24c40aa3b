"""``metagame diffusion``: Meta-ConceptAttention of a text-to-image diffusion transformer (diffusers Flux / SD3).

    metagame diffusion --model NAME_OR_PATH --prompt "..." --concepts "cat,tree,sky" --out DIR
                       [--players concepts|words] [--route auto|decoupled|coupled] [--no-concept-self-attention]
                       [--steps N] [--timesteps 0,1,2,3] [--blocks 15,16,17,18] [--generation-seed S] [--height H] [--width W]
                       [--guidance-scale G] [--device cuda] [--dtype bfloat16] [--batch-size N] [run options]
"""

from __future__ import annotations

import argparse

from ...commands.common import add_model_options, add_run_options, explain_command, finish, signature_option
from .entry import diffusion_adapter


def _ints(text: str | None) -> list[int] | None:
    if text is None:
        return None
    from ...errors import MetagameError

    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise MetagameError(f"expected comma-separated integers, got {text!r}") from None


HELP = "how each concept moves the ConceptAttention map of every other concept (Flux, SD3)"
DESCRIPTION = (
    "Generates the image once, then computes ConceptAttention maps for every subset of the concepts and "
    "their exact metagame per patch: meta_maps[i][j] = how concept j moves concept i's map. Writes "
    "DIR/result.json (matrix[i][j] = patch mean of meta_maps[i][j]), the pictures and report.html."
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``diffusion`` command's arguments."""
    add_model_options(p, "diffusers Flux / SD3 pipeline: hub name (cached) or local folder", None, device=True, remote_code=False)
    p.add_argument("--prompt", required=True, help="the prompt of the generated image")
    p.add_argument("--concepts", default=None, help='comma-separated concept words, e.g. "cat,tree,sky"')
    p.add_argument("--players", **signature_option(diffusion_adapter, "players"),
                   help="players: the concepts (default) or the words of the prompt")
    p.add_argument("--route", **signature_option(diffusion_adapter, "route"),
                   help="decoupled: concepts do not attend to each other (one forward per step); coupled: one "
                        "concept stream per coalition (default auto = coupled, decoupled with --no-concept-self-attention)")
    p.add_argument("--no-concept-self-attention", action="store_true", help="concept tokens do not attend to each other")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the pipeline's)")
    p.add_argument("--timesteps", default=None, help="comma-separated denoising-step indices averaged (default all)")
    p.add_argument("--blocks", default=None, help="comma-separated joint-block indices averaged (default the last 4)")
    p.add_argument("--generation-seed", type=int, default=0, help="seed of the generation (default 0)")
    p.add_argument("--height", type=int, default=None, help="image height in pixels (default: the pipeline's)")
    p.add_argument("--width", type=int, default=None, help="image width in pixels (default: the pipeline's)")
    p.add_argument("--guidance-scale", type=float, default=None, help="guidance scale (default: the pipeline's)")
    p.add_argument("--max-sequence-length", type=int, default=None, help="T5 tokens of the prompt (default: the pipeline's)")
    p.add_argument("--raw-scores", action="store_true", help="maps of raw scores instead of the softmax over concepts")
    add_run_options(p, default_method="concept_attention", ig_steps=False)


def run(args: argparse.Namespace) -> int:
    """Run ``metagame diffusion``; returns the exit code."""
    from ...errors import MetagameError

    if args.players == "concepts" and not args.concepts:
        raise MetagameError('pass --concepts "word1,word2,..." (or --players words)')
    if args.method != "concept_attention":
        raise MetagameError("the diffusion command explains ConceptAttention maps; drop --method")
    _, result = explain_command(args, lambda: diffusion_adapter(
        args.model, args.prompt, args.concepts, players=args.players, route=args.route,
        concept_self_attention=False if args.no_concept_self_attention else None, steps=args.steps,
        timesteps=_ints(args.timesteps), blocks=_ints(args.blocks), generation_seed=args.generation_seed,
        height=args.height, width=args.width, guidance_scale=args.guidance_scale,
        max_sequence_length=args.max_sequence_length, softmax=not args.raw_scores, device=args.device,
        dtype=args.dtype, batch_size=args.batch_size,
    ))
    return finish(result, args)
