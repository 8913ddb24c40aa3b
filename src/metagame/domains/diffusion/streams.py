"""ConceptAttention's concept streams: concept tokens run through the joint blocks with the text stream's weights;
hooks that read the attention outputs and are always removed."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from ...errors import MetagameError
from .inputs import CHUNK_FLOATS, HookSet, _arg, _check_unfused, _Stop, joint_blocks, transformer_family


# ------------------------------------------------------------------------------------------------ maps
def masked_softmax(scores: torch.Tensor, present: torch.Tensor, softmax: bool = True) -> torch.Tensor:
    """Softmax over the players axis (−2) of ``scores[n, d, P]`` restricted to ``present[n, d]``; absent rows are 0.

    With ``softmax=False`` the raw scores of present players (0 for absent ones).
    """
    keep = present[:, :, None]
    if not softmax:
        return torch.where(keep, scores, torch.zeros((), dtype=scores.dtype, device=scores.device))
    s = scores.masked_fill(~keep, float("-inf"))
    mx = s.amax(dim=-2, keepdim=True)
    mx = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))
    e = torch.exp(s - mx)
    z = e.sum(dim=-2, keepdim=True)
    return torch.where(z > 0, e / z.clamp_min(torch.finfo(e.dtype).tiny), torch.zeros_like(e))


def _concept_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    k_img: torch.Tensor,
    v_img: torch.Tensor,
    row: torch.Tensor,
    col: torch.Tensor,
    n_rows: int,
    n_concepts: int,
    self_attention: bool,
) -> torch.Tensor:
    """softmax(q [k_S; k_img]ᵀ/√e) [v_S; v_img] for packed concept tokens.

    q, k, v: ``[N, H, e]``, one entry per present (row, concept) pair (``row[N]``, ``col[N]``); a query sees the
    image keys ``k_img [H, P, e]`` (shared by every row) and the concept keys of its own row: all of them with
    ``self_attention``, else only its own. Returns ``[N, H·e]`` (heads concatenated, as the model's processors).
    """
    n_tok, h, e = q.shape
    scale = e**-0.5
    li = torch.bmm(q.transpose(0, 1), k_img.transpose(1, 2)) * scale  # [H, N, P]
    pad_q = q.new_zeros(n_rows, n_concepts, h, e)
    pad_k, pad_v = torch.zeros_like(pad_q), torch.zeros_like(pad_q)
    pad_q[row, col], pad_k[row, col], pad_v[row, col] = q, k, v
    present = torch.zeros(n_rows, n_concepts, dtype=torch.bool, device=q.device)
    present[row, col] = True
    lc = torch.einsum("nqhe,nkhe->hnqk", pad_q, pad_k)[:, row, col] * scale  # [H, N, d]: own row's concept keys
    allowed = present[row]
    if not self_attention:
        allowed = allowed & (torch.arange(n_concepts, device=q.device)[None, :] == col[:, None])
    lc = lc.masked_fill(~allowed[None], float("-inf"))
    mx = torch.maximum(li.amax(dim=-1), lc.amax(dim=-1))
    ei = torch.exp(li - mx[..., None])
    ec = torch.exp(lc - mx[..., None])
    z = ei.sum(dim=-1) + ec.sum(dim=-1)
    pad_ec = ec.new_zeros(h, n_rows, n_concepts, n_concepts)
    pad_ec[:, row, col] = ec
    out = torch.bmm(ei, v_img)  # [H, N, e]
    out = out + torch.einsum("hnqk,nkhe->hnqe", pad_ec, pad_v)[:, row, col]
    out = out / z[..., None]
    return out.transpose(0, 1).reshape(n_tok, h * e)


class ConceptStreams:
    """Hooks that run ConceptAttention concept streams alongside one transformer forward.

    ``present[m, d]``: one concept stream per row (a coalition); concept c of row r attends to the image
    patches, to itself and, with ``self_attention``, to the other present concepts of its row. After every
    block in ``read`` the raw scores ⟨o_c, o_p⟩ ``[n, d, P]`` of rows ``start:start+n`` go to
    ``on_scores(block, start, scores)``. The forward stops after the last block read.
    """

    def __init__(
        self,
        transformer: Any,
        concept_embeds: torch.Tensor,
        present: np.ndarray,
        *,
        self_attention: bool,
        read: Sequence[int],
        on_scores: Callable[[int, int, torch.Tensor], None],
        rows_per_chunk: int | None = None,
    ) -> None:
        self.transformer = transformer
        self.family = transformer_family(transformer)
        self.blocks = joint_blocks(transformer)
        _check_unfused(self.blocks)
        self.read = sorted(set(int(b) for b in read))
        if not self.read or self.read[0] < 0 or self.read[-1] >= len(self.blocks):
            raise MetagameError(f"blocks must be joint-block indices in 0..{len(self.blocks) - 1}; got {list(read)}")
        self.present = torch.as_tensor(np.asarray(present, dtype=bool))
        self.self_attention = bool(self_attention)
        self.on_scores = on_scores
        self.concept_embeds = concept_embeds
        self.rows_per_chunk = rows_per_chunk
        self.hooks = HookSet()
        self._seen: dict[str, Any] = {}
        self.h: torch.Tensor | None = None

    # -------------------------------------------------------------- hooks
    def __enter__(self) -> "ConceptStreams":
        try:
            self._register()
        except BaseException:
            self.hooks.remove()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.hooks.remove()
        self.h = None
        self._seen.clear()

    def _register(self) -> None:
        last = self.read[-1]
        for b, blk in enumerate(self.blocks[: last + 1]):
            attn = blk.attn
            self.hooks.add(blk.register_forward_pre_hook(self._block_inputs, with_kwargs=True))
            self.hooks.add(attn.to_k.register_forward_hook(lambda m, a, out: self._seen.__setitem__("k", out)))
            self.hooks.add(attn.to_v.register_forward_hook(lambda m, a, out: self._seen.__setitem__("v", out)))
            self.hooks.add(attn.to_out[0].register_forward_pre_hook(lambda m, a: self._seen.__setitem__("o", a[0])))
            self.hooks.add(blk.register_forward_hook(lambda m, a, out, b=b: self._advance(b)))

    def _block_inputs(self, module, args, kwargs) -> None:
        self._seen.clear()
        self._seen["temb"] = _arg(args, kwargs, "temb", 2)
        self._seen["rope"] = _arg(args, kwargs, "image_rotary_emb", 3) if self.family == "flux" else None
        self._seen["n_text"] = _arg(args, kwargs, "encoder_hidden_states", 1).shape[1]

    # -------------------------------------------------------------- the concept stream of one block
    def _image_kv(self, attn) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        k, v, o = self._seen["k"][-1], self._seen["v"][-1], self._seen["o"][-1]  # the (last) image row
        p, inner = k.shape
        heads = inner // _head_dim(attn)
        k = k.view(p, heads, -1)
        if attn.norm_k is not None:
            k = attn.norm_k(k)
        if self.family == "flux" and self._seen["rope"] is not None:
            from diffusers.models.embeddings import apply_rotary_emb

            cos, sin = self._seen["rope"]
            t = self._seen["n_text"]
            k = apply_rotary_emb(k[None], (cos[t:], sin[t:]), sequence_dim=1)[0]
        v = v.view(p, heads, -1)
        return k.float().permute(1, 0, 2).contiguous(), v.float().permute(1, 0, 2).contiguous(), o.float()

    def _advance(self, b: int) -> None:
        blk = self.blocks[b]
        attn = blk.attn
        dtype = self.transformer.dtype
        temb = self._seen["temb"][-1:]
        m, d = self.present.shape
        if self.h is None:  # the concept stream starts at the context embedder; only present concepts are kept
            h0 = self.transformer.context_embedder(self.concept_embeds.to(device=temb.device, dtype=dtype))
            rows, cols = torch.nonzero(self.present, as_tuple=True)
            self._row, self._col = rows.to(temb.device), cols.to(temb.device)
            self._offsets = torch.cat([torch.zeros(1, dtype=torch.long), self.present.sum(1).cumsum(0)]).tolist()
            self.h = h0[self._col].clone()  # [N, D], packed in row order
        k_img, v_img, o_img = self._image_kv(attn)
        heads, p = k_img.shape[:2]
        pre_only = bool(getattr(blk, "context_pre_only", False))
        is_read, is_last = b in self.read, b == self.read[-1]
        tokens = max(1, CHUNK_FLOATS // max(1, heads * (p + d)))
        start = 0
        while start < m:
            if self.rows_per_chunk:
                stop = min(m, start + self.rows_per_chunk)
            else:  # as many rows as fit ``tokens`` concept tokens (at least one row)
                stop = start + 1
                while stop < m and self._offsets[stop + 1] - self._offsets[start] <= tokens:
                    stop += 1
            a, z = self._offsets[start], self._offsets[stop]
            if z > a:
                self._chunk(blk, attn, temb, dtype, start, stop, a, z, k_img, v_img, o_img, pre_only, is_read, is_last, b)
            start = stop
        if is_last:
            raise _Stop()

    def _chunk(self, blk, attn, temb, dtype, start, stop, a, z, k_img, v_img, o_img, pre_only, is_read, is_last, b):
        n, d = stop - start, self.present.shape[1]
        heads = k_img.shape[0]
        h = self.h[a:z][None]  # [1, N, D]: the adaptive norms broadcast the one time embedding
        if pre_only:
            nh, gates = blk.norm1_context(h, temb), None
        else:
            nh, *gates = blk.norm1_context(h, emb=temb)
        q = attn.add_q_proj(nh)[0].view(z - a, heads, -1)
        k = attn.add_k_proj(nh)[0].view(z - a, heads, -1)
        v = attn.add_v_proj(nh)[0].view(z - a, heads, -1)
        if attn.norm_added_q is not None:
            q = attn.norm_added_q(q)
        if attn.norm_added_k is not None:
            k = attn.norm_added_k(k)
        row, col = self._row[a:z] - start, self._col[a:z]
        o = _concept_attention(q.float(), k.float(), v.float(), k_img, v_img, row, col, n, d, self.self_attention)
        if is_read:
            scores = o.new_zeros(n, d, o_img.shape[0])
            scores[row, col] = o @ o_img.T
            self.on_scores(b, start, scores)
        if not is_last and not pre_only:
            g_msa, shift_mlp, scale_mlp, g_mlp = gates
            h = h + g_msa[:, None] * attn.to_add_out(o.to(dtype))[None]
            nh2 = blk.norm2_context(h) * (1 + scale_mlp[:, None]) + shift_mlp[:, None]
            h = h + g_mlp[:, None] * blk.ff_context(nh2)
            if h.dtype == torch.float16:
                h = h.clip(-65504, 65504)
            self.h[a:z] = h[0]


def _head_dim(attn) -> int:
    hd = getattr(attn, "head_dim", None)
    if hd:
        return int(hd)
    return int(attn.to_k.out_features // attn.heads)


