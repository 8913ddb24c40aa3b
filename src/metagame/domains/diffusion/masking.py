"""Prompt words as players: a word is removed from every joint attention through the attention mask (text
embeddings and image latents held fixed)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import torch

from .inputs import HookSet, _check_unfused, _n_image_tokens, _Stop, joint_blocks, run_transformer, transformer_family


# ------------------------------------------------------------------------------------------------ prompt-word masking
class MaskedJointAttnProcessor:
    """SD3 joint attention ([image; text], as diffusers' ``JointAttnProcessor2_0``) that honours a key mask
    ``attention_mask[n, P + T]`` (True = attend) and can report the raw attention outputs (before the output
    projections) to ``record(image_out [n, P, inner], text_out [n, T, inner])``."""

    def __init__(self, record: Callable[[torch.Tensor, torch.Tensor], None] | None = None) -> None:
        self.record = record

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, *args, **kwargs):
        import torch.nn.functional as F

        n, p = hidden_states.shape[:2]
        heads = attn.heads

        def split(x):
            return x.view(n, -1, heads, x.shape[-1] // heads).transpose(1, 2)

        q, k, v = split(attn.to_q(hidden_states)), split(attn.to_k(hidden_states)), split(attn.to_v(hidden_states))
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        if attn.norm_k is not None:
            k = attn.norm_k(k)
        if encoder_hidden_states is not None:
            eq = split(attn.add_q_proj(encoder_hidden_states))
            ek = split(attn.add_k_proj(encoder_hidden_states))
            ev = split(attn.add_v_proj(encoder_hidden_states))
            if attn.norm_added_q is not None:
                eq = attn.norm_added_q(eq)
            if attn.norm_added_k is not None:
                ek = attn.norm_added_k(ek)
            q, k, v = torch.cat([q, eq], dim=2), torch.cat([k, ek], dim=2), torch.cat([v, ev], dim=2)
        mask = None
        if attention_mask is not None:
            mask = attention_mask.to(torch.bool).view(n, 1, 1, -1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, is_causal=False)
        out = out.transpose(1, 2).reshape(n, -1, out.shape[1] * out.shape[-1]).to(q.dtype)
        if encoder_hidden_states is None:
            return attn.to_out[1](attn.to_out[0](out))
        img, txt = out[:, :p], out[:, p:]
        if self.record is not None:
            self.record(img, txt)
        if not attn.context_pre_only:
            txt = attn.to_add_out(txt)
        img = attn.to_out[1](attn.to_out[0](img))
        return img, txt


@contextmanager
def text_masking(
    transformer: Any,
    keep_text: torch.Tensor,
    n_image: int,
    *,
    read: Sequence[int] = (),
    on_outputs: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
    stop_after_read: bool = False,
) -> Iterator[dict]:
    """Remove text tokens from every joint attention: yields the ``joint_attention_kwargs`` to pass.

    ``keep_text[n, T]`` (True = present); ``n_image`` = P image tokens. Flux: the stock processors' key mask over [text; image] (also used by
    the single-stream blocks). SD3: :class:`MaskedJointAttnProcessor` on the joint blocks (key mask over
    [image; text]). For the blocks in ``read``, ``on_outputs(block, image_out [n, P, inner], text_out [n, T, inner])``
    gets the raw attention outputs; with ``stop_after_read`` the forward stops after the last of them.
    """
    family = transformer_family(transformer)
    blocks = joint_blocks(transformer)
    _check_unfused(blocks)
    read = sorted(set(int(b) for b in read))
    hooks = HookSet()
    state: dict[str, Any] = {}
    n = keep_text.shape[0]
    try:
        if family == "flux":
            for b in read:
                attn = blocks[b].attn
                hooks.add(attn.to_out[0].register_forward_pre_hook(lambda m, a: state.__setitem__("img", a[0])))
                hooks.add(attn.to_add_out.register_forward_pre_hook(lambda m, a: state.__setitem__("txt", a[0])))
                hooks.add(blocks[b].register_forward_hook(
                    lambda m, a, out, b=b: on_outputs(b, state["img"], state["txt"]) if on_outputs else None))
            mask = torch.cat([keep_text, torch.ones(n, n_image, dtype=torch.bool, device=keep_text.device)], 1)
        else:
            last = read[-1] if read else len(blocks) - 1
            for b, blk in enumerate(blocks):
                rec = None
                if b in read and on_outputs is not None:
                    rec = lambda img, txt, b=b: on_outputs(b, img, txt)  # noqa: E731
                if b <= last or not stop_after_read:
                    hooks.swap_processor(blk.attn, MaskedJointAttnProcessor(rec))
            mask = torch.cat([torch.ones(n, n_image, dtype=torch.bool, device=keep_text.device), keep_text], 1)
        if stop_after_read and read:
            def stop(m, a, out):
                raise _Stop()

            hooks.add(blocks[read[-1]].register_forward_hook(stop))
        yield {"attention_mask": mask}
    finally:
        hooks.remove()


def masked_text_forward(
    transformer: Any, kwargs: dict[str, Any], keep_text: torch.Tensor, **masking
) -> torch.Tensor | None:
    """Forward of single-row ``kwargs`` for each row of ``keep_text[n, T]`` (absent text tokens masked out of
    every joint attention). Returns the model output ``[n, ...]`` (None when stopped early)."""
    family = transformer_family(transformer)
    p = _n_image_tokens(family, kwargs, transformer)
    keep_text = keep_text.to(device=kwargs["hidden_states"].device, dtype=torch.bool)
    with text_masking(transformer, keep_text, p, **masking) as joint_attention_kwargs:
        return run_transformer(transformer, kwargs, keep_text.shape[0], joint_attention_kwargs)


