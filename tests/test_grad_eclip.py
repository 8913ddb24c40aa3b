"""Grad-ECLIP on tiny random CLIP and SigLIP models built from configs (4×4 native patch grid).

The reference re-runs each tower by hand in the test (the last attention written out, its output made a
leaf so ∂f/∂o is exact), then applies the formula H_i = ReLU(λ_i Σ_c w_c v_ic), λ the min-max rescaled
query–key cosine, with the query the paper's pooling token (CLS / EOS for CLIP, the pooling head's probe
and the last text position for SigLIP).
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch

from metagame import explain
from metagame.domains.encoders.entry import explain_vision
from metagame.domains.encoders.patch_maps import PatchMapsModel
from metagame.cli import main
from metagame.errors import MetagameError
from metagame.methods import get_method
from metagame.domains.encoders.grad_eclip import GradECLIP
from metagame.domains.tensors.adapter import TensorModel
from metagame.domains.encoders.vision import VisionLanguageModel, load_vision_language
from test_vision import build_tiny

TEXT = "a red cat"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("eclip")
    return {k: build_tiny(k, root) for k in ("clip", "siglip")}


@pytest.fixture(scope="module")
def loaded(tiny):
    out = {}
    for kind, path in tiny.items():
        model, ip, tok = load_vision_language(path)
        out[kind] = (model.double(), ip, tok)
    return out


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    from PIL import Image

    rng = np.random.default_rng(1)
    arr = (rng.random((36, 44, 3)) * 255).astype(np.uint8)
    arr[:18, 20:] = [30, 160, 40]
    path = tmp_path_factory.mktemp("img") / "img.png"
    Image.fromarray(arr).save(path)
    return str(path)


# ------------------------------------------------------------------------------------------------ reference
def _heads(x, n):
    b, t, d = x.shape
    return x.view(b, t, n, d // n).transpose(1, 2)


def _attention(q, k, v, n_heads, mask):
    """Multi-head softmax attention written out: ``q [b, tq, D]``, ``k, v [b, tk, D]``, additive ``mask``."""
    qh, kh, vh = _heads(q, n_heads), _heads(k, n_heads), _heads(v, n_heads)
    s = qh @ kh.transpose(-1, -2) / math.sqrt(qh.shape[-1]) + mask
    o = torch.softmax(s, dim=-1) @ vh
    return o.transpose(1, 2).reshape(q.shape[0], q.shape[1], -1)


def _layer(layer, h, mask, n_heads):
    """One CLIP/SigLIP encoder layer with the attention output ``o`` returned as a leaf."""
    x = layer.layer_norm1(h)
    at = layer.self_attn
    q, k, v = at.q_proj(x), at.k_proj(x), at.v_proj(x)
    o = _attention(q, k, v, n_heads, mask).detach().requires_grad_(True)
    h = h + at.out_proj(o)
    h = h + layer.mlp(layer.layer_norm2(h))
    return h, dict(q=q.detach(), k=k.detach(), v=v.detach(), o=o)


def _formula(w, q, k, v, valid):
    """ReLU(λ ⊙ (v · w)) with λ = cos(q, k) rescaled to [0, 1] over ``valid`` tokens (0 elsewhere), row by row."""
    out = torch.zeros(k.shape[:2], dtype=torch.float64)
    for r in range(k.shape[0]):
        idx = torch.nonzero(valid[r]).squeeze(1)
        c = torch.stack([torch.dot(q[r], k[r, i]) / (q[r].norm() * k[r, i].norm()) for i in idx])
        lam = (c - c.min()) / (c.max() - c.min())
        out[r, idx] = torch.relu(lam * (v[r, idx] @ w[r]))
    return out


def reference_maps(ad: VisionLanguageModel, coalitions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(native patch map [m, 16], token map [m, L], f [m]) computed by hand at x_S."""
    net = ad.model
    siglip = ad.model_type == "siglip"
    pix = ad.masked_pixels(coalitions)
    keep = ad.token_keep(coalitions)
    m, L = keep.shape
    vm, tm = net.vision_model, net.text_model
    # image tower
    nh_v = net.config.vision_config.num_attention_heads
    h = vm.embeddings(pix)
    if not siglip:
        h = vm.pre_layrnorm(h)
    for layer in vm.encoder.layers[:-1]:
        h, _ = _layer(layer, h, 0.0, nh_v)
    if siglip:
        h = vm.post_layernorm(_layer(vm.encoder.layers[-1], h, 0.0, nh_v)[0])
        head = vm.head
        mha = head.attention
        wq, wk, wv = mha.in_proj_weight.split(mha.embed_dim)
        bq, bk, bv = mha.in_proj_bias.split(mha.embed_dim)
        probe = head.probe.expand(m, -1, -1)
        q, k, v = probe @ wq.T + bq, h @ wk.T + bk, h @ wv.T + bv
        o_img = _attention(q, k, v, mha.num_heads, 0.0).detach().requires_grad_(True)
        y = mha.out_proj(o_img)
        pooled = (y + head.mlp(head.layernorm(y)))[:, 0]
        img = pooled
        img_parts = dict(q=q.detach()[:, 0], k=k.detach(), v=v.detach())
    else:
        h, parts = _layer(vm.encoder.layers[-1], h, 0.0, nh_v)
        img = net.visual_projection(vm.post_layernorm(h[:, 0]))
        o_img = parts["o"]
        img_parts = dict(q=parts["q"][:, 0], k=parts["k"][:, 1:], v=parts["v"][:, 1:])
    # text tower: absent words have zero embeddings and are dropped from the attention mask
    nh_t = net.config.text_config.num_attention_heads
    tok = tm.embeddings.token_embedding(ad.input_ids)[None] * keep[..., None].double()
    t = tm.embeddings(input_ids=ad.input_ids.expand(m, -1), inputs_embeds=tok)
    allowed = keep[:, None, None, :].expand(m, 1, L, L)
    if not siglip:
        allowed = allowed & torch.ones(L, L, dtype=torch.bool).tril()
    mask = torch.where(allowed, 0.0, float("-inf")).double()
    for layer in tm.encoder.layers[:-1]:
        t, _ = _layer(layer, t, mask, nh_t)
    t, tparts = _layer(tm.encoder.layers[-1], t, mask, nh_t)
    t = tm.final_layer_norm(t)
    e = L - 1 if siglip else int(torch.nonzero(ad.input_ids == net.config.text_config.eos_token_id)[0])
    txt = tm.head(t[:, e]) if siglip else net.text_projection(t[:, e])
    bias = net.logit_bias if siglip else 0.0
    f = net.logit_scale.exp() * torch.nn.functional.cosine_similarity(img, txt, dim=-1) + bias
    g_img, g_txt = torch.autograd.grad(f.sum(), [o_img, tparts["o"]])
    heat_img = _formula(g_img[:, 0], img_parts["q"], img_parts["k"], img_parts["v"],
                        torch.ones(img_parts["k"].shape[:2], dtype=torch.bool))
    valid = keep.clone()
    if not siglip:
        valid[:, e + 1 :] = False
    heat_txt = _formula(g_txt[:, e], tparts["q"][:, e], tparts["k"], tparts["v"], valid)
    return heat_img, heat_txt, f.detach()


