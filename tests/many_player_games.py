"""Games of the many-players benchmark (benchmarks/many_players.py) and their reference meta-attributions.

Shared by benchmarks/many_players.py and tests/test_many_player_games.py. Every builder is called as
``build(d, seed, ref_calls, exact_max=EXACT_MAX_PLAYERS)`` and returns a :class:`Game`: the model adapter, the
reference M, its per-entry standard error (None: exact) and a description. The inner method is gradient×input.

References: the planted polynomial has a closed form at every d (tests/planted_poly.py). The other games are exact
(the exact engine, 2^d attribution calls) for d ≤ ``exact_max``; beyond, the reference is a ``montecarlo`` run with
``ref_calls`` attribution calls and its own seed (``REF_SEED`` + seed). That estimator is unbiased (every sampled
unit gives an unbiased estimate Y_k of M; the control variate is fixed within a batch) and its stderr is
sd(Y)/√K, so E||est − ref||² = ||est − M||² + Σ stderr_ref² for an estimate independent of the reference.

Models are tiny and random, built from configs (no downloads): a two-layer tanh MLP; a 2-layer Llama-style causal LM
whose players are the d words of a long random prompt (f = log p(answer | prompt), words masked by deletion); a
1-layer CLIP whose players are the G × G image patches (f = the image–text logit of a fixed caption, absent patches
take the image's mean colour).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from metagame.methods.registry import get_method
from metagame.models.base import ModelAdapter
from metagame.domains.tensors.adapter import TensorModel
from metagame.run import RunOptions, exact_meta_attributions
from metagame.run.estimators import estimate_meta_attributions

from planted_poly import planted_poly

METHOD = "gradient_x_input"
#: exact references up to this many players (2^16 attribution calls)
EXACT_MAX_PLAYERS = 16
#: the reference run's seed is REF_SEED + the game's seed (independent of every compared run)
REF_SEED = 10_000
#: the reference estimator beyond EXACT_MAX_PLAYERS (unbiased, memory O(batch·d + d²))
REF_ESTIMATOR = "montecarlo"


@dataclass
class Game:
    """A benchmark game: adapter, reference M ``[d, d]``, its stderr (None: exact) and what both are."""

    model: ModelAdapter
    reference: np.ndarray
    ref_stderr: np.ndarray | None
    description: str
    ref_seconds: float = 0.0


def reference(
    model: ModelAdapter, seed: int, ref_calls: int, exact_max: int
) -> tuple[np.ndarray, np.ndarray | None, str, float]:
    """``(M, stderr or None, words, seconds)``: the exact engine for d ≤ ``exact_max``, else ``montecarlo`` with
    ``ref_calls`` attribution calls and seed ``REF_SEED + seed``."""
    d = model.n_players
    t0 = time.perf_counter()
    if d <= exact_max:
        out = exact_meta_attributions(model, get_method(METHOD), RunOptions(progress=False))
        return out.matrix, None, f"exact ({out.n_evaluations} calls)", time.perf_counter() - t0
    est = estimate_meta_attributions(model, get_method(METHOD), RunOptions(
        budget=ref_calls, seed=REF_SEED + seed, estimator=REF_ESTIMATOR, progress=False))
    words = f"{REF_ESTIMATOR} ({est.n_evaluations} calls, seed {REF_SEED + seed})"
    return est.matrix, est.stderr, words, time.perf_counter() - t0


def _game(model: ModelAdapter, seed: int, ref_calls: int, exact_max: int, what: str) -> Game:
    m, se, words, seconds = reference(model, seed, ref_calls, exact_max)
    return Game(model, m, se, f"{what}; reference: {words}", seconds)


def build_poly(d: int, seed: int, ref_calls: int = 0, exact_max: int = EXACT_MAX_PLAYERS) -> Game:
    """Planted multilinear polynomial (2d pairs, d triples, d/2 quadruples): closed-form M at every d."""
    f, x, m, _ = planted_poly(d, seed, pairs=2 * d, triples=d, quads=d // 2)
    return Game(TensorModel(f, x), m, None, "planted polynomial; reference: closed form")


def build_poly6(d: int, seed: int, ref_calls: int = 0, exact_max: int = EXACT_MAX_PLAYERS) -> Game:
    """Planted polynomial with sets up to size 6 (2d pairs, d triples, d quadruples, d/2 of sizes 5 and 6): target
    games up to order 5, beyond the sparse surrogate's terms (order ≤ 4); closed-form M at every d."""
    f, x, m, _ = planted_poly(d, seed, pairs=2 * d, triples=d, quads=d, higher=(d // 2, d // 2))
    return Game(TensorModel(f, x), m, None, "planted polynomial, sets up to size 6; reference: closed form")


def build_mlp(d: int, seed: int, ref_calls: int, exact_max: int = EXACT_MAX_PLAYERS) -> Game:
    """Random two-layer tanh MLP, 24 hidden units, float64."""
    g = torch.Generator().manual_seed(seed)
    w1 = torch.randn(d, 24, generator=g, dtype=torch.float64) * 1.5 / d**0.5
    w2 = torch.randn(24, generator=g, dtype=torch.float64) / 24**0.5
    x = torch.randn(d, generator=g, dtype=torch.float64)
    return _game(TensorModel(lambda z: torch.tanh(z @ w1) @ w2, x), seed, ref_calls, exact_max, "tanh MLP 24 hidden")


def _word_tokenizer(words: list[str], post: str | None = None):
    """A fast word-level tokenizer (offline, ``tokenizers``) over ``words`` plus <unk> <pad> <s> </s>."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: k for k, w in enumerate(["<unk>", "<pad>", "<s>", "</s>"] + words)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    if post is not None:
        tk.post_processor = processors.TemplateProcessing(single=post, special_tokens=[("<s>", 2), ("</s>", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>")


#: the LM's vocabulary (its prompt draws d words from it)
LM_WORDS = [f"w{k}" for k in range(256)]


def build_lm(d: int, seed: int, ref_calls: int, exact_max: int = EXACT_MAX_PLAYERS) -> Game:
    """Tiny random Llama-style causal LM (2 layers, hidden 32, weights N(0, 0.2²)); players: the d words of a random
    prompt; f = log p("w1 w2" | prompt); masking: a word's tokens leave the attention mask (CausalLM's default)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from metagame.domains.lm.adapter import CausalLM

    tok = _word_tokenizer(LM_WORDS)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=d + 8, bos_token_id=2,
                      eos_token_id=3, pad_token_id=1, initializer_range=0.2)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).eval()
    prompt = " ".join(np.random.default_rng(seed).choice(LM_WORDS, size=d))
    adapter = CausalLM(model, prompt, "w1 w2", tokenizer=tok, chat_template=False, batch_size=64)
    assert adapter.n_players == d
    return _game(adapter, seed, ref_calls, exact_max, f"tiny Llama, {d}-word prompt")


