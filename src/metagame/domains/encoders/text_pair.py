"""Sentence-embedding encoders explained on a pair of texts: the words of A and of B as players.

f(x) = cos(e(A_S), e(B_S)), the cosine similarity of the pooled embeddings of the two (masked) texts.
Pooling follows the sentence-transformers files when present (``modules.json``,
``1_Pooling/config.json``: mean / CLS / max tokens, and a ``Normalize`` module). Words are masked
by dropping their tokens from the attention mask (``"attention"``; they are then also left out of
mean pooling) or by replacing them with the mask token (``"mask_token"``). The differentiable view
is the token-embedding layer's output for both texts, ``z: [m, L_A + L_B, E]``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Literal, Sequence, get_args

import numpy as np
import torch

from ...errors import MetagameError, one_of
from ...models.loaded import shared_load
from ...models.state import keeps_models
from ...players.text import Word, unique_labels
from ...results.extras import A_TO_B, B_TO_A
from ..hf.common import TokenEmbeddingOverride, add_token_scores, encode_words, first_line, token_keep
from .two_tower import EmptySide, TwoTowerModel

TextMasking = Literal["attention", "mask_token"]
PoolingMode = Literal["mean", "cls", "max"]
Pooling = Literal["auto", PoolingMode]

_POOLING_KEYS = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean", "pooling_mode_max_tokens": "max"}


def _read_model_file(name_or_path: str, filename: str) -> dict | list | None:
    """A JSON file of a local model folder or of a cached hub model (never downloads); None if absent."""
    path = Path(name_or_path)
    if path.is_dir():
        f = path / filename
        if not f.is_file():
            return None
        return json.loads(f.read_text(encoding="utf-8"))
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(str(name_or_path), filename)
    except Exception:  # not a valid repo id, no cache
        return None
    if isinstance(cached, str) and Path(cached).is_file():
        return json.loads(Path(cached).read_text(encoding="utf-8"))
    return None


def sentence_transformers_pooling(name_or_path: str) -> tuple[list[PoolingMode], bool]:
    """Pooling modes and normalisation declared by a sentence-transformers folder; ``(["mean"], False)`` without one.

    Raises for modules metagame cannot reproduce (e.g. a ``Dense`` projection), naming them.
    """
    modules = _read_model_file(name_or_path, "modules.json")
    if not modules:
        return ["mean"], False
    modes: list[PoolingMode] = ["mean"]
    normalize = False
    for mod in modules:
        kind = str(mod.get("type", "")).rsplit(".", 1)[-1]
        if kind == "Transformer":
            continue
        if kind == "Pooling":
            sub = str(mod.get("path", "")).strip("/")
            cfg = _read_model_file(name_or_path, f"{sub}/config.json" if sub else "config.json") or {}
            unsupported = [k for k, v in cfg.items() if k.startswith("pooling_mode_") and v and k not in _POOLING_KEYS]
            if unsupported:
                raise MetagameError(
                    f"{name_or_path!r} pools with {', '.join(unsupported)}, which metagame does not reproduce; "
                    f"pass pooling={one_of(PoolingMode)} to override"
                )
            modes = [m for k, m in _POOLING_KEYS.items() if cfg.get(k)] or ["mean"]
        elif kind == "Normalize":
            normalize = True
        else:
            raise MetagameError(
                f"{name_or_path!r} has a sentence-transformers module of type {kind!r} after pooling, which metagame "
                f"does not reproduce (supported: Transformer, Pooling, Normalize); choose a model without it"
            )
    return modes, normalize


@shared_load
def load_sentence_encoder(
    name_or_path: str, trust_remote_code: bool = False, dtype: Any = None,
) -> tuple[torch.nn.Module, Any, list[PoolingMode], bool]:
    """``(model, tokenizer, pooling_modes, normalize)`` of a sentence-embedding model (name or local path; the
    bundled all-MiniLM-L6-v2 by its hub name, offline); ``dtype``: the weights' dtype (default: as saved)."""
    from transformers import AutoModel, AutoTokenizer

    from ..hf.sources import resolve_source

    name_or_path = resolve_source(name_or_path)
    extra = {} if dtype is None else {"dtype": dtype}
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
        model = AutoModel.from_pretrained(name_or_path, trust_remote_code=trust_remote_code, use_safetensors=True,
                                          **extra)
    except (OSError, ValueError) as e:
        raise MetagameError(
            f"cannot load a model and tokenizer from {name_or_path!r} ({first_line(e)}); pass a local "
            f"folder with config.json, safetensors weights and tokenizer files, or the name of a model in the "
            f"local Hugging Face cache (metagame loads safetensors only: convert with save_pretrained)"
        ) from None
    if not getattr(tokenizer, "is_fast", False):
        raise MetagameError(
            f"the tokenizer of {name_or_path!r} is not a fast tokenizer; metagame needs character offsets to group "
            f"tokens into words (save the model with a tokenizer.json)"
        )
    modes, normalize = sentence_transformers_pooling(name_or_path)
    model.eval()
    return model, tokenizer, modes, normalize


