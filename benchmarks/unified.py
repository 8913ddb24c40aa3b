"""One engine for data and component attribution: speed and accuracy of the two unified-view games.

1. Data metagame with KNN-Shapley inside, 200 training points, shared-sample estimator (budget of
   attribution calls); accuracy checked on a 10-point subset against a brute-force reference
   (inner Shapley value enumerated from the KNN utility's 2^10 values, then the exact metagame).
2. Component Shapley over the 16 attention heads of a tiny random GPT-2 (exact: all 2^16 ablation
   masks), masks evaluated in batches: forward passes per coalition (target ≤ 1/32) and the time
   per coalition against one mask per forward pass, measured side by side.

Run: ``python benchmarks/unified.py`` (CPU; about a minute on an idle 2-core machine).
"""

from __future__ import annotations

import tempfile
import time

import numpy as np
import torch

import metagame
from metagame.methods.data import KNNShapley
from metagame.models.components import ComponentModel
from metagame.models.data import KNNDataModel


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


def main() -> None:
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    rows: list[tuple[str, str, str]] = []
    data_benchmark(rows)
    component_benchmark(rows)
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    print(f"{'case':<{w0}} | {'time':<{w1}} | result")
    print(f"{'-' * w0}-|-{'-' * w1}-|-------")
    for a, b, c in rows:
        print(f"{a:<{w0}} | {b:<{w1}} | {c}")


if __name__ == "__main__":
    main()
