"""The named arrays of a result (:mod:`metagame.results.extras`): every key a run or an adapter writes is declared,
the typed properties return the stored arrays (None when absent), and a caller's own keys are kept as they are."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import metagame
from metagame.domains.components.adapter import ComponentModel
from metagame.domains.tensors.adapter import TensorModel
from metagame.models.joint import joint
from metagame.results.extras import EXTRAS, cross_block_key, is_declared
from metagame.results.result import SIDECAR_KEYS, MetaAttribution
from test_entry_points import EXACT, _entry_points, models  # noqa: F401  (models: the tiny models fixture)

#: the typed properties of MetaAttribution, each named as its key, with a shape for a 2-player result
TYPED = {"image": (6, 8, 3), "patch_maps": (2, 2, 3), "heatmap": (2, 3), "concept_maps": (2, 2, 3),
         "meta_maps": (2, 2, 2, 3), "stii": (2, 2), "tensor": (2, 2, 2), "tensor_stderr": (2, 2, 2)}


def _f(z):
    return torch.tanh(z).sum(dim=1) + z[:, 0] * z[:, 1]


X = torch.linspace(-1, 1, 3, dtype=torch.float64)


class MapModel(TensorModel):
    """Vector-valued attributions: each player's φ as a map of two cells (φ, 2φ)."""

    attribution_shape = (2,)

    def attribute(self, method, coalitions):
        phi = super().attribute(method, coalitions)
        return torch.stack([phi, 2 * phi], dim=-1)


class SideModel(TensorModel):
    """One always-present side target after the players: the sum of their attributions."""

    side_targets = ("sum",)

    def attribute(self, method, coalitions):
        phi = super().attribute(method, coalitions)
        return torch.cat([phi, phi.sum(dim=1, keepdim=True)], dim=1)


def _undeclared(res: MetaAttribution) -> list[str]:
    return [key for key in res.extras if not is_declared(key, res.player_kinds)]


def _result(extras: dict) -> MetaAttribution:
    return MetaAttribution(matrix=np.eye(2), first_order=np.ones(2), players=["a", "b"], method="shapley",
                           extras=extras)


def test_typed_properties_return_the_stored_arrays_and_none_when_absent(tmp_path):
    rng = np.random.default_rng(0)
    res = _result({**{key: rng.random(shape) for key, shape in TYPED.items()}, "my_own": np.arange(3.0)})
    for key in TYPED:
        assert key in EXTRAS
        assert getattr(res, key) is res.extras[key]
        with pytest.raises(AttributeError):
            setattr(res, key, None)  # read-only: the storage stays extras
    back = MetaAttribution.load(res.save(tmp_path / "result.json"))
    for key in TYPED:
        np.testing.assert_array_equal(getattr(back, key), res.extras[key])
    np.testing.assert_array_equal(back.extras["my_own"], np.arange(3.0))  # a caller's own key is kept
    empty = _result({})
    assert all(getattr(empty, key) is None for key in TYPED)


def test_registry():
    assert SIDECAR_KEYS == {"tensor", "tensor_stderr", "maps", "meta_maps"}  # the file format does not change
    assert all(key == extra.key and extra.shape and extra.meaning and extra.written_by for key, extra in EXTRAS.items())
    assert cross_block_key("head", "word") == "head_to_word"
    assert is_declared("head_to_word", ["word", "head"]) and is_declared("layer_to_word_a", ["word_a", "layer"])
    assert not is_declared("head_to_word", ["word"]) and not is_declared("word_to_word", ["word", "head"])
    assert not is_declared("my_own", ["word", "head"])


def test_the_module_docstring_lists_every_declared_key():
    import metagame.results.extras as module

    doc = " ".join(module.__doc__.split())
    for e in EXTRAS.values():
        line = f"* ``{e.key}`` ``{e.shape}``: {e.meaning}. Written by {e.written_by}."
        line += " Always saved to the side-car." if e.sidecar else ""
        assert line in doc, f"metagame/results/extras.py's docstring should list: {line}"
    assert doc.count("* ``") == len(EXTRAS)


def test_keys_written_by_runs_and_generic_adapters_are_declared():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
    runs = {
        "order 3": lambda: metagame.meta_attributions(_f, X, method="gradient_x_input", order=3),
        "order 3 sampled": lambda: metagame.meta_attributions(_f, X, method="gradient_x_input", order=3, budget=40,
                                                              estimator="stratified"),
        "serial": lambda: metagame.meta_attributions(_f, X, method="gradient_x_input", variant="serial"),
        "serial sampled": lambda: metagame.meta_attributions(_f, X, method="gradient_x_input", variant="serial",
                                                             budget=40),
        "maps": lambda: metagame.explain(MapModel(_f, X), "gradient_x_input", variant="serial"),
        "side targets": lambda: metagame.explain(SideModel(_f, X), "gradient_x_input"),
        "joint": lambda: metagame.explain(joint(TensorModel(net, X), ComponentModel(net, X[None], output=None,
                                                                                     components=["1"])), "shapley"),
    }
    written = set()
    for name, run in runs.items():
        res = run()
        assert res.extras, name
        assert _undeclared(res) == [], name
        written |= set(res.extras)
    assert {"tensor", "tensor_stderr", "attribution_at_baseline", "maps", "first_order_maps", "side_matrix",
            "side_first_order", "side_at_empty", "feature_to_component", "component_to_feature"} <= written


@pytest.mark.slow
def test_keys_written_by_every_entry_point_are_declared(models, tmp_path):
    """Every entry point on the tiny models of the entry-point tests, plus the views that reshape the run's arrays
    (patch maps, diffusion maps) and a language model with its attention heads (cross blocks)."""
    pytest.importorskip("diffusers")
    from tiny_diffusion import tiny_flux_pipeline

    runs = dict(_entry_points(models, EXACT, tmp_path))
    runs["patch_maps"] = lambda: metagame.explain_vision(models["clip"], models["image"], "a red cat",
                                                         mode="patch_maps", grid=2, method="gradient_x_input")
    runs["diffusion"] = lambda: metagame.explain_diffusion(tiny_flux_pipeline(seed=0), "a cat under a tree",
                                                           concepts=["cat", "tree"], steps=2, height=16, width=16,
                                                           max_sequence_length=12, region=np.eye(4))
    runs["lm with heads"] = lambda: metagame.explain_lm(models["lm"], "the movie was bad", "paris", components="heads",
                                                        layers=[0], method="gradient_x_input")
    written = set()
    for name, run in runs.items():
        res = run()
        assert _undeclared(res) == [], name
        written |= set(res.extras)
    assert {"image", "a_to_b", "b_to_a", "patch_maps", "heatmap", "heatmap_no_words", "concept_maps", "meta_maps",
            "region", "head_to_word", "word_to_head"} <= written
