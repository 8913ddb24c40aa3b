"""``metagame lm``: meta-attributions over the words of a prompt to a Hugging Face causal LM.

    metagame lm --model NAME_OR_PATH --prompt TEXT [--answer TEXT] [--masking MODE] [--max-new-tokens N]
                [run options: --method M --budget N --seed S --variant V ...] --out DIR
"""

from __future__ import annotations

import argparse

from ..models.language import MASKING_MODES
from .common import add_model_options, add_run_options, explain_command, finish


HELP = "word-to-word meta-attributions of a causal LM's answer log-probability"
DESCRIPTION = (
    "Players are the words of the user prompt (inside the chat template); f is the teacher-forced "
    "log-probability of the answer. Writes DIR/result.json (matrix[i][j] = φ_{j→i}) and the report."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``lm`` command's arguments."""
    add_model_options(p, "Hugging Face model name or local folder (safetensors)", 32, device=True)
    p.add_argument("--prompt", required=True, help="the user prompt; its words are the players")
    p.add_argument("--answer", default=None, help="the explained answer (default: generated greedily once)")
    p.add_argument("--alternative", default=None, help="contrast answer: f = log p(answer) - log p(alternative)")
    p.add_argument("--masking", default="attention", choices=MASKING_MODES, help="how absent words are masked (default attention)")
    p.add_argument("--tokens", action="store_true", help="players are tokens instead of words")
    p.add_argument("--max-new-tokens", type=int, default=16, help="length limit of the generated answer (default 16)")
    p.add_argument("--system", default=None, help="system prompt for the chat template")
    p.add_argument("--no-chat-template", action="store_true", help="use the raw prompt without the chat template")
    add_run_options(p, default_method="integrated_gradients")


def run(args: argparse.Namespace) -> int:
    """Run ``metagame lm``; returns the exit code."""
    from ..models.language import CausalLM

    adapter, result = explain_command(args, lambda: CausalLM(
        args.model, args.prompt, args.answer, alternative=args.alternative,
        grouping="tokens" if args.tokens else "words", masking=args.masking,
        chat_template=False if args.no_chat_template else None, system_prompt=args.system,
        max_new_tokens=args.max_new_tokens, device=args.device, dtype=args.dtype,
        trust_remote_code=args.trust_remote_code, batch_size=args.batch_size,
    ))
    print(f"model {adapter.model_name}; answer {adapter.answer!r}" + (" (generated)" if adapter.generated else ""))
    print(f"log p(answer | prompt) = {result.context['value_full']:.4f}; with every word masked = {result.context['value_empty']:.4f}")
    return finish(result, args)
