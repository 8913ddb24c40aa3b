"""Tiny random Flux and SD3 pipelines built offline from configs (tokenizers trained here; no downloads).

Shared by tests/test_diffusion.py, benchmarks/diffusion.py and docs/figures/make_diffusion_figure.py.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    PreTrainedTokenizerFast,
    T5Config,
    T5EncoderModel,
)

CORPUS = [
    "a photo of a cat sitting under a tree with a blue sky",
    "a dog runs on the green grass near a red car and a house",
    "cat tree sky dog grass car house river mountain sun cloud",
] * 4
#: text tokens of the CLIP-style tokenizers (their model_max_length, the pipelines' tokenizer_max_length)
CLIP_LEN = 16


def make_tokenizer(kind: str) -> PreTrainedTokenizerFast:
    """A BPE tokenizer on CORPUS: ``"clip"`` adds ``<s> … </s>``; ``"t5"`` only appends ``</s>`` (as T5 does)."""
    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=150, special_tokens=["<pad>", "<unk>", "<s>", "</s>"]))
    bos, eos = tk.token_to_id("<s>"), tk.token_to_id("</s>")
    single = "<s> $A </s>" if kind == "clip" else "$A </s>"
    tk.post_processor = processors.TemplateProcessing(single=single, special_tokens=[("<s>", bos), ("</s>", eos)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>",
        model_max_length=CLIP_LEN if kind == "clip" else 64,
    )


def _clip_config(tok, hidden: int, projection: int) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=CLIP_LEN, projection_dim=projection,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )


def _t5(tok, d_model: int) -> T5EncoderModel:
    return T5EncoderModel(T5Config(vocab_size=len(tok), d_model=d_model, d_kv=8, d_ff=2 * d_model, num_layers=2,
                                   num_heads=2, relative_attention_num_buckets=8, pad_token_id=tok.pad_token_id,
                                   eos_token_id=tok.eos_token_id))


def _vae(latent_channels: int):
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2, block_out_channels=[8, 8], layers_per_block=1,
        latent_channels=latent_channels, norm_num_groups=2, sample_size=32, shift_factor=0.06, scaling_factor=1.5,
    )


def tiny_flux_transformer(num_layers: int = 2, num_single_layers: int = 1, heads: int = 2, head_dim: int = 16,
                          joint_dim: int = 32, pooled_dim: int = 32):
    """The issue's tiny Flux transformer (patch 1, 4 input channels = 1 latent channel packed 2x2)."""
    from diffusers import FluxTransformer2DModel

    return FluxTransformer2DModel(
        patch_size=1, in_channels=4, num_layers=num_layers, num_single_layers=num_single_layers,
        attention_head_dim=head_dim, num_attention_heads=heads, joint_attention_dim=joint_dim,
        pooled_projection_dim=pooled_dim, axes_dims_rope=[4, 4, 8] if head_dim == 16 else [head_dim // 4, head_dim // 4, head_dim // 2],
    )


def tiny_sd3_transformer(num_layers: int = 2, qk_norm: str | None = None, dual: tuple[int, ...] = ()):
    """A small SD3 transformer: 2 blocks (the last one context-pre-only), 2 heads of 8, patch 2."""
    from diffusers import SD3Transformer2DModel

    return SD3Transformer2DModel(
        sample_size=8, patch_size=2, in_channels=4, num_layers=num_layers, attention_head_dim=8,
        num_attention_heads=2, joint_attention_dim=32, caption_projection_dim=16, pooled_projection_dim=32,
        out_channels=4, pos_embed_max_size=16, qk_norm=qk_norm, dual_attention_layers=dual,
    )


def tiny_flux_pipeline(seed: int = 0, **transformer_kwargs):
    """FluxPipeline: CLIP (pooled, 32) + T5 (32) text encoders, a 2-block VAE (scale 2) and the tiny transformer.

    Images of 16x16 pixels give a 4x4 patch grid.
    """
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline

    torch.manual_seed(seed)
    tok, tok2 = make_tokenizer("clip"), make_tokenizer("t5")
    clip = CLIPTextModel(_clip_config(tok, 32, 32)).eval()
    t5 = _t5(tok2, 32).eval()
    transformer = tiny_flux_transformer(**transformer_kwargs).eval()
    return FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=_vae(1).eval(), text_encoder=clip,
                        tokenizer=tok, text_encoder_2=t5, tokenizer_2=tok2, transformer=transformer)


def tiny_sd3_pipeline(seed: int = 0, **transformer_kwargs):
    """StableDiffusion3Pipeline: two CLIPs (hidden 16, projection 16) + T5 (32), 2-block VAE, tiny transformer.

    Images of 16x16 pixels give a 4x4 patch grid (latent 8x8, patch 2).
    """
    from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline

    torch.manual_seed(seed)
    tok, tok2, tok3 = make_tokenizer("clip"), make_tokenizer("clip"), make_tokenizer("t5")
    clip1 = CLIPTextModelWithProjection(_clip_config(tok, 16, 16)).eval()
    clip2 = CLIPTextModelWithProjection(_clip_config(tok2, 16, 16)).eval()
    t5 = _t5(tok3, 32).eval()
    transformer = tiny_sd3_transformer(**transformer_kwargs).eval()
    return StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(), vae=_vae(4).eval(),
        text_encoder=clip1, tokenizer=tok, text_encoder_2=clip2, tokenizer_2=tok2, text_encoder_3=t5, tokenizer_3=tok3,
    )


__all__ = ["CLIP_LEN", "make_tokenizer", "tiny_flux_pipeline", "tiny_flux_transformer", "tiny_sd3_pipeline",
           "tiny_sd3_transformer"]
