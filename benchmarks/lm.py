"""Benchmark: batched coalition scoring of a causal LM vs the per-prompt Captum loop.

For every non-empty coalition S of the words of a prompt, compute gradient×input on the input
embeddings at x_S (the words outside S deleted). Ours: ``CausalLM`` + ``GradientXInput`` (many
coalitions per forward pass, template prefix cached). Captum: the loop a user writes today — build
the prompt with the words of S, wrap it in ``TextTokenInput`` and call
``LLMGradientAttribution(LayerGradientXActivation(model, embeddings))`` once per coalition (which
runs one forward/backward per answer token). Both give the same numbers (checked below).

Second table: the cost of AttnLRP per coalition divided by the cost of gradient×input on the same
coalitions (same adapter, same batches; target ≤ 1.3×), for the tiny model and a ~100M-parameter
random-weight Llama config (hidden 768, 12 layers, tied 32k vocabulary).

    python benchmarks/lm.py [--words 8] [--hidden 64] [--layers 2] [--large-coalitions 32] [--no-captum]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

from metagame.methods import GradientXInput
from metagame.domains.lm.attnlrp import AttnLRP
from metagame.domains.lm.adapter import CausalLM
from metagame.players import all_coalitions

SPECIALS = ["<pad>", "<unk>", "<mask>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
TEMPLATE = (
    "{{ bos_token }}<|system|>\nYou are a helpful assistant who answers questions about films briefly.<|end|>\n"
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
WORDS = "the movie was not bad at all and the story was good in the end".split()


def build(path: str, hidden: int, layers: int):
    corpus = [" ".join(WORDS), "you are a helpful assistant who answers questions about films briefly", "yes it was"] * 4
    tk = Tokenizer(models.WordPiece(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=200, special_tokens=SPECIALS))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
                                  bos_token="<s>", eos_token="</s>", additional_special_tokens=SPECIALS[5:])
    tok.chat_template = TEMPLATE
    cfg = AutoConfig.for_model(
        "llama", vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(path)
    tok.save_pretrained(path)


def captum_loop(model, tok, prompt_words, coalitions, answer_ids):
    from captum.attr import LayerGradientXActivation, LLMGradientAttribution, TextTokenInput

    llm_attr = LLMGradientAttribution(LayerGradientXActivation(model, model.get_input_embeddings()), tok)
    skip = list(tok.all_special_ids)
    target = torch.as_tensor(answer_ids)
    out = []
    for S in coalitions:
        words = [w for w, keep in zip(prompt_words, S) if keep]
        text = tok.apply_chat_template([{"role": "user", "content": " ".join(words)}], tokenize=False, add_generation_prompt=True)
        inp = TextTokenInput(text, tok, skip_tokens=skip)
        res = llm_attr.attribute(inp, target=target)
        out.append((inp.values, res.seq_attr.detach().double().numpy()))
    return out


def attnlrp_cost(adapter: CausalLM, coalitions: np.ndarray, repeats: int) -> tuple[float, float]:
    """Median seconds per coalition of gradient×input and of AttnLRP (interleaved runs after a warm-up)."""
    gxi, lrp = GradientXInput(), AttnLRP()
    gxi.attribute(adapter, coalitions[:2])
    lrp.attribute(adapter, coalitions[:2])
    times: dict[str, list[float]] = {"gxi": [], "lrp": []}
    for _ in range(repeats):
        for key, method in (("gxi", gxi), ("lrp", lrp)):
            t = time.perf_counter()
            method.attribute(adapter, coalitions)
            times[key].append((time.perf_counter() - t) / len(coalitions))
    return float(np.median(times["gxi"])), float(np.median(times["lrp"]))


def large_llama(vocab_size: int, tok) -> torch.nn.Module:
    """A random-weight Llama of about 100M parameters (hidden 768, 12 layers, 12 heads, MLP 2048, tied 32k vocab)."""
    cfg = AutoConfig.for_model(
        "llama", vocab_size=max(vocab_size, 32000), hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
        num_attention_heads=12, num_key_value_heads=12, max_position_embeddings=512, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(cfg).eval()


def attnlrp_table(a: CausalLM, prompt: str, C: np.ndarray, args) -> None:
    """AttnLRP cost per coalition ÷ gradient×input cost, tiny model (all coalitions) and ~100M Llama (a sample)."""
    rows = []
    rng = np.random.default_rng(0)
    runs = [("tiny Llama", a.model, C)]
    if args.large_coalitions > 0:
        big = large_llama(len(a.tokenizer), a.tokenizer)
        pick = C[np.sort(rng.choice(len(C), size=min(args.large_coalitions, len(C)), replace=False))]
        runs.append(("~100M Llama (random weights)", big, pick))
    for label, model, coal in runs:
        ad = CausalLM(model, prompt, a.answer_ids, tokenizer=a.tokenizer, masking="attention", batch_size=args.batch_size)
        n_params = sum(p.numel() for p in model.parameters())
        t_gxi, t_lrp = attnlrp_cost(ad, coal, args.repeats)
        rows.append((label, n_params, len(coal), t_gxi, t_lrp))
    print(f"\nAttnLRP vs gradient×input on the same coalitions ({a.n_players} words, batch {args.batch_size}, "
          f"median of {args.repeats} interleaved runs, CPU {torch.get_num_threads()} thread(s))")
    print(f"| {'model':<30} | {'parameters':>10} | {'coalitions':>10} | {'gxi ms/coal.':>12} | {'AttnLRP ms/coal.':>16} | {'ratio':>6} |")
    print(f"|{'-' * 32}|{'-' * 11}:|{'-' * 11}:|{'-' * 13}:|{'-' * 17}:|{'-' * 7}:|")
    for label, n, m, t_gxi, t_lrp in rows:
        print(f"| {label:<30} | {n / 1e6:9.1f}M | {m:10d} | {1e3 * t_gxi:12.2f} | {1e3 * t_lrp:16.2f} | {t_lrp / t_gxi:5.2f}× |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--words", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--large-coalitions", type=int, default=32, help="coalitions timed on the ~100M model (0: skip it)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved timing runs per method for the AttnLRP table")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--no-captum", action="store_true", help="skip the Captum comparison (first table)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        build(tmp, args.hidden, args.layers)
        prompt_words = WORDS[: args.words]
        prompt = " ".join(prompt_words)
        a = CausalLM(tmp, prompt, "yes it was", masking="attention", batch_size=args.batch_size)
        assert a.players == prompt_words
        C = all_coalitions(a.n_players)[1:]
        if not args.no_captum:
            captum_table(a, prompt, prompt_words, C, args)
        attnlrp_table(a, prompt, C, args)


def captum_table(a: CausalLM, prompt: str, prompt_words: list[str], C: np.ndarray, args) -> None:
    """Ours (batched, with / without the prefix cache) against the per-coalition Captum loop."""
    rows = []
    results = {}
    for label, cache in [("metagame CausalLM (prefix cache)", True), ("metagame CausalLM (no prefix cache)", False)]:
        ad = CausalLM(a.model, prompt, a.answer_ids, tokenizer=a.tokenizer, masking="attention",
                      batch_size=args.batch_size, prefix_cache=cache)
        GradientXInput().attribute(ad, C[:4])  # warm-up
        f0 = ad.n_forward_passes
        t = time.perf_counter()
        phi = GradientXInput().attribute(ad, C).numpy()
        dt = time.perf_counter() - t
        results[label] = phi
        rows.append((label, dt, len(C) / dt, len(C) / (ad.n_forward_passes - f0)))
    captum_loop(a.model, a.tokenizer, prompt_words, C[:2], a.answer_ids)  # warm-up
    t = time.perf_counter()
    cap = captum_loop(a.model, a.tokenizer, prompt_words, C, a.answer_ids)
    dt = time.perf_counter() - t
    k = len(a.answer_ids)
    rows.append(("Captum LLMGradientAttribution loop", dt, len(C) / dt, 1.0 / k))
    # the same numbers: Captum's token scores summed per word of S equal ours (absent words score 0)
    err = 0.0
    ours_all = results["metagame CausalLM (prefix cache)"]
    special = set(a.tokenizer.all_special_ids)
    offset = sum(t not in special for t in a.prompt_ids[: a.prefix_len])  # system-prompt tokens Captum also scores
    for r, (S, (tokens, seq)) in enumerate(zip(C, cap)):
        pos = offset
        per_word = np.zeros(a.n_players)
        members = np.flatnonzero(S)
        # Captum's interpretable tokens are all non-special tokens in order; group the prompt's like ours
        counts = [len(a.words[p].tokens) for p in members]
        for p, c in zip(members, counts):
            per_word[p] = seq[pos : pos + c].sum()
            pos += c
        err = max(err, float(np.abs(per_word - ours_all[r]).max()))
    print(f"tiny Llama (hidden {args.hidden}, {args.layers} layers), {a.n_players} words, "
          f"{len(a.prompt_ids)} prompt + {k} answer tokens, {len(C)} coalitions, gradient×input, CPU {torch.get_num_threads()} thread(s)")
    print(f"max |ours − Captum| per word over all coalitions: {err:.2e}")
    print(f"| {'method':<38} | {'seconds':>8} | {'coalitions/s':>12} | {'coalitions/forward':>18} | {'speed-up':>8} |")
    print(f"|{'-' * 40}|{'-' * 10}:|{'-' * 14}:|{'-' * 20}:|{'-' * 10}:|")
    base = rows[-1][2]
    for label, dt, rate, per in rows:
        print(f"| {label:<38} | {dt:8.2f} | {rate:12.1f} | {per:18.2f} | {rate / base:7.1f}× |")


if __name__ == "__main__":
    main()
