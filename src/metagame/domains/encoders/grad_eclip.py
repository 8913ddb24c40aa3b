"""Grad-ECLIP (Zhao et al., ICML 2024): gradient-weighted value maps of CLIP/SigLIP's pooling attention.

CLIP's image embedding is read from one token (CLS) after the last layer, whose attention output at that
token is o = Σ_i A_i v_i (values v_i of the image tokens, heads concatenated, before the output
projection). Grad-ECLIP weights each channel c of o by the gradient of the explained output,
w_c = ∂f/∂o_c, and replaces the sparse softmax weights A_i by a "loosened" spatial weight, the cosine
similarity of the pooling query q and the token's key k_i rescaled to [0, 1] over the explained tokens:

    c_i = cos(q, k_i),   λ_i = (c_i − min_j c_j) / (max_j c_j − min_j c_j),
    H_i = ReLU( λ_i · Σ_c w_c v_{i,c} ).

Here f is the adapter's image–text logit exp(s)·cos(e_img, e_txt) (+ b), so H is exp(s) times the map of the
cosine; maps are not normalised (normalising is a display choice). Which query pools the embedding:

* CLIP image: the CLS token in the last vision layer; the map covers the patch tokens (CLS excluded).
* SigLIP image: there is no CLS token; the embedding is pooled by the attention-pooling head
  (``vision_model.head``: a learned probe attends over the last hidden states). That attention is the one
  that aggregates the patches into the embedding, so q = the probe's projected query, k_i, v_i = the head's
  keys and values of the patches, and w = ∂f/∂o at the head's attention output (before its out-projection).
* CLIP text: the EOS token (the pooled position) in the last text layer, over the tokens it attends to
  (causal: the tokens up to EOS that are kept in x_S).
* SigLIP text: the last position (SigLIP pools the last token, a pad token for short texts) in the last
  text layer, over the kept tokens.

Scores are per native patch and per token; a patch group's score is the sum over its native patches,
a word's the sum over its tokens. Players absent from S score 0 (their tokens or mean-colour patches are
not the explained content). The public reference code re-runs the last layer as one-head attention; this
implementation keeps the model's own multi-head forward, so f is exactly the model's logit.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Protocol, runtime_checkable

import numpy as np
import torch

from ...errors import MetagameError
from ...methods.base import AttributionMethod
from ...models.base import ModelAdapter
from ...models.contract import Differentiable, require_capability
from ..hf.common import add_token_scores


def minmax(c: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Rescale ``c`` ``[n, T]`` to [0, 1] per row over the entries where ``valid`` (all by default); 0 elsewhere.

    A row whose valid entries are all equal gets λ = 1 on them.
    """
    if valid is None:
        valid = torch.ones_like(c, dtype=torch.bool)
    big = torch.finfo(c.dtype).max
    lo = torch.where(valid, c, torch.full_like(c, big)).min(dim=-1, keepdim=True).values
    hi = torch.where(valid, c, torch.full_like(c, -big)).max(dim=-1, keepdim=True).values
    span = hi - lo
    lam = torch.where(span > 0, (c - lo) / torch.where(span > 0, span, torch.ones_like(span)), torch.ones_like(c))
    return torch.where(valid, lam, torch.zeros_like(c))