def pool(hidden: torch.Tensor, mask: torch.Tensor, modes: Sequence[PoolingMode]) -> torch.Tensor:
    """Sentence embeddings ``[n, E·len(modes)]`` from token states ``[n, L, E]`` and a 0/1 mask ``[n, L]``."""
    parts = []
    w = mask.to(hidden.dtype).unsqueeze(-1)
    for mode in modes:
        if mode == "mean":
            parts.append((hidden * w).sum(dim=1) / w.sum(dim=1).clamp_min(1e-9))
        elif mode == "cls":
            parts.append(hidden[:, 0])
        elif mode == "max":
            parts.append(hidden.masked_fill(w == 0, torch.finfo(hidden.dtype).min).max(dim=1).values)
        else:
            raise MetagameError(f"unknown pooling {mode!r}; use 'mean', 'cls' or 'max'")
    return torch.cat(parts, dim=-1)


def cross_blocks(result: Any) -> dict[str, np.ndarray]:
    """The two cross blocks of a text-pair result: ``a_to_b`` = M[B, A] ``[n_b, n_a]`` (sources in A,
    targets in B) and ``b_to_a`` = M[A, B] ``[n_a, n_b]``."""
    kinds = np.asarray(result.player_kinds or [])
    a = np.flatnonzero(kinds == "word_a")
    b = np.flatnonzero(kinds == "word_b")
    if len(a) == 0 or len(b) == 0:
        raise MetagameError("cross_blocks needs a text-pair result (player kinds 'word_a' and 'word_b')")
    return {A_TO_B: result.matrix[np.ix_(b, a)].copy(), B_TO_A: result.matrix[np.ix_(a, b)].copy()}


