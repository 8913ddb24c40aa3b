"""The gradient rules of AttnLRP (see :mod:`metagame.domains.lm.attnlrp`): autograd functions that keep the forward
value and rescale or replace the backward pass, and the per-model attention function registered in transformers'
attention interface (selected on one model's config, restored afterwards)."""

from __future__ import annotations

import sys
import threading
import weakref
from typing import Any, Callable

import torch

from ...errors import MetagameError

#: what AttnLRP supports (named in every refusal)
SUPPORTED_ARCHITECTURES = (
    "Hugging Face Llama, Qwen2, Mistral, Gemma-3 (text) and GPT-2 models (model_type llama, qwen2, mistral, "
    "gemma3_text, gpt2), or a torch nn.Sequential of Linear/Conv layers, element-wise activations and LayerNorm"
)


# ------------------------------------------------------------------------------------------------ gradient rules
class _ScaleGrad(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by a constant (the uniform rule)."""

    @staticmethod
    def forward(ctx, x, factor):
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return g * ctx.factor, None


class _IdentityRule(torch.autograd.Function):
    """Returns y = σ(x) unchanged; backward ĝ_x = ĝ_y · y / x (0 where x = 0), so x ⊙ ĝ_x = y ⊙ ĝ_y."""

    @staticmethod
    def forward(ctx, x, y):
        work = torch.promote_types(x.dtype, torch.float32)
        xf, yf = x.to(work), y.to(work)
        nonzero = xf != 0
        ratio = torch.where(nonzero, yf / torch.where(nonzero, xf, torch.ones_like(xf)), torch.zeros_like(yf))
        ctx.save_for_backward(ratio.to(x.dtype))
        return y.view_as(y)

    @staticmethod
    def backward(ctx, g):
        (ratio,) = ctx.saved_tensors
        return g * ratio, None


class _LayerNormRule(torch.autograd.Function):
    """Returns LayerNorm's output unchanged; backward is its gradient with 1/std held constant:
    ĝ_x = r (t − mean(t)), t = w ⊙ ĝ_y."""

    @staticmethod
    def forward(ctx, x, y, weight, eps):
        ctx.save_for_backward(x, weight if weight is not None else torch.empty(0))
        ctx.eps, ctx.has_weight = float(eps), weight is not None
        return y.view_as(y)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        work = torch.promote_types(x.dtype, torch.float32)
        xf, t = x.to(work), g.to(work)
        if ctx.has_weight:
            t = t * w.to(work)
        r = torch.rsqrt((xf - xf.mean(-1, keepdim=True)).pow(2).mean(-1, keepdim=True) + ctx.eps)
        return (r * (t - t.mean(-1, keepdim=True))).to(x.dtype), None, None, None


def _scale(x: torch.Tensor, factor: float) -> torch.Tensor:
    return _ScaleGrad.apply(x, factor) if torch.is_grad_enabled() and x.requires_grad else x


# ------------------------------------------------------------------------------------------------ attention registry
_LOCK = threading.RLock()
_KEY_PREFIX = "metagame_attnlrp:"
_ACTIVE_ATTENTION: "weakref.WeakSet[torch.nn.Module]" = weakref.WeakSet()
_ACTIVE_MODELS: "weakref.WeakSet[torch.nn.Module]" = weakref.WeakSet()
_CONFIGS: dict[int, list] = {}  # id(config) -> [config, saved internal implementation, users]
_KEYS: dict[str, int] = {}  # registered key -> configs using it


def _module_eager(module: torch.nn.Module) -> Callable:
    """The eager attention function of the module's own modeling file (what transformers falls back to)."""
    if getattr(module, "reorder_and_upcast_attn", False) and hasattr(module, "_upcast_and_reordered_attn"):

        def upcast(mod, query, key, value, attention_mask, *args, **kwargs):
            return mod._upcast_and_reordered_attn(query, key, value, attention_mask)

        return upcast
    fn = getattr(sys.modules.get(type(module).__module__), "eager_attention_forward", None)
    if fn is None:
        raise MetagameError(f"{type(module).__name__} has no eager attention function; AttnLRP supports {SUPPORTED_ARCHITECTURES}")
    return fn


def _attention_for(base: str | None) -> Callable:
    from transformers.modeling_utils import AttentionInterface

    base_fn = None if base in (None, "eager") else AttentionInterface._global_mapping.get(base)

    def attnlrp_attention(module, query, key, value, attention_mask, *args, **kwargs):
        if module in _ACTIVE_ATTENTION:
            query, key, value = _scale(query, 0.25), _scale(key, 0.25), _scale(value, 0.5)
        fn = base_fn if base_fn is not None else _module_eager(module)
        return fn(module, query, key, value, attention_mask, *args, **kwargs)

    return attnlrp_attention


def _acquire_key(base: str | None) -> str:
    from transformers.masking_utils import AttentionMaskInterface
    from transformers.modeling_utils import AttentionInterface

    key = f"{_KEY_PREFIX}{base}"
    if _KEYS.get(key, 0) == 0:
        if base not in (None, "eager") and base not in AttentionInterface._global_mapping:
            raise MetagameError(
                f"the model uses attention implementation {base!r}, which transformers does not list; AttnLRP runs on "
                f"'eager', 'sdpa' and the other registered implementations: model.set_attn_implementation('sdpa')"
            )
        AttentionInterface.register(key, _attention_for(base))
        mask_fn = AttentionMaskInterface._global_mapping.get(base) if base is not None else None
        if mask_fn is not None:
            AttentionMaskInterface.register(key, mask_fn)
    _KEYS[key] = _KEYS.get(key, 0) + 1
    return key


def _release_key(key: str) -> None:
    from transformers.masking_utils import AttentionMaskInterface
    from transformers.modeling_utils import AttentionInterface

    _KEYS[key] -= 1
    if _KEYS[key] == 0:
        del _KEYS[key]
        AttentionInterface._global_mapping.pop(key, None)
        AttentionMaskInterface._global_mapping.pop(key, None)


def _select(config: Any) -> None:
    """Switch one config to the AttnLRP attention (reference-counted: configs may be shared by models)."""
    entry = _CONFIGS.get(id(config))
    if entry is not None:
        entry[2] += 1
        return
    saved = config._attn_implementation_internal
    base = config._attn_implementation
    key = _acquire_key(base)
    config._attn_implementation_internal = key
    _CONFIGS[id(config)] = [config, saved, 1]


def _deselect(config: Any) -> None:
    entry = _CONFIGS[id(config)]
    entry[2] -= 1
    if entry[2] == 0:
        del _CONFIGS[id(config)]
        key = config._attn_implementation_internal
        config._attn_implementation_internal = entry[1]
        _release_key(key)