def eclip_map(w: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """H_i = ReLU(λ_i Σ_c w_c v_ic), λ = min-max rescaled cos(q, k_i): ``w, q [n, D]``, ``k, v [n, T, D]`` -> ``[n, T]``."""
    cos = torch.nn.functional.cosine_similarity(q.unsqueeze(1), k, dim=-1)
    lam = minmax(cos, valid)
    return torch.relu(lam * (v @ w.unsqueeze(-1)).squeeze(-1))


class _Capture:
    """Tensors recorded during one forward pass (inputs of the pooling attention and its output)."""

    def __init__(self) -> None:
        self.q: torch.Tensor | None = None
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.o: torch.Tensor | None = None  # attention output before the out-projection (CLIP-style layers)
        self.y: torch.Tensor | None = None  # nn.MultiheadAttention output after its out-projection (SigLIP head)


def _store(cap: _Capture, name: str):
    def hook(module, args, output):
        setattr(cap, name, output.detach())

    return hook


def _vision_encoder(model: Any):
    vm = getattr(model, "vision_model", None)
    layers = getattr(getattr(vm, "encoder", None), "layers", None)
    if vm is None or not layers:
        raise MetagameError(f"{type(model).__name__} has no vision_model.encoder.layers; grad_eclip supports CLIPModel and SiglipModel")
    return vm, layers


@contextmanager
def _attention_capture(layer_attn: torch.nn.Module, cap: _Capture) -> Iterator[None]:
    """Record q, k, v projections and the out-projection's input of a CLIP/SigLIP attention layer."""
    handles = []
    try:
        for name in ("q", "k", "v"):
            proj = getattr(layer_attn, f"{name}_proj", None)
            if proj is None:
                raise MetagameError(f"{type(layer_attn).__name__} has no {name}_proj; grad_eclip supports CLIPModel and SiglipModel")
            handles.append(proj.register_forward_hook(_store(cap, name)))

        def pre(module, args):
            cap.o = args[0]

        handles.append(layer_attn.out_proj.register_forward_pre_hook(pre))
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def _mha_capture(mha: torch.nn.MultiheadAttention, cap: _Capture) -> Iterator[None]:
    """Record the probe query, the keys/values and the output of SigLIP's attention-pooling head."""

    def hook(module, args, kwargs, output):
        query = args[0] if len(args) > 0 else kwargs["query"]
        key = args[1] if len(args) > 1 else kwargs["key"]
        value = args[2] if len(args) > 2 else kwargs["value"]
        d = module.embed_dim
        if module.in_proj_weight is not None:
            wq, wk, wv = module.in_proj_weight.detach().split(d)
        else:
            wq, wk, wv = (module.q_proj_weight.detach(), module.k_proj_weight.detach(), module.v_proj_weight.detach())
        bq = bk = bv = None
        if module.in_proj_bias is not None:
            bq, bk, bv = module.in_proj_bias.detach().split(d)
        lin = torch.nn.functional.linear
        cap.q = lin(query.detach(), wq, bq)
        cap.k = lin(key.detach(), wk, bk)
        cap.v = lin(value.detach(), wv, bv)
        cap.y = output[0]

    handle = mha.register_forward_hook(hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


@runtime_checkable
class ImageTextView(Differentiable, Protocol):
    """The capability grad_eclip needs (:mod:`metagame.models.contract`): a CLIP/SigLIP ``model`` (``model_type``),
    the image patches as players (``include_patches``, ``n_patches``, the model's ``native_grid`` of ``patch_size``
    pixels, ``pixel_patch``: the player of every pixel), the caption tokens (``include_words``, ``input_ids``,
    ``n_tokens``, ``token_player``) and the differentiable view. A
    :class:`~metagame.domains.encoders.vision.VisionLanguageModel` provides it."""

    model: torch.nn.Module
    model_type: str
    include_patches: bool
    n_patches: int
    native_grid: int
    patch_size: int
    pixel_patch: torch.Tensor
    include_words: bool
    input_ids: torch.Tensor
    n_tokens: int
    token_player: torch.Tensor


class GradECLIP(AttributionMethod):
    """Grad-ECLIP: φ_i = Σ_{tokens t of i} ReLU(λ_t Σ_c ∂f/∂o_c · v_{t,c}) at x_S (0 for absent players).

    o is the pooling query's attention output (CLIP: CLS / EOS in the last layer; SigLIP image: the
    attention-pooling head; SigLIP text: the last position), v the values, λ the [0, 1]-rescaled query–key
    cosine. Works on adapters with the :class:`ImageTextView` capability (a
    :class:`~metagame.domains.encoders.vision.VisionLanguageModel`: patches and words); one forward and one backward
    pass per batch of coalitions.
    """

    name = "grad_eclip"
    applications = ("vision",)
    family = "gradient"
    needs_gradients = True

    def attribute(self, model: ModelAdapter, coalitions: np.ndarray) -> torch.Tensor:
        require_capability(model, ImageTextView, "method 'grad_eclip'",
                           "grad_eclip explains CLIP/SigLIP image–text models (VisionLanguageModel, metagame vision); "
                           "for language models use 'attnlrp' or 'gradient_x_input'")
        coalitions = np.asarray(coalitions, dtype=bool)
        per = max(1, model.batch_size)
        parts = [self._chunk(model, coalitions[s : s + per]) for s in range(0, len(coalitions), per)]
        return torch.cat(parts) if parts else torch.zeros(0, model.n_players, dtype=model.dtype)

    # ---------------------------------------------------------------- one batch
    def _chunk(self, ad, coalitions: np.ndarray) -> torch.Tensor:
        net = ad.model
        siglip = ad.model_type == "siglip"
        vm, vlayers = _vision_encoder(net)
        tlayers = getattr(getattr(getattr(net, "text_model", None), "encoder", None), "layers", None)
        if not tlayers:
            raise MetagameError(f"{type(net).__name__} has no text_model.encoder.layers; grad_eclip supports CLIPModel and SiglipModel")
        img, txt = _Capture(), _Capture()
        if siglip:
            head = getattr(vm, "head", None)
            if head is None or not isinstance(getattr(head, "attention", None), torch.nn.MultiheadAttention):
                raise MetagameError("this SigLIP vision model has no attention-pooling head (vision_use_head=False); grad_eclip needs it")
            img_ctx = _mha_capture(head.attention, img)
        else:
            img_ctx = _attention_capture(vlayers[-1].self_attn, img)
        z, _, extra = ad.embed(coalitions)
        z = z.detach().clone().requires_grad_(True)
        with torch.enable_grad(), img_ctx, _attention_capture(tlayers[-1].self_attn, txt):
            out = ad.forward(z, extra, row_coalitions=coalitions)
            img_out = img.y if siglip else img.o
            if img_out is None or txt.o is None:
                raise MetagameError("internal: grad_eclip did not see the pooling attention run; is this a CLIP/SigLIP model?")
            g_img, g_txt = torch.autograd.grad(out.sum(), [img_out, txt.o])
        n = z.shape[0]
        scores = torch.zeros(n, ad.n_players, dtype=torch.float64, device=z.device)
        if ad.include_patches:
            heat = self._image_map(ad, img, g_img, siglip)  # [n, native²]
            scores[:, : ad.n_patches].index_add_(1, self.native_groups(ad), heat.to(torch.float64))
        if ad.include_words:
            keep = extra.bool() if extra is not None else torch.ones(n, ad.n_tokens, dtype=torch.bool, device=z.device)
            heat = self._text_map(ad, txt, g_txt, keep, siglip)  # [n, L]
            add_token_scores(scores, heat.to(torch.float64), ad.token_player)
        present = torch.as_tensor(coalitions, device=scores.device)
        return (scores * present).to(ad.dtype).detach()

    @staticmethod
    def native_groups(ad) -> torch.Tensor:
        """Player index (patch group) of every native patch, row-major: ``[native²]``."""
        p, g = ad.patch_size, ad.native_grid
        return ad.pixel_patch[: g * p : p, : g * p : p].reshape(-1)

    @staticmethod
    def _image_map(ad, cap: _Capture, grad: torch.Tensor, siglip: bool) -> torch.Tensor:
        if siglip:
            out_w = ad.model.vision_model.head.attention.out_proj.weight.detach()
            w = grad[:, 0, :] @ out_w.to(grad.dtype)  # ∂f/∂o from ∂f/∂y, y = o Wᵀ + b
            return eclip_map(w, cap.q[:, 0, :], cap.k, cap.v)
        return eclip_map(grad[:, 0, :], cap.q[:, 0, :], cap.k[:, 1:, :], cap.v[:, 1:, :])

    @staticmethod
    def query_position(ad) -> int:
        """Position of the token the text embedding is pooled from (CLIP: EOS; SigLIP: the last)."""
        if ad.model_type == "siglip":
            return ad.n_tokens - 1
        ids = ad.input_ids
        eos = getattr(ad.model.text_model, "eos_token_id", None)
        if eos == 2 or eos is None:
            return int(ids.argmax())
        hits = torch.nonzero(ids == eos)
        if len(hits) == 0:
            raise MetagameError("the tokenized text has no EOS token, which CLIP pools from; use the model's own tokenizer")
        return int(hits[0])

    def _text_map(self, ad, cap: _Capture, grad: torch.Tensor, keep: torch.Tensor, siglip: bool) -> torch.Tensor:
        e = self.query_position(ad)
        valid = keep.clone()
        if not siglip:
            valid[:, e + 1 :] = False  # causal: EOS sees tokens up to itself
        return eclip_map(grad[:, e, :], cap.q[:, e, :], cap.k, cap.v, valid)

    def params(self) -> dict[str, Any]:
        return {}


__all__ = ["GradECLIP", "ImageTextView", "eclip_map", "minmax"]