def build_clip(d: int, seed: int, ref_calls: int, exact_max: int = EXACT_MAX_PLAYERS) -> Game:
    """Tiny random CLIP (vision: 1 layer, hidden 16, 2×2-pixel patches; image side 2·G) at a random image with
    colour blocks; players: the G × G patches (d = G², e.g. 196 = 14 × 14); f = the logit with the caption
    "a photo"; absent patches take the image's mean colour. Gradients on the joint view (``halves=False``)."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from metagame.domains.encoders.vision import VisionLanguageModel

    grid = math.isqrt(d)
    if grid * grid != d:
        raise ValueError(f"the CLIP game needs a square number of patches; got d={d}")
    side, patch = 2 * grid, 2
    tok = _word_tokenizer(["a", "photo"], post="<s> $A </s>")
    text = dict(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                max_position_embeddings=8, bos_token_id=2, eos_token_id=3, pad_token_id=1)
    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=side,
                  patch_size=patch)
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval()
    proc = CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side})
    rng = np.random.default_rng(seed)
    blocks = rng.random((max(grid // 3, 1), max(grid // 3, 1), 3))  # coarse colour blocks plus noise
    image = np.kron(blocks, np.ones((side // blocks.shape[0] + 1, side // blocks.shape[1] + 1, 1)))[:side, :side]
    image = (np.clip(0.8 * image + 0.2 * rng.random((side, side, 3)), 0, 1) * 255).astype(np.uint8)
    adapter = VisionLanguageModel(model, proc, tok, image, "a photo", include_words=False, halves=False,
                                  batch_size=64)
    assert adapter.n_players == d
    return _game(adapter, seed, ref_calls, exact_max, f"tiny CLIP, {grid}×{grid} patches")


__all__ = ["EXACT_MAX_PLAYERS", "Game", "METHOD", "REF_ESTIMATOR", "REF_SEED", "build_clip", "build_lm", "build_mlp",
           "build_poly", "reference"]
