"""Vision-language encoders (CLIP, SigLIP): image patches and text words as players.

f is the image–text similarity logit, f = exp(s)·cos(e_img, e_txt) (+ b for SigLIP). Patches are
masked in pixel space (patch-aligned: every pixel of an absent patch takes the baseline image's
value, by ``"mean"`` colour, ``"blur"`` or ``"zero"``); words are masked by dropping their tokens
from the attention mask. The differentiable view is the concatenation of the (normalised) pixels
and the text's token embeddings, so gradient methods attribute to pixels and embeddings at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch

from ...errors import MetagameError, one_of
from ...models.loaded import shared_load
from ...models.state import keeps_models
from ...players.image import gaussian_blur, grid_shape, load_image
from ...players.text import Word, unique_labels
from ...results.extras import IMAGE
from ..hf.common import TokenEmbeddingOverride, add_token_scores, encode_words, first_line, load_config, token_keep
from .two_tower import EmptySide, TwoTowerModel

PatchMasking = Literal["mean", "blur", "zero"]
#: ``config.model_type`` values this adapter understands
SUPPORTED_MODEL_TYPES: tuple[str, ...] = ("clip", "siglip")


def check_model_type(model_type: str | None, name: str = "the model") -> str:
    """Raise unless ``model_type`` is a supported vision-language encoder."""
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise MetagameError(
            f"{name} has model type {model_type!r}, which the vision-language adapter does not support; "
            f"supported model types: {', '.join(SUPPORTED_MODEL_TYPES)} (CLIPModel, SiglipModel)"
        )
    return model_type


@shared_load
def load_vision_language(name_or_path: str, trust_remote_code: bool = False, dtype: Any = None
                         ) -> tuple[torch.nn.Module, Any, Any]:
    """``(model, image_processor, tokenizer)`` of a CLIP or SigLIP checkpoint (name or local path); ``dtype``: the
    weights' dtype (default: as saved)."""
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    from ..hf.sources import resolve_source

    name_or_path = resolve_source(name_or_path)
    extra = {} if dtype is None else {"dtype": dtype}
    config = load_config(name_or_path, trust_remote_code=trust_remote_code)
    check_model_type(getattr(config, "model_type", None), repr(name_or_path))
    try:
        model = AutoModel.from_pretrained(name_or_path, trust_remote_code=trust_remote_code, use_safetensors=True,
                                          **extra)
        image_processor = AutoImageProcessor.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise MetagameError(
            f"cannot load a CLIP/SigLIP model, image processor and tokenizer from {name_or_path!r} ({first_line(e)}); "
            f"pass a local folder with config.json, safetensors weights, preprocessor and tokenizer files "
            f"(metagame loads safetensors only: convert with save_pretrained)"
        ) from None
    model.eval()
    return model, image_processor, tokenizer


def _pooled(out) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    pooled = getattr(out, "pooler_output", None)
    if pooled is None:
        pooled = out[0] if isinstance(out, (tuple, list)) else out["pooler_output"]
    return pooled