class TextPairModel(TwoTowerModel):
    """A sentence encoder explained at a pair of texts; players = words of A, then words of B.

    Args:
        model: a transformers encoder (``AutoModel``) returning ``last_hidden_state``.
        tokenizer: its fast tokenizer.
        text_a, text_b: the two texts.
        masking: ``"attention"`` (drop absent words from the attention mask and from pooling) or
            ``"mask_token"`` (replace them with the tokenizer's mask token).
        pooling: ``"mean"``, ``"cls"``, ``"max"`` or a list of them (concatenated, as sentence-transformers does).
        normalize: L2-normalise the embeddings (does not change the cosine; recorded for completeness).
        name: model name for result files.
        empty: ``"zero"`` (default): a coalition with no word of one text leaves that text without an embedding and
            f = 0 (first-order scores then sum to f(x) − 0); ``"model"``: the encoder embeds the empty text
            (``[CLS] [SEP]``), so f(∅) ≈ 1 (two nearly identical empty inputs). See :mod:`metagame.domains.encoders.two_tower`.
        halves: evaluate each text's encoder once per distinct half-coalition (False: the joint route).
        batch_size: rows (text pairs) per forward pass.

    f(x_S) for every kind of coalition: both texts keep words → cos(e(A_S), e(B_S)) of the masked texts; one text
    keeps none → 0 (``"zero"``) or cos with the embedded empty text (``"model"``); S = ∅ → 0 or ≈ 1.
    """

    #: the most words explained exactly by default (2^16 coalitions)
    exact_max_players = 16

    @keeps_models
    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        text_a: str,
        text_b: str,
        *,
        masking: TextMasking = "attention",
        pooling: PoolingMode | Sequence[PoolingMode] = "mean",
        normalize: bool = False,
        name: str | None = None,
        empty: EmptySide = "zero",
        halves: bool = True,
        batch_size: int = 256,
        cache_values: bool = True,
    ):
        super().__init__(batch_size=batch_size, cache_values=cache_values)
        self._init_two_tower(empty, halves)
        if masking not in get_args(TextMasking):
            raise MetagameError(f"unknown masking {masking!r}; use {one_of(TextMasking)}")
        for label, t in (("text_a", text_a), ("text_b", text_b)):
            if not isinstance(t, str) or not t.strip():
                raise MetagameError(f"{label} is empty; pass a text with at least one word")
        modes = [pooling] if isinstance(pooling, str) else list(pooling)
        for mode in modes:
            if mode not in get_args(PoolingMode):
                raise MetagameError(f"unknown pooling {mode!r}; use {one_of(PoolingMode)}")
        self.model = model
        self.tokenizer = tokenizer
        self.text_a, self.text_b = text_a, text_b
        self.masking = masking
        self.pooling = modes
        self.normalize = bool(normalize)
        self.name = name or getattr(getattr(model, "config", None), "_name_or_path", "") or type(model).__name__
        param = next(model.parameters())
        self.device = param.device
        self._dtype = param.dtype
        if masking == "mask_token" and getattr(tokenizer, "mask_token_id", None) is None:
            raise MetagameError("the tokenizer has no mask token; use masking='attention'")
        pad_id = getattr(tokenizer, "pad_token_id", None)
        self.pad_id = 0 if pad_id is None else int(pad_id)

        self._override = TokenEmbeddingOverride(model.get_input_embeddings())
        max_len = int(getattr(model.config, "max_position_embeddings", 512))
        ids_parts, words_parts, maps = [], [], []
        for label, t in (("text_a", text_a), ("text_b", text_b)):
            ids, words, tok_player = encode_words(tokenizer, t, label, max_len)
            ids_parts.append(ids)
            words_parts.append(words)
            maps.append(tok_player)
        self.words_a: list[Word] = words_parts[0]
        self.words_b: list[Word] = words_parts[1]
        self.n_a, self.n_b = len(self.words_a), len(self.words_b)
        self.len_a, self.len_b = len(ids_parts[0]), len(ids_parts[1])
        map_b = np.where(maps[1] >= 0, maps[1] + self.n_a, -1)
        self.token_player = torch.as_tensor(np.concatenate([maps[0], map_b]), device=self.device)  # [L_A + L_B]
        self.input_ids = torch.as_tensor(ids_parts[0] + ids_parts[1], dtype=torch.long, device=self.device)
        self.token_embeds = self._override.embed_ids(self.input_ids).to(self._dtype)  # [L, E]
        self.embed_dim = self.token_embeds.shape[1]
        is_word = (self.token_player >= 0).unsqueeze(-1)
        if masking == "mask_token":
            mask_id = torch.tensor([int(tokenizer.mask_token_id)], device=self.device)
            mask_emb = self._override.embed_ids(mask_id).to(self._dtype)[0]
            self.baseline_embeds = torch.where(is_word, mask_emb.expand_as(self.token_embeds), self.token_embeds)
            self.mask_id = int(tokenizer.mask_token_id)
        else:
            self.baseline_embeds = torch.where(is_word, torch.zeros_like(self.token_embeds), self.token_embeds)
            self.mask_id = None

        la, lb = unique_labels(self.words_a), unique_labels(self.words_b)
        shared = set(la) & set(lb)  # a word in both texts gets its side: "guitar (A)", "guitar (B)"
        self.players = [f"{w} (A)" if w in shared else w for w in la] + [f"{w} (B)" if w in shared else w for w in lb]
        self.player_kinds = ["word_a"] * self.n_a + ["word_b"] * self.n_b
        self.n_players = self.n_a + self.n_b
        self.side_players = (np.arange(self.n_a), np.arange(self.n_a, self.n_players))

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    def token_keep(self, coalitions: np.ndarray) -> torch.Tensor:
        """Boolean ``[m, L_A + L_B]``: special tokens and tokens of present words."""
        return token_keep(coalitions, self.token_player)

    def embed(self, coalitions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """z = token embeddings of x_S ``[m, L, E]``; baseline: zero (attention) or mask-token embeddings."""
        keep = self.token_keep(coalitions)
        m = keep.shape[0]
        zb = self.baseline_embeds.unsqueeze(0).expand(m, -1, -1).clone()
        z = torch.where(keep.unsqueeze(-1), self.token_embeds.unsqueeze(0), zb)
        if self.masking == "attention":
            attn = keep.long()
        else:
            attn = torch.ones_like(keep, dtype=torch.long)
        return z, zb, attn

    def encode(self, z: torch.Tensor, attn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings of text A and text B for rows of token embeddings ``z`` ``[n, L, E]`` and masks ``[n, L]``."""
        n = z.shape[0]
        la, lb = self.len_a, self.len_b
        lmax = max(la, lb)

        def padded(t: torch.Tensor, length: int, fill) -> torch.Tensor:
            if length == lmax:
                return t
            shape = (t.shape[0], lmax - length) + tuple(t.shape[2:])
            return torch.cat([t, torch.full(shape, fill, dtype=t.dtype, device=t.device)], dim=1)

        ids = self.input_ids.unsqueeze(0).expand(n, -1)
        emb = torch.cat([padded(z[:, :la], la, 0.0), padded(z[:, la:], lb, 0.0)])
        mask = torch.cat([padded(attn[:, :la], la, 0), padded(attn[:, la:], lb, 0)])
        tok = torch.cat([padded(ids[:, :la], la, self.pad_id), padded(ids[:, la:], lb, self.pad_id)])
        with self._override.active(emb):
            out = self.model(input_ids=tok, attention_mask=mask)
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        e = pool(hidden, mask, self.pooling)
        if self.normalize:
            e = torch.nn.functional.normalize(e, dim=-1)
        return e[:n], e[n:]

    def forward(self, z: torch.Tensor, extra: Any = None, row_coalitions: np.ndarray | None = None) -> torch.Tensor:
        n = z.shape[0]
        self.count(n)
        self.n_tower_rows += 2 * n  # the joint route: both texts of every row
        attn = extra if extra is not None else torch.ones(n, z.shape[1], dtype=torch.long, device=self.device)
        ea, eb = self.encode(z, attn)
        return self.check_output(torch.nn.functional.cosine_similarity(ea, eb, dim=-1), n, row_coalitions)

    # ---------------------------------------------------------------- the two towers (one encoder, two texts)
    def _side_slice(self, side: int) -> slice:
        return slice(0, self.len_a) if side == 0 else slice(self.len_a, self.len_a + self.len_b)

    def side_inputs(self, side: int, halves: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """Token embeddings of one text for half-coalitions of its words, its baseline and its attention mask."""
        sl = self._side_slice(side)
        full = np.zeros((len(halves), self.n_players), dtype=bool)
        full[:, self.side_players[side]] = halves
        keep = self.token_keep(full)[:, sl]
        zb = self.baseline_embeds[sl].unsqueeze(0).expand(len(halves), -1, -1).clone()
        z = torch.where(keep.unsqueeze(-1), self.token_embeds[sl].unsqueeze(0), zb)
        attn = keep.long() if self.masking == "attention" else torch.ones_like(keep, dtype=torch.long)
        return z, zb, attn

    def side_encode(self, side: int, z: torch.Tensor, extra: Any) -> torch.Tensor:
        """The sentence embedding of one text from its token embeddings ``[m, L, E]`` and mask ``[m, L]``."""
        ids = self.input_ids[self._side_slice(side)].unsqueeze(0).expand(z.shape[0], -1)
        with self._override.active(z):
            out = self.model(input_ids=ids, attention_mask=extra)
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        e = pool(hidden, extra, self.pooling)
        return torch.nn.functional.normalize(e, dim=-1) if self.normalize else e

    def player_masks(self, side: int) -> torch.Tensor:
        tp = self.token_player[self._side_slice(side)]
        players = torch.as_tensor(self.side_players[side], device=tp.device)
        owned = (tp.unsqueeze(0) == players.unsqueeze(1)).to(self._dtype)  # [n, L]
        return owned.unsqueeze(-1).expand(-1, -1, self.embed_dim)

    def similarity(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cosine_similarity(a, b, dim=-1)

    def reduce(self, coordinate_scores: torch.Tensor) -> torch.Tensor:
        m = coordinate_scores.shape[0]
        tok = coordinate_scores.reshape(m, self.len_a + self.len_b, -1).sum(dim=-1)
        out = torch.zeros(m, self.n_players, dtype=coordinate_scores.dtype, device=coordinate_scores.device)
        return add_token_scores(out, tok, self.token_player)

    def explained(self) -> dict[str, str]:
        """f = the cosine of the two pooled sentence embeddings; masking and the empty side in words."""
        pooling = "+".join(self.pooling) + " pooling" + (", normalised" if self.normalize else "")
        masking = ("an absent word's tokens leave the attention mask (and the pooling)" if self.masking == "attention"
                   else "an absent word's tokens are replaced by the mask token")
        return {"f": f"cosine similarity of the two sentence embeddings ({pooling}) of A = {self.text_a!r} and "
                     f"B = {self.text_b!r}",
                "masking": masking + "; gradient methods start from their baseline embeddings",
                "empty": self.empty_words("0 (the cosine of a missing embedding)")}

    def describe(self) -> dict:
        return {
            "adapter": "TextPairModel",
            "name": self.name,
            "masking": self.masking,
            "pooling": list(self.pooling),
            "normalize": self.normalize,
            "empty": self.empty,
            "n_words_a": self.n_a,
            "n_words_b": self.n_b,
        }

    def display_context(self) -> dict:
        """Context keys for display: text_a, text_b, model, n_words_a."""
        return {"text_a": self.text_a, "text_b": self.text_b, "model": self.name, "n_words_a": self.n_a,
                "empty": self.empty}

    def component_inputs(self) -> tuple[dict, Callable[[str], dict]]:
        """Text A's token ids (the input the encoder's components are read at, for ``components=``) and a tokenizer
        of reference texts (:class:`~metagame.domains.components.extension.ComponentHost`)."""
        device = self.device

        def tokenize(text: str) -> dict:
            enc = self.tokenizer(text, return_tensors="pt")
            return {"input_ids": enc["input_ids"].to(device)}

        return {"input_ids": self.input_ids[: self.len_a].unsqueeze(0)}, tokenize

    def finalize(self, result: Any) -> None:
        """Adds the cross blocks ``a_to_b`` / ``b_to_a`` (see :func:`cross_blocks`) and the tower passes used."""
        super().finalize(result)
        result.extras.update(cross_blocks(result))

    def fingerprint_parts(self) -> dict[str, Any]:
        return {
            "model": self.model, "input_ids": self.input_ids, "token_embeds": self.token_embeds,
            "baseline_embeds": self.baseline_embeds, "texts": (self.text_a, self.text_b), "masking": self.masking,
            "pooling": list(self.pooling), "normalize": self.normalize, "empty": self.empty,
        }

    def swapped_order(self) -> np.ndarray:
        """Permutation p: player k of the swapped pair (B, A) is player ``p[k]`` of this pair (A, B)."""
        return np.concatenate([np.arange(self.n_a, self.n_players), np.arange(self.n_a)])


__all__ = [
    "Pooling",
    "PoolingMode",
    "TextMasking",
    "TextPairModel",
    "cross_blocks",
    "load_sentence_encoder",
    "pool",
    "sentence_transformers_pooling",
]
