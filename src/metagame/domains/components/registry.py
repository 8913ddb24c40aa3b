"""Where the components of each model family live: the per-architecture registry used by
:class:`~metagame.domains.components.adapter.ComponentModel` (GPT-2, Llama-style, BERT-style, CLIP vision tower)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import MetagameError


@dataclass(frozen=True)
class Architecture:
    """Where the components of one model family live.

    Attributes:
        layer_pattern: regex on module names matching each transformer block; group 1 = layer index.
        head_site: module (relative to a block) whose *input* is the concatenation of per-head outputs.
        neuron_site: module (relative to a block) whose *input* is the MLP's hidden activation.
        heads_config: config attribute names for the number of attention heads (first found wins).
        sub_config: optional config attribute holding the relevant sub-config (e.g. ``vision_config``).
    """

    layer_pattern: str
    head_site: str
    neuron_site: str
    heads_config: tuple[str, ...] = ("num_attention_heads", "n_head")
    sub_config: str | None = None


#: The per-architecture registry (keys are also accepted as ``architecture=``).
ARCHITECTURES: dict[str, Architecture] = {
    "gpt2": Architecture(r"(?:^|\.)h\.(\d+)$", "attn.c_proj", "mlp.c_proj"),
    "llama": Architecture(r"(?:^|\.)layers\.(\d+)$", "self_attn.o_proj", "mlp.down_proj"),
    "bert": Architecture(r"(?:^|\.)encoder\.layer\.(\d+)$", "attention.output.dense", "output.dense"),
    "clip_vision": Architecture(
        r"(?:^|vision_model\.)encoder\.layers\.(\d+)$", "self_attn.out_proj", "mlp.fc2", sub_config="vision_config"
    ),
}

#: config.model_type -> registry key
MODEL_TYPES: dict[str, str] = {
    "gpt2": "gpt2",
    "llama": "llama",
    "mistral": "llama",
    "qwen2": "llama",
    "qwen3": "llama",
    "gemma": "llama",
    "gemma2": "llama",
    "phi3": "llama",
    "bert": "bert",
    "roberta": "bert",
    "xlm-roberta": "bert",
    "electra": "bert",
    "clip": "clip_vision",
    "clip_vision_model": "clip_vision",
}


def detect_architecture(model: torch.nn.Module) -> str:
    """Registry key of ``model`` from ``config.model_type``; error listing the known ones otherwise."""
    mtype = getattr(getattr(model, "config", None), "model_type", None)
    if mtype in MODEL_TYPES:
        return MODEL_TYPES[mtype]
    raise MetagameError(
        f"no component registry entry for model_type {mtype!r}; pass architecture= one of {', '.join(ARCHITECTURES)} "
        f"(if the module layout matches) or name modules directly: components=['<module name>', ...]"
    )


def num_heads(model: torch.nn.Module, arch: Architecture) -> int:
    cfg = getattr(model, "config", None)
    if cfg is not None and arch.sub_config and hasattr(cfg, arch.sub_config):
        cfg = getattr(cfg, arch.sub_config)
    for attr in arch.heads_config:
        val = getattr(cfg, attr, None)
        if isinstance(val, int) and val > 0:
            return val
    raise MetagameError(f"could not read the number of attention heads from the model config ({', '.join(arch.heads_config)})")


__all__ = ["ARCHITECTURES", "MODEL_TYPES", "Architecture", "detect_architecture", "num_heads"]