# ------------------------------------------------------------------------------------------------ adapter
class VisionLanguageModel(TwoTowerModel):
    """A CLIP/SigLIP model explained at one (image, text) pair; players = patches, then words.

    Args:
        model: a ``CLIPModel`` or ``SiglipModel`` (eval mode).
        image_processor: its image processor (resizing and normalisation).
        tokenizer: its (fast) tokenizer.
        image: a path, PIL image or ``[H, W, 3]`` array.
        text: the caption.
        grid: ``None`` for the model's patch grid, ``G`` for G×G groups of whole patches, or ``(rows, cols)``.
        patch_masking: baseline of absent patches: ``"mean"`` (the image's mean colour), ``"blur"``
            (a Gaussian blur of the image, σ = one patch) or ``"zero"`` (zero input after normalisation, i.e. the
            processor's mean colour).
        include_patches / include_words: which players exist (the others are always present).
        empty: ``"model"`` (default): a coalition without patches is the fully masked image and one without words the
            empty caption, both embedded by the model; ``"zero"``: an empty side has no embedding, its cosine is 0 and
            f = the logit bias (0 for CLIP). See :mod:`metagame.domains.encoders.two_tower` and README for the choice.
        halves: evaluate each tower once per distinct half-coalition (False: the joint route).
        batch_size: rows per forward pass.
    """

    #: the most players (patches + words) explained exactly by default
    exact_max_players = 16

    @keeps_models
    def __init__(
        self,
        model: torch.nn.Module,
        image_processor: Any,
        tokenizer: Any,
        image,
        text: str,
        *,
        grid: int | tuple[int, int] | None = None,
        patch_masking: PatchMasking = "mean",
        include_patches: bool = True,
        include_words: bool = True,
        empty: EmptySide = "model",
        halves: bool = True,
        batch_size: int = 32,
        cache_values: bool = True,
        image_path: str | None = None,
    ):
        super().__init__(batch_size=batch_size, cache_values=cache_values)
        self._init_two_tower(empty, halves)
        config = getattr(model, "config", None)
        self.model_type = check_model_type(getattr(config, "model_type", None), type(model).__name__)
        if patch_masking not in get_args(PatchMasking):
            raise MetagameError(f"unknown patch_masking {patch_masking!r}; use {one_of(PatchMasking)}")
        if not include_patches and not include_words:
            raise MetagameError("include_patches and include_words are both False; the game would have no players")
        if not isinstance(text, str) or not text.strip():
            raise MetagameError("text is empty; pass a caption with at least one word")
        self.model = model
        self.text = text
        self.patch_masking = patch_masking
        self.image_path = image_path if image_path is not None else (str(image) if isinstance(image, (str, Path)) else None)
        param = next(model.parameters())
        self.device = param.device
        self._dtype = param.dtype

        # ---- image: pixels [3, H, W] and the patch → player layout
        pil = load_image(image)
        vcfg = config.vision_config
        patch = int(vcfg.patch_size)
        native = int(vcfg.image_size) // patch
        self.grid = grid_shape(grid, native)
        rows, cols = self.grid
        if pil.width < cols or pil.height < rows:
            raise MetagameError(
                f"the image is {pil.width}×{pil.height} pixels, too small for a {rows}×{cols} grid; use a larger "
                f"image or a coarser grid (grid <= {min(pil.width, pil.height)})"
            )
        pixels = image_processor(images=pil, return_tensors="pt")["pixel_values"][0]
        self.pixels = pixels.to(self.device, self._dtype)
        c, h, w = self.pixels.shape
        if h < patch * native or w < patch * native:
            raise MetagameError(
                f"the image processor produced {h}×{w} pixels but the model expects {patch * native}×{patch * native}; "
                f"use the processor that belongs to the model"
            )
        self.patch_size = patch
        self.native_grid = native
        row_group = np.zeros(h, dtype=np.int64)
        col_group = np.zeros(w, dtype=np.int64)
        for g, block in enumerate(np.array_split(np.arange(native), rows)):
            row_group[block[0] * patch : (block[-1] + 1) * patch] = g
        row_group[native * patch :] = rows - 1
        for g, block in enumerate(np.array_split(np.arange(native), cols)):
            col_group[block[0] * patch : (block[-1] + 1) * patch] = g
        col_group[native * patch :] = cols - 1
        self.pixel_patch = torch.as_tensor(row_group[:, None] * cols + col_group[None, :], device=self.device)  # [H, W]
        self.n_patches = rows * cols if include_patches else 0
        self.image_baseline = self._baseline_image()
        mean = torch.as_tensor(getattr(image_processor, "image_mean", [0.5, 0.5, 0.5]), dtype=self._dtype).reshape(3, 1, 1)
        std = torch.as_tensor(getattr(image_processor, "image_std", [0.5, 0.5, 0.5]), dtype=self._dtype).reshape(3, 1, 1)
        self.image_rgb = (self.pixels.detach().cpu() * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()

        # ---- text: token ids, words, embeddings
        tcfg = config.text_config
        max_len = int(getattr(tcfg, "max_position_embeddings", 77))
        pad = self.model_type == "siglip"  # SigLIP was trained on max-length padded text without a mask
        ids, words, tok_player = encode_words(
            tokenizer, text, "the text", max_len,
            padding="max_length" if pad else False, max_length=max_len if pad else None,
        )
        self.words: list[Word] = words
        self.n_words = len(words) if include_words else 0
        self.input_ids = torch.as_tensor(ids, dtype=torch.long, device=self.device)
        self.n_tokens = len(ids)
        self.token_player = torch.as_tensor(
            np.where(tok_player >= 0, tok_player + self.n_patches, -1) if include_words else np.full(len(ids), -1),
            device=self.device,
        )
        layer = model.text_model.embeddings.token_embedding
        self._override = TokenEmbeddingOverride(layer)
        self.token_embeds = self._override.embed_ids(self.input_ids).to(self._dtype)  # [L, E]
        self.embed_dim = self.token_embeds.shape[1]
        self.n_pixel_coords = c * h * w
        self.pixel_shape = (c, h, w)

        # ---- players
        labels: list[str] = []
        kinds: list[str] = []
        if include_patches:
            labels += [f"patch ({r}, {k})" for r in range(rows) for k in range(cols)]
            kinds += ["patch"] * self.n_patches
        if include_words:
            labels += unique_labels(words)
            kinds += ["word"] * self.n_words
        self.players = labels
        self.player_kinds = kinds
        self.n_players = len(labels)
        self.side_players = (np.arange(self.n_patches), np.arange(self.n_patches, self.n_players))
        self.include_patches = include_patches
        self.include_words = include_words

    # ---------------------------------------------------------------- masking
    def _baseline_image(self) -> torch.Tensor:
        if self.patch_masking == "zero":
            return torch.zeros_like(self.pixels)
        if self.patch_masking == "mean":
            return self.pixels.mean(dim=(1, 2), keepdim=True).expand_as(self.pixels).clone()
        return gaussian_blur(self.pixels, float(self.patch_size))

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    def patch_keep(self, coalitions: np.ndarray) -> torch.Tensor:
        """Boolean ``[m, H, W]``: pixels of present patches (all True without patch players)."""
        m = len(coalitions)
        if not self.include_patches:
            return torch.ones((m,) + self.pixel_shape[1:], dtype=torch.bool, device=self.device)
        c = torch.as_tensor(np.asarray(coalitions, dtype=bool)[:, : self.n_patches], device=self.device)
        return c[:, self.pixel_patch]

    def token_keep(self, coalitions: np.ndarray) -> torch.Tensor:
        """Boolean ``[m, L]``: tokens kept (special tokens and tokens of present words)."""
        return token_keep(coalitions, self.token_player)

    def masked_pixels(self, coalitions: np.ndarray) -> torch.Tensor:
        """x_S in pixel space ``[m, 3, H, W]``: present patches keep their pixels, absent ones take the baseline."""
        keep = self.patch_keep(coalitions).unsqueeze(1)
        return torch.where(keep, self.pixels.unsqueeze(0), self.image_baseline.unsqueeze(0))

    def embed(self, coalitions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """z = [pixels of x_S, token embeddings of x_S] flattened; baseline: masked image, zero embeddings."""
        coalitions = np.asarray(coalitions, dtype=bool)
        m = len(coalitions)
        pix = self.masked_pixels(coalitions).reshape(m, -1)
        tok_keep = self.token_keep(coalitions)  # [m, L]
        is_word = (self.token_player >= 0).unsqueeze(0)
        emb = self.token_embeds.unsqueeze(0) * tok_keep.unsqueeze(-1).to(self._dtype)
        base_emb = torch.where(is_word.unsqueeze(-1), torch.zeros_like(emb), emb)
        base_pix = self.image_baseline.reshape(1, -1).expand(m, -1)
        z = torch.cat([pix, emb.reshape(m, -1)], dim=1)
        zb = torch.cat([base_pix, base_emb.reshape(m, -1)], dim=1).clone()
        return z, zb, tok_keep.long()

    # ---------------------------------------------------------------- model
    def logit_parts(self) -> tuple[torch.Tensor, torch.Tensor]:
        """exp(logit_scale) and the logit bias (0 for CLIP)."""
        scale = self.model.logit_scale.exp().reshape(())
        bias = getattr(self.model, "logit_bias", None)
        bias = torch.zeros((), dtype=scale.dtype, device=scale.device) if bias is None else bias.reshape(())
        return scale, bias

    def forward(self, z: torch.Tensor, extra: Any = None, row_coalitions: np.ndarray | None = None) -> torch.Tensor:
        n = z.shape[0]
        self.count(n)
        self.n_tower_rows += 2 * n  # the joint route: both towers on every row
        pix = z[:, : self.n_pixel_coords].reshape((n,) + self.pixel_shape)
        emb = z[:, self.n_pixel_coords :].reshape(n, self.n_tokens, self.embed_dim)
        mask = extra if extra is not None else torch.ones(n, self.n_tokens, dtype=torch.long, device=self.device)
        img = _pooled(self.model.get_image_features(pixel_values=pix))
        with self._override.active(emb):
            txt = _pooled(self.model.get_text_features(input_ids=self.input_ids.expand(n, -1), attention_mask=mask))
        cos = torch.nn.functional.cosine_similarity(img, txt, dim=-1)
        scale, bias = self.logit_parts()
        return self.check_output(cos * scale + bias, n, row_coalitions)

    # ---------------------------------------------------------------- the two towers (image × text)
    def _full(self, side: int, halves: np.ndarray) -> np.ndarray:
        full = np.zeros((len(halves), self.n_players), dtype=bool)
        full[:, self.side_players[side]] = halves
        return full

    def side_inputs(self, side: int, halves: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """Side 0: the masked image ``[m, 3, H, W]`` (baseline: the masked-out image); side 1: the caption's token
        embeddings ``[m, L, E]`` (baseline: zero word embeddings) and its attention mask."""
        full = self._full(side, halves)
        if side == 0:
            z = self.masked_pixels(full)
            return z, self.image_baseline.unsqueeze(0).expand_as(z).clone(), None
        keep = self.token_keep(full)
        emb = self.token_embeds.unsqueeze(0) * keep.unsqueeze(-1).to(self._dtype)
        is_word = (self.token_player >= 0).reshape(1, -1, 1)
        zb = torch.where(is_word, torch.zeros_like(emb), emb)
        return emb, zb, keep.long()

    def side_encode(self, side: int, z: torch.Tensor, extra: Any) -> torch.Tensor:
        if side == 0:
            return _pooled(self.model.get_image_features(pixel_values=z))
        with self._override.active(z):
            return _pooled(self.model.get_text_features(input_ids=self.input_ids.expand(z.shape[0], -1), attention_mask=extra))

    def player_masks(self, side: int) -> torch.Tensor:
        if side == 0:
            owned = self.pixel_patch.unsqueeze(0) == torch.arange(self.n_patches, device=self.device).reshape(-1, 1, 1)
            return owned.unsqueeze(1).expand(-1, self.pixel_shape[0], -1, -1).to(self._dtype)
        players = torch.as_tensor(self.side_players[1], device=self.device)
        owned = (self.token_player.unsqueeze(0) == players.unsqueeze(1)).to(self._dtype)
        return owned.unsqueeze(-1).expand(-1, -1, self.embed_dim)

    def empty_value(self) -> float:
        """With ``empty="zero"`` an empty side has no embedding: its cosine with anything is 0, f = the logit bias."""
        return float(self.logit_parts()[1])

    def similarity(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        scale, bias = self.logit_parts()
        return torch.nn.functional.cosine_similarity(a, b, dim=-1) * scale.to(a.dtype) + bias.to(a.dtype)

    def reduce(self, coordinate_scores: torch.Tensor) -> torch.Tensor:
        m = coordinate_scores.shape[0]
        out = torch.zeros(m, self.n_players, dtype=coordinate_scores.dtype, device=coordinate_scores.device)
        if self.include_patches:
            pix = coordinate_scores[:, : self.n_pixel_coords].reshape((m,) + self.pixel_shape).sum(dim=1)  # [m, H, W]
            out.index_add_(1, self.pixel_patch.reshape(-1), pix.reshape(m, -1))
        if self.include_words:
            tok = coordinate_scores[:, self.n_pixel_coords :].reshape(m, self.n_tokens, self.embed_dim).sum(dim=-1)
            add_token_scores(out, tok, self.token_player)
        return out

    # ---------------------------------------------------------------- description
    def explained(self) -> dict[str, str]:
        """f = the image–text logit; patch and word masking and the empty side in words."""
        bias = " + b" if self.model_type == "siglip" else ""
        return {"f": f"image–text logit exp(s)·cos(e_image, e_text){bias} of the image and {self.text!r}",
                "masking": f"an absent patch takes the baseline image ({self.patch_masking}); an absent word's tokens "
                           f"leave the attention mask",
                "empty": self.empty_words(f"{self.empty_value():.4g} (the logit at cosine 0)")}

    def describe(self) -> dict:
        name = getattr(self.model.config, "_name_or_path", "") or type(self.model).__name__
        return {
            "adapter": "VisionLanguageModel",
            "name": name,
            "model_type": self.model_type,
            "grid": list(self.grid),
            "native_grid": self.native_grid,
            "patch_size": self.patch_size,
            "patch_masking": self.patch_masking,
            "n_patches": self.n_patches,
            "n_words": self.n_words,
            "empty": self.empty,
        }

    def display_context(self) -> dict:
        """Context keys for display: text, model, grid, image_path."""
        ctx = {"text": self.text, "model": self.describe()["name"], "grid": list(self.grid)}
        if self.image_path is not None:
            ctx["image_path"] = self.image_path
        return ctx

    def exact_hint(self) -> str:
        return "use a coarser grid, or mode='patch_maps'"

    def component_inputs(self) -> tuple[dict, None]:
        """The image and caption as model inputs (where the components are read, for ``components=``); reference
        inputs are model inputs, not texts (:class:`~metagame.domains.components.extension.ComponentHost`)."""
        return {"pixel_values": self.pixels.unsqueeze(0), "input_ids": self.input_ids.unsqueeze(0)}, None

    def finalize(self, result: Any) -> None:
        """Adds the (downsized) input image as ``extras["image"]`` and the tower passes used."""
        super().finalize(result)
        result.extras[IMAGE] = self.small_image()

    def fingerprint_parts(self) -> dict[str, Any]:
        return {
            "model": self.model, "pixels": self.pixels, "baseline_image": self.image_baseline,
            "input_ids": self.input_ids, "text": self.text, "grid": self.grid, "patches": self.include_patches,
            "words": self.include_words, "empty": self.empty,
        }

    def small_image(self, max_side: int = 112) -> np.ndarray:
        """The (resized, cropped) model input image as float ``[H, W, 3]`` in [0, 1], at most ``max_side`` pixels."""
        img = self.image_rgb
        h, w = img.shape[:2]
        step = max(1, int(np.ceil(max(h, w) / max_side)))
        if step == 1:
            return img.astype(np.float64)
        t = torch.as_tensor(img).permute(2, 0, 1).unsqueeze(0).double()
        small = torch.nn.functional.avg_pool2d(t, step, ceil_mode=True)[0].permute(1, 2, 0)
        return small.numpy()

    def word_coalitions(self, word_coalitions: np.ndarray) -> np.ndarray:
        """Full coalitions ``bool[m, d]`` with every patch present and the given words ``bool[m, n_words]``."""
        wc = np.asarray(word_coalitions, dtype=bool)
        if wc.ndim != 2 or wc.shape[1] != self.n_words:
            raise MetagameError(f"word coalitions must be bool[m, {self.n_words}]; got shape {wc.shape}")
        out = np.ones((len(wc), self.n_players), dtype=bool)
        out[:, self.n_patches :] = wc
        return out


__all__ = [
    "PatchMasking",
    "SUPPORTED_MODEL_TYPES",
    "TokenEmbeddingOverride",
    "VisionLanguageModel",
    "check_model_type",
    "gaussian_blur",
    "load_image",
    "load_vision_language",
]
