"""``metagame lm``: meta-attributions over the words of a prompt to a Hugging Face causal LM.

    metagame lm --model NAME_OR_PATH [--gguf-file FILE] --prompt TEXT [--answer TEXT] [--masking MODE]
                [--max-answer-tokens N]
                [--components heads|neurons|layers [--layers L ...] [--ablation zero|mean|patch]]
                [run options: --method M --budget N --seed S --variant V ...] --out DIR

With ``--components`` the model's attention heads (neurons, layers) join the prompt's words as players of one game:
the report then shows the cross blocks head → word and word → head. The component flags are
:class:`~metagame.domains.components.options.ComponentOptions` (each flag's dest is the option's name; choices and
defaults read from there), the other choices from the adapter's signature.
"""

from __future__ import annotations

import argparse
from typing import Any, get_args

from ...commands.common import add_model_options, add_run_options, explain_command, finish, signature_option
from ..components.options import COMPONENT_OPTIONS, Ablation, ComponentKind, ComponentOptions
from .adapter import DEFAULT_MAX_ANSWER_TOKENS, CausalLM

_COMPONENTS = ComponentOptions()  # the component options' defaults


HELP = "word-to-word meta-attributions of a causal LM's answer log-probability"
DESCRIPTION = (
    "Players are the words of the user prompt (inside the chat template); f is the teacher-forced "
    "log-probability of the answer. Writes DIR/result.json (matrix[i][j] = φ_{j→i}) and the report."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``lm`` command's arguments."""
    add_model_options(p, "Hugging Face model name, local folder (safetensors or one .gguf file) or .gguf path", 32,
                      device=True)
    p.add_argument("--gguf-file", default=None, metavar="FILE",
                   help="the GGUF file inside the --model folder (needs pip install 'metagame[gguf]')")
    p.add_argument("--prompt", default=None, help="the user prompt; its words are the players")
    p.add_argument("--prompts-file", default=None, metavar="FILE",
                   help="a set of prompts: one per line, or JSON Lines with prompt/answer/alternative (instead of --prompt)")
    p.add_argument("--answer", default=None,
                   help="the explained answer (default: generated greedily once, at most --max-answer-tokens tokens)")
    p.add_argument("--alternative", default=None, help="contrast answer: f = log p(answer) - log p(alternative)")
    masking = signature_option(CausalLM, "masking")
    p.add_argument("--masking", **masking, help=f"how absent words are masked (default {masking['default']})")
    p.add_argument("--tokens", action="store_true", help="players are tokens instead of words")
    p.add_argument("--max-answer-tokens", "--max-new-tokens", dest="max_answer_tokens", type=int,
                   default=DEFAULT_MAX_ANSWER_TOKENS,
                   help=f"length limit of the generated answer (default {DEFAULT_MAX_ANSWER_TOKENS}: a label or short "
                        f"answer; 1 scores the first answer token only)")
    p.add_argument("--system", default=None, help="system prompt for the chat template")
    p.add_argument("--no-chat-template", action="store_true", help="use the raw prompt without the chat template")
    c = p.add_argument_group("components as players (words and components in one game)")
    c.add_argument("--components", default=None, choices=get_args(ComponentKind),
                   help="add the model's attention heads, MLP neurons or layers as players of the same game")
    c.add_argument("--layers", type=int, nargs="+", default=None, metavar="L",
                   help="only the components of these layers (default: every layer)")
    c.add_argument("--ablation", default=_COMPONENTS.ablation, choices=get_args(Ablation),
                   help=f"how absent components are ablated (default {_COMPONENTS.ablation}; mean needs --reference, "
                        f"patch --corrupted)")
    c.add_argument("--reference", action="append", default=None, metavar="TEXT",
                   help="a text whose activations, averaged over every position, are the mean ablation (repeatable)")
    c.add_argument("--corrupted", default=None, metavar="TEXT",
                   help="a prompt with the same number of tokens whose activations are patched in (--ablation patch; "
                        "needs --masking mask_token or zero_embedding)")
    c.add_argument("--neuron-groups", type=int, default=None, metavar="N",
                   help="with --components neurons: N contiguous groups per layer (default one player per neuron)")
    add_run_options(p, default_method="integrated_gradients")


def component_args(args: argparse.Namespace) -> dict[str, Any]:
    """The component options the flags stand for (each flag's dest is the option's name; unset flags left out)."""
    return {name: getattr(args, name) for name in COMPONENT_OPTIONS if getattr(args, name, None) is not None}


def run(args: argparse.Namespace) -> int:
    """Run ``metagame lm``; returns the exit code."""
    from ...errors import MetagameError

    components = getattr(args, "components", None)
    extra = component_args(args)
    if components is None:
        stray = ["--" + name.replace("_", "-") for name, value in extra.items()
                 if value != getattr(_COMPONENTS, name)]
        if stray:
            raise MetagameError(f"{', '.join(stray)} only apply with --components heads (or neurons, layers)")
        extra = {}

    if (args.prompt is None) == (args.prompts_file is None):
        raise MetagameError("pass --prompt TEXT or --prompts-file FILE (one of them)")
    options = dict(  # the adapter's options, the component options (components= among them) when given
        alternative=args.alternative, grouping="tokens" if args.tokens else "words", masking=args.masking,
        chat_template=False if args.no_chat_template else None, system_prompt=args.system,
        max_answer_tokens=args.max_answer_tokens, device=args.device, dtype=args.dtype,
        trust_remote_code=args.trust_remote_code, gguf_file=args.gguf_file, batch_size=args.batch_size, **extra,
    )
    if args.prompts_file is not None:
        from ...commands.sets import read_prompts_file, run_set_command
        from .entry import explain_lm

        prompts = read_prompts_file(args.prompts_file)
        return run_set_command(args, lambda **kw: explain_lm(args.model, prompts, args.answer, **options, **kw))

    def build():  # through the entry points' factory: its recipe rebuilds it (Ray workers, evaluate)
        from ...applications.common import build_extended
        from ..components.extension import component_extension, lm_components

        return build_extended(CausalLM, "metagame lm", (args.model, args.prompt, args.answer), options,
                              component_extension(lm_components, "metagame lm"))

    adapter, result = explain_command(args, build)
    words = getattr(adapter, "driver", adapter)
    if components is not None:
        print(f"players: {words.n_players} words + {adapter.n_players - words.n_players} {components} "
              f"(ablation {args.ablation})")
    print(f"model {words.model_name}; answer {words.answer!r}" + (" (generated)" if words.generated else ""))
    print(f"f = {words.f_description()}")
    print(f"f(x) = {result.context['value_full']:.4f}; with every word masked = {result.context['value_empty']:.4f}")
    return finish(result, args)