def reference_scores(ad: VisionLanguageModel, coalitions: np.ndarray) -> np.ndarray:
    """Players' scores: patch groups sum their native patches, words their tokens, absent players 0."""
    heat_img, heat_txt, _ = reference_maps(ad, coalitions)
    out = np.zeros((len(coalitions), ad.n_players))
    g = ad.native_grid
    rows, cols = ad.grid
    for pidx in range(g * g):
        r, c = divmod(pidx, g)
        group = int(ad.pixel_patch[r * ad.patch_size, c * ad.patch_size])
        out[:, group] += heat_img[:, pidx].numpy()
    for tpos, player in enumerate(ad.token_player.tolist()):
        if player >= 0:
            out[:, player] += heat_txt[:, tpos].numpy()
    return out * coalitions


# ------------------------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("kind", ["clip", "siglip"])
@pytest.mark.parametrize("grid", [None, 2])
def test_matches_the_formula_computed_by_hand(kind, grid, loaded, image_file):
    model, ip, tok = loaded[kind]
    ad = VisionLanguageModel(model, ip, tok, image_file, TEXT, grid=grid, batch_size=3)
    rng = np.random.default_rng(0)
    coal = np.vstack([np.ones(ad.n_players, bool), rng.random((4, ad.n_players)) < 0.6])
    coal[1:, ad.n_patches] = True  # keep one word so every text has a non-special token
    ours = GradECLIP().attribute(ad, coal).numpy()
    np.testing.assert_allclose(ours, reference_scores(ad, coal), atol=1e-6, rtol=0)
    assert (ours >= 0).all() and ours[0].max() > 0
    # the reference's f is the adapter's f (the hand-written towers are the model)
    np.testing.assert_allclose(reference_maps(ad, coal)[2].numpy(), ad.values(coal).numpy(), atol=1e-9)


