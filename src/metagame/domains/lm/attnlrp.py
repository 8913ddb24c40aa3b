"""AttnLRP: attention-aware layer-wise relevance propagation (Achtibat et al., ICML 2024), per model and removable.

LRP sends the explained output f back through the network, one rule per operation, so that every
tensor x gets a relevance R_x. Each rule below is written as a change of the backward pass: with ĝ_x the
modified gradient at x, R_x = x ⊙ ĝ_x at every tensor, and the input relevance is gradient × input of the
modified backward pass, R_i = Σ_{c∈i} (z_c − b_c) ĝ_c (b = 0 for the default attention masking of a
language model, which makes it the AttnLRP relevance itself). Notation: R_y is the relevance of an
operation's output y, ε → 0 (the ε of ε-LRP only stabilises divisions; gradients need none).

==========================  =============================================  =========================================
operation                   LRP rule (relevance)                           gradient form used here
==========================  =============================================  =========================================
linear  y = W x + b         ε-LRP: R_x_i = Σ_j x_i W_ji R_y_j / y_j         plain gradient (bias share b_j R_y_j / y_j
                                                                           is absorbed)
elementwise y = σ(x)        identity rule: R_x = R_y                        ĝ_x = ĝ_y · σ(x) / x  (0 where x = 0)
RMSNorm y = w ⊙ x r(x)      identity rule on the normalisation: r = 1/rms   ĝ_x = ĝ_y · y / x  (= r w ĝ_y; Gemma-3
                            held constant, so y_j = r w_j x_j: R_x = R_y     uses 1 + w; 0 where x = 0)
LayerNorm y = w⊙(x−μ)r + β  same, r = 1/std held constant, μ kept           ĝ_x = r · (t − mean(t)),  t = w ⊙ ĝ_y
product y = a ⊙ b           uniform rule: each factor gets half of every    ĝ_a = ½ b ĝ_y,  ĝ_b = ½ a ĝ_y
(gated MLP)                 product term's relevance
softmax s = softmax(x)      R_x_i = x_i (R_s_i − s_i Σ_j R_s_j)             plain softmax gradient
attention                   uniform rule on A·V and on q·kᵀ, softmax rule   plain gradient of the attention function
O = softmax(c q kᵀ + M) V   in between: V and A get ½ R_O each, the         with ĝ_q, ĝ_k × ¼ and ĝ_v × ½
                            softmax passes A's share to the scores, q and k
                            get half of that each
residual sums, RoPE,        linear: ε-LRP                                   plain gradient
embedding scale, reshapes
==========================  =============================================  =========================================

Conservation (Σ_i R_i = f). Every rule is locally conservative (Σ R_in = Σ R_out) except where the ε-LRP
bias share is absorbed: linear and LayerNorm biases (GPT-2; Qwen-2's q/k/v biases), the additive attention
mask, and the softmax, whose rule drops the constant term of its Taylor expansion; the identity rule also
loses R_y where x = 0 and σ(0) ≠ 0 (never for SiLU, GELU, ReLU, tanh). Hence Σ_i R_i = f(x) holds exactly when
(1) f is a logit (a linear, bias-free read-out of the last hidden state; the log-probability of
:class:`~metagame.domains.lm.adapter.CausalLM` is not: its log-softmax is propagated as a plain gradient), (2) no
layer on the relevance path has a bias, and (3) no relevance reaches an attention softmax (no attention, or
attention whose output projection is zero). With attention, f − Σ_i R_i is exactly the relevance absorbed by
the softmaxes (plus the bias shares); the tests measure it.

:func:`attnlrp_rules` applies the rules to one model instance and removes them on exit (also after an
exception): the attention of that model runs through an attention function registered in transformers'
``AttentionInterface`` (with the same mask function as before, so causal and sliding-window masks are
kept), selected on the model's config and restored afterwards; norms and activations get forward hooks,
the gated MLP product a forward pre-hook on ``down_proj``. The modified functions return their input
values unchanged, so forward outputs are bitwise equal while the rules are active. Attention modules of
other models are never modified, even if they share the config object.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Literal

import numpy as np
import torch

from ...errors import MetagameError
from ...methods.gradient import _GradientMethod, input_gradients
from ...models.base import ModelAdapter
from ...models.contract import TorchModule, require_capability
from .lrp_rules import (  # noqa: F401  (the rules live there)
    _ACTIVE_ATTENTION,
    _ACTIVE_MODELS,
    _LOCK,
    SUPPORTED_ARCHITECTURES,
    _acquire_key,
    _deselect,
    _IdentityRule,
    _LayerNormRule,
    _release_key,
    _scale,
    _ScaleGrad,
    _select,
)

NormKind = Literal["rms", "layer"]

#: element-wise activation modules the identity rule handles (all map 0 to 0)
ACTIVATIONS: frozenset[str] = frozenset({
    "SiLUActivation", "SiLU", "GELUActivation", "GELU", "NewGELUActivation", "GELUTanh", "PytorchGELUTanh",
    "FastGELUActivation", "QuickGELUActivation", "AccurateGELUActivation", "ReLU", "LeakyReLU", "Tanh", "ELU",
    "Mish", "MishActivation", "ReLUSquaredActivation",
})
#: modules every architecture may contain that need no rule (linear maps, embeddings, containers, eval dropout)
_NEUTRAL: frozenset[str] = frozenset({"Linear", "Conv1D", "Embedding", "Dropout", "Identity", "ModuleList", "ModuleDict"})
_NEUTRAL_TYPES: tuple[type, ...] = (torch.nn.Linear, torch.nn.Embedding, torch.nn.Dropout, torch.nn.Identity)


@dataclass(frozen=True)
class Family:
    """The module classes of one supported architecture and the rule each gets.

    Attributes:
        name: display name.
        model_types: ``config.model_type`` values of the family.
        attention: attention classes (they must call transformers' ``ALL_ATTENTION_FUNCTIONS``).
        norms: norm class -> kind (``"rms"``: y_j = c·s_j·x_j, one input coordinate per output; ``"layer"``: LayerNorm).
        gated_mlps: MLP classes computing ``down_proj(act(gate_proj(x)) * up_proj(x))``.
        neutral: further classes needing no rule (model wrappers, decoder layers, rotary embeddings, ...).
    """

    name: str
    model_types: tuple[str, ...]
    attention: frozenset[str] = frozenset()
    norms: dict[str, NormKind] = field(default_factory=dict)
    gated_mlps: frozenset[str] = frozenset()
    neutral: frozenset[str] = frozenset()


def _decoder_family(name: str, model_type: str, prefix: str, extra: tuple[str, ...] = ()) -> Family:
    wrappers = ("ForCausalLM", "Model", "ForSequenceClassification", "ForTokenClassification", "DecoderLayer", "RotaryEmbedding")
    return Family(
        name, (model_type,), attention=frozenset({f"{prefix}Attention"}), norms={f"{prefix}RMSNorm": "rms"},
        gated_mlps=frozenset({f"{prefix}MLP"}), neutral=frozenset({prefix + w for w in wrappers} | set(extra)),
    )


#: supported architectures by ``config.model_type`` (plus ``"sequential"``: a torch ``nn.Sequential``)
FAMILIES: dict[str, Family] = {
    "llama": _decoder_family("Llama", "llama", "Llama"),
    "qwen2": _decoder_family("Qwen2", "qwen2", "Qwen2"),
    "mistral": _decoder_family("Mistral", "mistral", "Mistral"),
    "gemma3_text": _decoder_family("Gemma-3 (text)", "gemma3_text", "Gemma3", ("Gemma3TextModel", "Gemma3TextScaledWordEmbedding")),
    "gpt2": Family(
        "GPT-2", ("gpt2",), attention=frozenset({"GPT2Attention"}), norms={"LayerNorm": "layer"},
        neutral=frozenset({"GPT2LMHeadModel", "GPT2Model", "GPT2Block", "GPT2MLP", "GPT2ForSequenceClassification",
                           "GPT2ForTokenClassification"}),
    ),
    "sequential": Family(
        "torch nn.Sequential", (), norms={"LayerNorm": "layer"},
        neutral=frozenset({"Sequential", "Flatten", "Unflatten", "Conv1d", "Conv2d", "Conv3d"}),
    ),
}


# ------------------------------------------------------------------------------------------------ architecture
def detect_family(model: torch.nn.Module) -> Family:
    """The :class:`Family` of ``model``; raises naming the supported architectures otherwise."""
    if not isinstance(model, torch.nn.Module):
        raise MetagameError(f"AttnLRP needs a torch.nn.Module; got {type(model).__name__}. Supported: {SUPPORTED_ARCHITECTURES}")
    if isinstance(model, torch.nn.Sequential):
        return FAMILIES["sequential"]
    config = getattr(model, "config", None)
    mtype = getattr(config, "model_type", None)
    for family in FAMILIES.values():
        if mtype in family.model_types:
            return family
    hint = ""
    if mtype in ("clip", "siglip", "clip_vision_model", "siglip_vision_model"):
        hint = " For CLIP/SigLIP image–text models use method='grad_eclip'."
    raise MetagameError(
        f"AttnLRP has no rules for {type(model).__name__} (model_type {mtype!r}); supported: {SUPPORTED_ARCHITECTURES}.{hint}"
    )


@dataclass
class _Plan:
    family: Family
    attention: list[torch.nn.Module] = field(default_factory=list)
    norms: list[tuple[torch.nn.Module, NormKind]] = field(default_factory=list)
    activations: list[torch.nn.Module] = field(default_factory=list)
    products: list[torch.nn.Module] = field(default_factory=list)  # down_proj of gated MLPs


def _plan(model: torch.nn.Module) -> _Plan:
    family = detect_family(model)
    config = getattr(model, "config", None)
    for attr in ("attn_logit_softcapping", "final_logit_softcapping"):
        if getattr(config, attr, None) is not None:
            raise MetagameError(
                f"{type(model).__name__} uses {attr}={getattr(config, attr)} (a tanh inside the computation that AttnLRP "
                f"has no rule for); set config.{attr} = None only if the checkpoint was trained without it"
            )
    plan = _Plan(family)
    gated_downs: set[int] = set()
    for name, module in model.named_modules():
        cls = type(module).__name__
        if cls in family.attention:
            plan.attention.append(module)
        elif cls in family.norms:
            kind = family.norms[cls]
            if kind == "layer" and not isinstance(module, torch.nn.LayerNorm):
                raise MetagameError(f"norm {name!r} ({cls}) is not a torch LayerNorm; this transformers version is not supported")
            plan.norms.append((module, kind))
        elif cls in ACTIVATIONS:
            plan.activations.append(module)
        elif cls in family.gated_mlps:
            down = getattr(module, "down_proj", None)
            if not isinstance(down, torch.nn.Module):
                raise MetagameError(f"gated MLP {name!r} ({cls}) has no down_proj; this transformers version is not supported")
            plan.products.append(down)
            gated_downs.add(id(down))
        elif cls in family.neutral or cls in _NEUTRAL or isinstance(module, _NEUTRAL_TYPES):
            continue
        else:
            where = f"module {name!r}" if name else "the model"
            raise MetagameError(
                f"AttnLRP has no rule for {where} of type {cls} in this {family.name} model (an adapter, a quantised or "
                f"custom layer?); supported: {SUPPORTED_ARCHITECTURES}"
            )
    if family.attention and not plan.attention:
        raise MetagameError(f"no {family.name} attention layers found in {type(model).__name__}; AttnLRP cannot apply its attention rule")
    return plan


# ------------------------------------------------------------------------------------------------ context manager
@dataclass
class AttnLRPRules:
    """What :func:`attnlrp_rules` changed on a model (for reports and tests)."""

    family: str
    n_attention: int
    n_norms: int
    n_activations: int
    n_products: int


def _layer_norm_hook(module, args, output):
    if not torch.is_grad_enabled() or not isinstance(output, torch.Tensor):
        return None
    weight = module.weight.detach() if module.weight is not None else None
    return _LayerNormRule.apply(args[0], output, weight, module.eps)


def _activation_hook(module, args, output):
    if not torch.is_grad_enabled() or not isinstance(output, torch.Tensor):
        return None
    return _IdentityRule.apply(args[0], output)


def _product_hook(module, args):
    if not args or not isinstance(args[0], torch.Tensor):
        return None
    return (_scale(args[0], 0.5), *args[1:])


@contextmanager
def attnlrp_rules(model: torch.nn.Module) -> Iterator[AttnLRPRules]:
    """Apply the AttnLRP rules to ``model`` (one instance) inside the block; everything is undone on exit.

    Within the block, gradient × input of the model's backward pass is the AttnLRP relevance
    R_i = x_i ĝ_i (see the module docstring for the rules); forward outputs are unchanged.

    Args:
        model: a Hugging Face Llama, Qwen2, Mistral, Gemma-3 (text) or GPT-2 model (causal LM or its decoder),
            or a torch ``nn.Sequential``; in eval mode.

    Returns:
        A context manager yielding :class:`AttnLRPRules` (counts of the rewritten sites).

    Raises:
        MetagameError: for other architectures (the message lists the supported ones), a model in training
            mode, or rules already active on this model.

    Example:
        >>> with attnlrp_rules(lm) as rules:
        ...     emb = lm.get_input_embeddings()(ids).detach().requires_grad_()
        ...     lm(inputs_embeds=emb).logits[0, -1, token].backward()
        ...     relevance = (emb * emb.grad).sum(-1)
    """
    plan = _plan(model)
    if model.training:
        raise MetagameError(f"{type(model).__name__} is in training mode (dropout active); call model.eval() before AttnLRP")
    with _LOCK:
        if model in _ACTIVE_MODELS:
            raise MetagameError("AttnLRP rules are already active on this model; do not nest attnlrp_rules on one model")
        _ACTIVE_MODELS.add(model)
    handles: list[Any] = []
    configs: list[Any] = []
    try:
        with _LOCK:
            seen: set[int] = set()
            for attn in plan.attention:
                cfg = getattr(attn, "config", None)
                if cfg is None:
                    raise MetagameError(f"{type(attn).__name__} has no config; this transformers version is not supported")
                if id(cfg) not in seen:
                    seen.add(id(cfg))
                    _select(cfg)
                    configs.append(cfg)
            for attn in plan.attention:
                _ACTIVE_ATTENTION.add(attn)
        for module, kind in plan.norms:
            # RMSNorm maps each coordinate through one factor c·w_j (c = 1/rms held constant): the identity rule
            # R_x = R_y element-wise, i.e. ĝ_x = ĝ_y · y / x, exact for any weight convention (w or 1 + w)
            handles.append(module.register_forward_hook(_layer_norm_hook if kind == "layer" else _activation_hook))
        for module in plan.activations:
            handles.append(module.register_forward_hook(_activation_hook))
        for module in plan.products:
            handles.append(module.register_forward_pre_hook(_product_hook))
        yield AttnLRPRules(plan.family.name, len(plan.attention), len(plan.norms), len(plan.activations), len(plan.products))
    finally:
        for h in handles:
            h.remove()
        with _LOCK:
            for attn in plan.attention:
                _ACTIVE_ATTENTION.discard(attn)
            for cfg in configs:
                _deselect(cfg)
            _ACTIVE_MODELS.discard(model)


# ------------------------------------------------------------------------------------------------ the method
def adapter_module(adapter: ModelAdapter) -> torch.nn.Module:
    """The torch module an adapter wraps (its :class:`~metagame.models.contract.TorchModule` capability,
    ``adapter.model``), checked to be one AttnLRP supports."""
    require_capability(
        adapter, TorchModule, "method 'attnlrp'",
        f"AttnLRP rewrites the backward pass of an adapter that wraps a torch module in its 'model' attribute; use "
        f"CausalLM, ComponentModel or TensorModel with an nn.Sequential. Supported: {SUPPORTED_ARCHITECTURES}")
    module = adapter.model
    detect_family(module)
    return module


class AttnLRP(_GradientMethod):
    """AttnLRP: φ_i = Σ_{c∈i} (z_c − b_c) ĝ_c, ĝ the backward pass under the AttnLRP rules at x_S.

    Gradient × input of the modified backward pass (see :func:`attnlrp_rules`), batched like
    gradient × input (many coalitions per forward/backward). On a language model with attention masking
    b = 0, so φ is the AttnLRP relevance of each word's token embeddings; on component gates (zero
    ablation) it is the relevance of each component's activation.
    """

    name = "attnlrp"
    applications = ("lm", "components", "joint")

    def attribute(self, model: ModelAdapter, coalitions: np.ndarray) -> torch.Tensor:
        module = adapter_module(model)
        with attnlrp_rules(module):
            return super().attribute(model, coalitions)

    def _attribute_chunk(self, model, coalitions):
        z, zb, extra = model.embed(coalitions)
        g = input_gradients(model, z, extra, coalitions, self.name)
        return model.reduce((z - zb) * g)


__all__ = [
    "ACTIVATIONS",
    "AttnLRP",
    "AttnLRPRules",
    "FAMILIES",
    "Family",
    "SUPPORTED_ARCHITECTURES",
    "adapter_module",
    "attnlrp_rules",
    "detect_family",
]
