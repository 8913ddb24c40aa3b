"""One engine for data and component attribution: speed and accuracy of the two unified-view games.

1. Data metagame with KNN-Shapley inside, 200 training points, shared-sample estimator (budget of
   attribution calls); accuracy checked on a 10-point subset against a brute-force reference
   (inner Shapley value enumerated from the KNN utility's 2^10 values, then the exact metagame).
2. Component Shapley over the 16 attention heads of a tiny random GPT-2 (exact: all 2^16 ablation
   masks), masks evaluated in batches: forward passes per coalition (target ≤ 1/32) and the time
   per coalition against one mask per forward pass, measured side by side.
3. Words and heads in one game (``metagame.joint``): 8 prompt words + the 8 heads of one layer of a tiny random
   Llama with a chat template, exact over all 2^16 coalitions. Coalitions per forward pass (target ≥ 32; word
   masking and head gates in the same pass), the exact Meta-SV time (value table) and the exact gradient×input
   metagame time (gradients w.r.t. embeddings and gates together), the cost per coalition of the joint game
   against the words-only game, and 128 coalitions one per pass vs one batch (same numbers).

Run: ``python benchmarks/unified.py [--skip-joint-gradients]`` (CPU; a few minutes on an idle 2-core machine).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

import metagame
from metagame.domains.data.methods import KNNShapley
from metagame.domains.components.adapter import ComponentModel
from metagame.domains.data.adapter import KNNDataModel


def blobs(n: int, n_test: int, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.normal(size=(n, 4)) + 1.2 * np.eye(4)[y]
    yt = rng.integers(0, 3, n_test)
    Xt = rng.normal(size=(n_test, 4)) + 1.2 * np.eye(4)[yt]
    return X, y, Xt, yt


def data_benchmark(rows: list[tuple[str, str, str]]) -> None:
    X, y, Xt, yt = blobs(200, 20, seed=0)
    k = 5
    # -- 10-point subset: brute-force reference vs KNN-Shapley (exact and sampled)
    small = KNNDataModel(X[:10], y[:10], X_test=Xt, y_test=yt, k=k)
    t0 = time.perf_counter()
    ref = metagame.explain(small, "shapley")  # inner Shapley enumerated from the 2^10 KNN-utility values
    t_ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    exact = metagame.explain(KNNDataModel(X[:10], y[:10], X_test=Xt, y_test=yt, k=k), KNNShapley())
    t_exact = time.perf_counter() - t0
    scale = np.abs(ref.matrix).max()
    rows.append(("data, n=10: brute-force reference (inner shapley, exact)", f"{t_ref:.3f} s", "reference"))
    rows.append(
        ("data, n=10: KNN-Shapley, exact metagame", f"{t_exact:.3f} s", f"max |err| = {np.abs(exact.matrix - ref.matrix).max():.1e}")
    )
    for budget in (200, 600):
        est = metagame.explain(KNNDataModel(X[:10], y[:10], X_test=Xt, y_test=yt, k=k), KNNShapley(), budget=budget, seed=0)
        err = np.abs(est.matrix - ref.matrix).max() / scale
        rows.append((f"data, n=10: KNN-Shapley, budget={budget} of 1023", "", f"max |err| / max |M| = {err:.3f}"))
    # -- 200 points
    for budget in (2000, 5000):
        model = KNNDataModel(X, y, X_test=Xt, y_test=yt, k=k)
        t0 = time.perf_counter()
        res = metagame.explain(model, KNNShapley(), budget=budget, seed=0)
        dt = time.perf_counter() - t0
        first = KNNShapley().attribute(model, np.ones((1, 200), dtype=bool)).numpy()[0]
        rowsum = np.abs(res.matrix.sum(axis=1) - first).max()
        rows.append(
            (
                f"data, n=200: KNN-Shapley metagame, budget={budget}",
                f"{dt:.2f} s",
                f"{res.n_evaluations} calls, 0 trainings; |row sum − φ| = {rowsum:.1e}; "
                f"{res.metadata['parameters'].get('estimator', '?')}",
            )
        )


def component_benchmark(rows: list[tuple[str, str, str]]) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    config = AutoConfig.for_model("gpt2", n_layer=2, n_head=8, n_embd=32, vocab_size=100, n_positions=16, bos_token_id=0, eos_token_id=0)
    with tempfile.TemporaryDirectory() as tmp:
        AutoModelForCausalLM.from_config(config).save_pretrained(tmp)
        gpt2 = AutoModelForCausalLM.from_pretrained(tmp).eval()
    ids = {"input_ids": torch.tensor([[11, 42, 7, 93, 5, 28, 61, 3]])}
    ref = {"input_ids": torch.randint(0, 100, (16, 8), generator=torch.Generator().manual_seed(1))}
    batched = ComponentModel(gpt2, ids, output=17, ablation="mean", reference=ref, batch_size=512)
    t0 = time.perf_counter()
    res = metagame.explain(batched, "shapley")
    dt = time.perf_counter() - t0
    n_coal = 2**batched.n_players
    per = batched.n_forward_passes / n_coal
    rows.append(
        (
            f"components: exact Shapley metagame, {batched.n_players} heads (2^16 masks)",
            f"{dt:.2f} s",
            f"{batched.n_forward_passes} forward passes = 1/{round(1 / per)} per coalition; "
            f"|row sum − φ| = {np.abs(res.matrix.sum(1) - res.first_order).max():.1e}",
        )
    )
    # side by side: the same 128 masks one per forward pass vs one batch
    masks = np.random.default_rng(0).random((128, batched.n_players)) < 0.5
    one = ComponentModel(gpt2, ids, output=17, ablation="mean", reference=ref, batch_size=1)
    one.cache_values = False
    t0 = time.perf_counter()
    v1 = one.values(masks)
    t_one = time.perf_counter() - t0
    many = ComponentModel(gpt2, ids, output=17, ablation="mean", reference=ref, batch_size=128)
    many.cache_values = False
    t0 = time.perf_counter()
    v2 = many.values(masks)
    t_many = time.perf_counter() - t0
    rows.append(
        (
            "components: 128 masks, one per pass vs one batch",
            f"{t_one:.2f} s vs {t_many:.3f} s",
            f"speed-up {t_one / t_many:.0f}x; max |diff| = {float((v1 - v2).abs().max()):.1e}",
        )
    )


JOINT_PROMPT = "the movie was not bad at all really"  # 8 words
JOINT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def tiny_llama(path: str, heads: int = 8, hidden: int = 64):
    """A tiny random Llama (2 layers, ``heads`` heads) with a WordPiece tokenizer and a chat template, saved to path."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<mask>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|end|>"]
    tk = Tokenizer(models.WordPiece(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.train_from_iterator([JOINT_PROMPT, "it was good yes", "a film story"] * 4,
                           trainers.WordPieceTrainer(vocab_size=120, special_tokens=specials))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
                                  bos_token="<s>", eos_token="</s>", additional_special_tokens=specials[5:])
    tok.chat_template = JOINT_TEMPLATE
    cfg = AutoConfig.for_model("llama", vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                               num_hidden_layers=2, num_attention_heads=heads, num_key_value_heads=heads // 2,
                               max_position_embeddings=128, bos_token_id=tok.bos_token_id,
                               eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(path)
    tok.save_pretrained(path)


def joint_benchmark(rows: list[tuple[str, str, str]], gradients: bool = True) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from metagame.domains.components.extension import lm_components
    from metagame.domains.lm.adapter import CausalLM
    from metagame.players import all_coalitions

    with tempfile.TemporaryDirectory() as tmp:
        tiny_llama(tmp)
        model = AutoModelForCausalLM.from_pretrained(tmp).eval()
        tok = AutoTokenizer.from_pretrained(tmp)

    def build(batch: int):
        words = CausalLM(model, JOINT_PROMPT, "it was good", tokenizer=tok, batch_size=batch)
        heads = lm_components(words, components="heads", layers=[1])
        return words, heads, metagame.joint(words, heads)

    # -- coalitions per forward pass and the exact Meta-SV (value table, Möbius route)
    words, heads, game = build(256)
    d = game.n_players
    t0 = time.perf_counter()
    res = metagame.explain(game, "shapley")
    dt = time.perf_counter() - t0
    per = (2**d) / game.n_forward_passes
    rows.append((f"joint: exact Meta-SV, {words.n_players} words + {heads.n_players} heads (2^{d} coalitions)",
                 f"{dt:.2f} s",
                 f"{game.n_forward_passes} forward passes = {per:.0f} coalitions per pass (target >= 32); "
                 f"|row sum − φ| = {np.abs(res.matrix.sum(1) - res.first_order).max():.1e}"))
    plain = CausalLM(model, JOINT_PROMPT, "it was good", tokenizer=tok)  # default batch size
    default = metagame.joint(plain, lm_components(plain, components="heads", layers=[1]))
    default.cache_values = False
    default.values(all_coalitions(d)[:1024])
    rows.append(("joint: coalitions per forward pass at the default batch size", "",
                 f"{1024 / default.n_forward_passes:.0f} (the words adapter's batch_size; batch_size= sets more)"))
    # -- cost per coalition: joint game vs the words-only game (same batches)
    sample = np.random.default_rng(0).random((512, d)) < 0.5
    words.cache_values = False
    game.cache_values = False
    t0 = time.perf_counter()
    words.values(sample[:, : words.n_players])
    t_words = time.perf_counter() - t0
    t0 = time.perf_counter()
    game.values(sample)
    t_joint = time.perf_counter() - t0
    rows.append(("joint vs words-only: 512 coalitions, values", f"{t_joint:.3f} s vs {t_words:.3f} s",
                 f"ratio {t_joint / t_words:.2f} (joint re-runs the template prefix, which the word game caches)"))
    # -- one coalition per pass vs one batch
    masks = sample[:128]
    _, _, one = build(1)
    one.cache_values = False
    t0 = time.perf_counter()
    v1 = one.values(masks)
    t_one = time.perf_counter() - t0
    _, _, many = build(128)
    many.cache_values = False
    t0 = time.perf_counter()
    v2 = many.values(masks)
    t_many = time.perf_counter() - t0
    rows.append(("joint: 128 coalitions, one per pass vs one batch", f"{t_one:.2f} s vs {t_many:.3f} s",
                 f"speed-up {t_one / t_many:.0f}x; max |diff| = {float((v1 - v2).abs().max()):.1e}"))
    if gradients:
        # -- exact gradient×input metagame: gradients w.r.t. the word embeddings and the gates together
        _, _, grad_game = build(256)
        t0 = time.perf_counter()
        res = metagame.explain(grad_game, "gradient_x_input")
        dt = time.perf_counter() - t0
        rows.append((f"joint: exact gradient×input metagame, 2^{d} − 1 coalitions", f"{dt:.2f} s",
                     f"{grad_game.n_forward_passes} forward+backward passes; "
                     f"|row sum − φ| = {np.abs(res.matrix.sum(1) - res.first_order).max():.1e}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-joint-gradients", action="store_true", help="skip the exact gradient×input joint run")
    parser.add_argument("--only-joint", action="store_true", help="run the words × heads section only")
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    rows: list[tuple[str, str, str]] = []
    if not args.only_joint:
        data_benchmark(rows)
        component_benchmark(rows)
    joint_benchmark(rows, gradients=not args.skip_joint_gradients)
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    print(f"{'case':<{w0}} | {'time':<{w1}} | result")
    print(f"{'-' * w0}-|-{'-' * w1}-|-------")
    for a, b, c in rows:
        print(f"{a:<{w0}} | {b:<{w1}} | {c}")


if __name__ == "__main__":
    main()
