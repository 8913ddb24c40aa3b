"""Bad input gets a clear error that names the fix; results save/load as JSON exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import metagame
from metagame import MetaAttribution, MetagameError, ModelOutputError, NotDifferentiableError


def _f(x):
    return torch.tanh(x).sum(dim=1)


def test_too_many_players_for_exact():
    with pytest.raises(MetagameError, match=r"d <= 20.*budget="):
        metagame.meta_attributions(_f, torch.ones(21), method="gradient_x_input")
    with pytest.raises(MetagameError, match=r"budget="):
        metagame.shapley_taylor(_f, torch.ones(21))


def test_inputs_baselines_shape_mismatch():
    with pytest.raises(MetagameError, match=r"baselines have shape \(3,\) but inputs have shape \(4,\).*same shape"):
        metagame.meta_attributions(_f, torch.ones(4), torch.zeros(3))
    # a scalar baseline broadcasts
    res = metagame.meta_attributions(_f, torch.ones(3), 0.5, method="gradient_x_input")
    assert res.matrix.shape == (3, 3)


def test_model_returns_wrong_shape():
    with pytest.raises(ModelOutputError, match=r"returned shape \(\d+, 3\).*one scalar per row.*\[:, class_index\]"):
        metagame.meta_attributions(lambda x: x, torch.ones(3), method="shapley")
    with pytest.raises(ModelOutputError, match=r"one scalar per row"):
        metagame.attribute(lambda x: x, torch.ones(3), method="integrated_gradients")


def test_model_returns_nan_names_the_coalition():
    f = lambda x: torch.log(x[:, 0] + 1.0 - 2.0 * x[:, 1])  # NaN at S = {1}, -inf at S = {0, 1}
    with pytest.raises(ModelOutputError, match=r"non-finite value \(nan\) at coalition S = \{1:'x1'\}.*baselines"):
        metagame.meta_attributions(f, torch.ones(2), method="shapley")
    g = lambda x: 1.0 / (x[:, 0] + x[:, 1] - 2.0)  # inf only at the full coalition x = (1, 1)
    with pytest.raises(ModelOutputError, match=r"coalition S = \{0:'x0', 1:'x1'\}"):
        metagame.meta_attributions(g, torch.ones(2), method="gradient_x_input")


def test_gradient_method_on_non_differentiable_model():
    as_numpy = lambda x: x.detach().numpy().sum(axis=1)

    def no_grad(x):
        with torch.no_grad():
            return x.sum(dim=1)

    for model in (as_numpy, no_grad):
        with pytest.raises(NotDifferentiableError, match=r"needs gradients.*perturbation method.*occlusion, shapley"):
            metagame.meta_attributions(model, torch.ones(3), method="integrated_gradients")
    # perturbation methods work on the same models
    res = metagame.meta_attributions(as_numpy, torch.ones(3), method="shapley")
    np.testing.assert_allclose(res.first_order, [1.0, 1.0, 1.0], atol=1e-6)


def test_unknown_method_lists_valid_ones():
    with pytest.raises(MetagameError, match=r"unknown method 'integrated_gradient'.*valid methods: saliency.*lime"):
        metagame.meta_attributions(_f, torch.ones(3), method="integrated_gradient")
    with pytest.raises(MetagameError, match=r"method must be a name"):
        metagame.meta_attributions(_f, torch.ones(3), method=42)


def test_bad_method_kwargs():
    with pytest.raises(MetagameError, match=r"does not take \['n_stepz'\].*n_steps"):
        metagame.meta_attributions(_f, torch.ones(3), method="integrated_gradients", method_kwargs={"n_stepz": 8})
    with pytest.raises(MetagameError, match=r"n_steps must be >= 1"):
        metagame.meta_attributions(_f, torch.ones(3), method="integrated_gradients", method_kwargs={"n_steps": 0})
    with pytest.raises(MetagameError, match=r"unknown quadrature"):
        metagame.attribute(_f, torch.ones(3), method="integrated_gradients", method_kwargs={"quadrature": "simpson"})


def test_bad_captum_kwargs():
    captum_attr = pytest.importorskip("captum.attr", reason="captum is not installed (pip install metagame[captum])")
    with pytest.raises(MetagameError, match=r"IntegratedGradients.attribute does not take \['n_stepz'\].*n_steps"):
        metagame.meta_attributions(_f, torch.ones(3), method=captum_attr.IntegratedGradients, method_kwargs={"n_stepz": 8})


def test_adapter_without_gradient_path():
    from metagame.domains.tensors import TensorModel

    class Frozen(TensorModel):
        differentiable = False

    with pytest.raises(NotDifferentiableError, match=r"has no gradient path.*occlusion"):
        metagame.explain(Frozen(_f, torch.ones(3)), "saliency")
    assert metagame.explain(Frozen(_f, torch.ones(3)), "occlusion").matrix.shape == (3, 3)


def test_bad_variant_and_value():
    with pytest.raises(MetagameError, match=r"unknown variant.*'metagame'"):
        metagame.meta_attributions(_f, torch.ones(3), variant="parallel")
    with pytest.raises(MetagameError, match=r"unknown value.*'banzhaf'"):
        metagame.meta_attributions(_f, torch.ones(3), value="owen")


# ---------------------------------------------------------------- save / load
def _assert_same(a: MetaAttribution, b: MetaAttribution):
    np.testing.assert_array_equal(a.matrix, b.matrix)
    np.testing.assert_array_equal(a.first_order, b.first_order)
    if a.stderr is None:
        assert b.stderr is None
    else:
        np.testing.assert_array_equal(a.stderr, b.stderr)
    for name in ("players", "method", "variant", "value", "exact", "n_evaluations", "n_model_rows", "player_kinds", "context"):
        assert getattr(a, name) == getattr(b, name), name
    assert set(a.extras) == set(b.extras)
    for k in a.extras:
        np.testing.assert_array_equal(a.extras[k], b.extras[k])
    assert b.metadata == a.metadata


def test_save_load_round_trip(tmp_path):
    x = torch.tensor([0.3, -1.7, 2.2], dtype=torch.float64)
    res = metagame.meta_attributions(_f, x, method="integrated_gradients", variant="serial", method_kwargs={"n_steps": 5})
    path = res.save(tmp_path / "result.json")
    data = json.loads(path.read_text())  # plain JSON with a metadata block
    assert data["format"] == "metagame.result/1"
    assert data["metadata"]["version"] == metagame.__version__ and data["metadata"]["library"] == "metagame"
    back = metagame.load(path)
    _assert_same(res, back)
    assert "attribution_at_baseline" in back.extras
    assert back.metadata["parameters"]["method_params"] == {"n_steps": 5, "quadrature": "gausslegendre"}


def test_save_load_special_values(tmp_path):
    d = 2
    res = MetaAttribution(
        matrix=np.array([[np.nan, np.inf], [-np.inf, 1e-300]]),
        first_order=np.array([1 / 3, -2.5]),
        players=["a", "<script>"],
        method="shapley",
        exact=False,
        stderr=np.array([[0.1, 0.2], [np.nan, 0.0]]),
        n_evaluations=7,
        n_model_rows=None,
        player_kinds=["token", "token"],
        metadata={"parameters": {"budget": 7, "seed": 1}},
        context={"prompt": "x < y & z"},
        extras={"maps": np.arange(6.0).reshape(d, 3) / 7},
    )
    path = res.save(tmp_path / "r")
    assert path.suffix == ".json"
    back = MetaAttribution.load(path)
    np.testing.assert_array_equal(back.matrix, res.matrix)  # NaN and inf survive
    _assert_same(res, back)
    assert "<script>" not in res._repr_html_() and "&lt;script&gt;" in res._repr_html_()


def test_load_rejects_other_files(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    with pytest.raises(MetagameError, match="not valid JSON"):
        metagame.load(bad)
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(MetagameError, match="not a metagame result"):
        metagame.load(bad)
    with pytest.raises(MetagameError, match="no result file"):
        metagame.load(tmp_path / "missing.json")
