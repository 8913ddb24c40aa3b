"""The adapter contract (models/contract.py) and adapters rebuilt from their recipes: a method that needs an optional
capability names it when the adapter lacks it; a saved result stores its adapter's recipe and rebuilds the adapter
from it (and a result written before recipes were stored still rebuilds)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import metagame
from metagame.domains.data.adapter import KNNDataModel
from metagame.domains.data.methods import GradientInfluence, KNNShapley
from metagame.domains.tensors import SetFunctionModel, TensorModel
from metagame.errors import MissingCapabilityError
from metagame.methods import get_method
from metagame.models import Adapter, Differentiable, TorchModule, provides, require_capability
from metagame.results.result import MetaAttribution
from metagame.run.backend import AdapterRecipe, set_recipe

ONES = np.ones((1, 3), dtype=bool)


def lambda_model() -> TensorModel:
    return TensorModel(lambda x: x.sum(1), torch.ones(3))


# ------------------------------------------------------------------------------------------------ capabilities
def test_adapters_provide_the_contract_and_declare_their_capabilities():
    net = TensorModel(torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0)), torch.ones(3))
    assert provides(net, Adapter) and provides(net, Differentiable) and provides(net, TorchModule)
    assert not provides(lambda_model(), TorchModule)  # a function, not a torch module
    game = SetFunctionModel(lambda s: s.sum(1).astype(float), n_players=3)
    assert provides(game, Adapter) and not provides(game, Differentiable)  # declared: differentiable = False
    assert not provides(object(), Adapter)


@pytest.mark.parametrize("method, capability", [
    ("attnlrp", "TorchModule"),
    (KNNShapley(k=2), "KNNTables"),
    ("grad_eclip", "ImageTextView"),
    ("concept_attention", "ConceptMaps"),
])
def test_a_method_names_the_capability_the_adapter_lacks(method, capability):
    inner = get_method(method) if isinstance(method, str) else method
    with pytest.raises(MissingCapabilityError, match=f"method '{inner.name}' needs the {capability} capability") as err:
        inner.attribute(lambda_model(), ONES)
    assert "which TensorModel does not provide" in str(err.value)


def test_data_methods_and_encoder_components_name_the_missing_capability():
    rng = np.random.default_rng(0)
    knn = KNNDataModel(rng.normal(size=(4, 2)), [0, 1, 0, 1], X_test=rng.normal(size=(1, 2)), y_test=[1], k=2)
    with pytest.raises(MissingCapabilityError, match="needs the TrainingRuns capability"):
        GradientInfluence().attribute(knn, np.ones((1, 4), dtype=bool))
    from metagame.domains.components.extension import encoder_components

    with pytest.raises(MissingCapabilityError, match="components=... needs the ComponentHost capability"):
        encoder_components(lambda_model(), components="heads")
    with pytest.raises(MissingCapabilityError, match="custom step needs the TorchModule capability .model."):
        require_capability(lambda_model(), TorchModule, "custom step")


# ------------------------------------------------------------------------------------------------ recipes
def test_recipes_of_python_objects_have_no_json_form():
    res = metagame.meta_attributions(lambda x: x.sum(1), torch.ones(3), method="gradient_x_input")
    assert "recipe" not in res.metadata  # a tensor model is a Python object
    adapter = set_recipe(lambda_model(), lambda_model)
    assert adapter.recipe.to_json() is None  # a factory no domain registers for rebuilding
    with pytest.raises(metagame.MetagameError, match="no domain registers"):
        AdapterRecipe.from_json({"factory": "nope", "args": [], "kwargs": {}})
    from metagame.evaluate import rebuild_adapter

    with pytest.raises(metagame.MetagameError, match="cannot be rebuilt from its JSON file"):
        rebuild_adapter(res)


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory):
    """A tiny random BERT sentence encoder and a tiny random Qwen2 (with a chat template), saved to folders."""
    pytest.importorskip("transformers")
    from test_lm import make_model, make_tokenizer
    from transformers import BertConfig, BertModel

    root = tmp_path_factory.mktemp("contract")
    tok = make_tokenizer("wordpiece", template=False)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(root / "bert")
    tok.save_pretrained(root / "bert")
    return {"bert": str(root / "bert"), "qwen2": make_model("qwen2", root / "qwen2")}


def _saved_and_loaded(res: MetaAttribution, path, drop_recipe: bool = False) -> MetaAttribution:
    res.save(path)
    if drop_recipe:  # as written before results stored their recipe
        data = json.loads(path.read_text())
        del data["metadata"]["recipe"]
        path.write_text(json.dumps(data))
    return MetaAttribution.load(path)


@pytest.mark.slow
@pytest.mark.parametrize("legacy", [False, True])
def test_a_text_pair_result_rebuilds_its_adapter(hf_models, tmp_path, legacy):
    from metagame.evaluate import rebuild_adapter

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    res = metagame.explain_text_pair(hf_models["bert"], "the movie was bad", "a nice film", method="gradient_x_input",
                                     pooling="cls", empty="model")
    assert res.metadata["recipe"] == {"factory": "text_pair", "args": [hf_models["bert"], "the movie was bad", "a nice film"],
                                      "kwargs": {"pooling": "cls", "empty": "model"}}
    loaded = _saved_and_loaded(res, tmp_path / "result.json", drop_recipe=legacy)
    adapter = rebuild_adapter(loaded)
    assert adapter.players == res.players and adapter.pooling == ["cls"] and adapter.empty == "model"
    value = float(adapter.values(np.ones((1, adapter.n_players), dtype=bool))[0])
    assert value == pytest.approx(res.context["value_full"], rel=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("legacy", [False, True])
def test_a_causal_lm_result_rebuilds_its_adapter(hf_models, tmp_path, legacy):
    from metagame.evaluate import rebuild_adapter

    res = metagame.explain_lm(hf_models["qwen2"], "the movie was not bad", "paris", method="gradient_x_input",
                              chat_template=False, masking="mask_token")
    assert res.metadata["recipe"]["factory"] == "causal_lm"
    loaded = _saved_and_loaded(res, tmp_path / "result.json", drop_recipe=legacy)
    adapter = rebuild_adapter(loaded)  # the legacy result: no template, read off the stored template text
    assert adapter.players == res.players and not adapter.chat_template_used and adapter.masking == "mask_token"
    assert float(adapter.values(np.ones((1, adapter.n_players), dtype=bool))[0]) == pytest.approx(
        res.context["value_full"], rel=1e-6)


@pytest.mark.slow
def test_a_system_prompt_is_in_the_recipe(hf_models, tmp_path):
    """The template options are stored, so a system prompt (which old results did not keep) rebuilds."""
    from metagame.evaluate import rebuild_adapter

    res = metagame.explain_lm(hf_models["qwen2"], "the movie was not bad", "paris", method="gradient_x_input",
                              system_prompt="answer in one word")
    loaded = _saved_and_loaded(res, tmp_path / "result.json")
    adapter = rebuild_adapter(loaded)
    assert adapter.template_text == res.context["template_text"] and "answer in one word" in adapter.template_text
    with pytest.raises(metagame.MetagameError, match="f\\(x\\)"):  # without the stored recipe it cannot be told
        rebuild_adapter(_saved_and_loaded(res, tmp_path / "legacy.json", drop_recipe=True))