def test_patch_maps_rows_sum_per_patch_and_equal_brute_force_shapley(loaded, image_file):
    model, ip, tok = loaded["clip"]
    ad = VisionLanguageModel(model, ip, tok, image_file, TEXT, grid=2)
    res = explain(PatchMapsModel(ad), "grad_eclip")
    maps = res.extras["patch_maps"]  # [W, rows, cols]
    assert maps.shape == (3, 2, 2) and res.players == TEXT.split()
    np.testing.assert_allclose(maps.sum(axis=0), res.extras["heatmap"] - res.extras["heatmap_no_words"], atol=1e-9)
    np.testing.assert_allclose(res.row_sums(), res.first_order, atol=1e-9)
    # brute force: Shapley value of each word in T ↦ reference heatmap(all patches, words T), per patch
    w, p = ad.n_words, ad.n_patches
    subsets = list(itertools.product([False, True], repeat=w))
    heat = {S: reference_scores(ad, ad.word_coalitions(np.array([S])))[0, :p] for S in subsets}
    expected = np.zeros((w, p))
    for i in range(w):
        for S in subsets:
            if not S[i]:
                with_i = tuple(True if j == i else S[j] for j in range(w))
                s = sum(S)
                weight = math.factorial(s) * math.factorial(w - s - 1) / math.factorial(w)
                expected[i] += weight * (heat[with_i] - heat[S])
    np.testing.assert_allclose(maps.reshape(w, p), expected, atol=1e-6)
    np.testing.assert_allclose(res.extras["heatmap"].reshape(-1), heat[(True,) * w], atol=1e-6)


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_explain_vision_exact_and_budgeted(kind, loaded, image_file):
    model, ip, tok = loaded[kind]
    res = explain_vision(model, image_file, "red cat", image_processor=ip, tokenizer=tok, grid=2, method="grad_eclip")
    assert res.exact and res.method == "grad_eclip" and res.matrix.shape == (6, 6)
    np.testing.assert_allclose(res.row_sums(), res.first_order, atol=1e-9)
    ad = VisionLanguageModel(model, ip, tok, image_file, "red cat", grid=2)
    np.testing.assert_allclose(res.first_order, reference_scores(ad, np.ones((1, 6), bool))[0], atol=1e-6)
    est = explain_vision(model, image_file, TEXT, image_processor=ip, tokenizer=tok, grid=2, method="grad_eclip",
                         budget=24, seed=0)
    assert not est.exact and est.stderr is not None and np.isfinite(est.matrix).all()
    assert get_method("gradeclip").name == "grad_eclip"


def test_cli_vision_grad_eclip(tiny, image_file, tmp_path):
    out = tmp_path / "run"
    assert main(["vision", "--model", tiny["siglip"], "--image", image_file, "--text", TEXT, "--mode", "patch_maps",
                 "--grid", "2", "--method", "grad_eclip", "--out", str(out)]) == 0
    data = json.loads((out / "result.json").read_text())
    assert data["method"] == "grad_eclip" and data["players"] == TEXT.split()


def test_refuses_other_adapters():
    with pytest.raises(MetagameError, match="CLIP/SigLIP"):
        GradECLIP().attribute(TensorModel(lambda x: x.sum(1), torch.ones(3)), np.ones((1, 3), bool))
