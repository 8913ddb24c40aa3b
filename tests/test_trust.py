"""Issue 10: every number is a promise. Each test reproduces a silent wrong result or a late raw traceback of
metagame 0.1 and checks it is now right or refused early with an error that names the fix."""

from __future__ import annotations

import gc
import json

import numpy as np
import pytest
import torch

import metagame
from metagame.cli import main
from metagame.errors import MetagameError
from metagame.domains.data.methods import KNNShapley
from metagame.domains.data.adapter import DataModel, KNNDataModel

from test_metagame import _ShapleyWithoutTable  # the method with its table shortcut switched off


# ---------------------------------------------------------------- item 3: no cache keyed by id()
def test_one_knn_method_object_on_many_data_sets():
    """0.1 cached KNN tables by id(model): a new data set that reused a freed adapter's id got the old tables."""
    from sklearn.linear_model import LogisticRegression

    method = KNNShapley(k=2)
    rng = np.random.default_rng(0)
    seen = 0
    for trial in range(12):
        X = rng.normal(size=(6, 2))
        y = (X[:, 0] > 0).astype(int)
        y[:2] = [0, 1]
        Xt, yt = rng.normal(size=(3, 2)), np.array([0, 1, 1])
        model = DataModel(X, y, train=LogisticRegression(), X_test=Xt, y_test=yt)
        ours = method.attribute(model, np.ones((1, 6), dtype=bool)).numpy()
        truth = KNNShapley().attribute(KNNDataModel(X, y, X_test=Xt, y_test=yt, k=2), np.ones((1, 6), dtype=bool)).numpy()
        np.testing.assert_allclose(ours, truth, atol=1e-12)
        seen += 1
        del model
        gc.collect()  # frees the adapter so the next one may reuse its id
    assert seen == 12


# ---------------------------------------------------------------- item 4: the exact route honours method options
def test_exact_route_computes_what_the_method_with_its_options_computes():
    d = 6
    w = torch.randn(d, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    f = lambda z: torch.tanh(z @ w).sum(dim=1) + z[:, 0] * z[:, 1] * z[:, 2]
    x = torch.linspace(-1, 1, d, dtype=torch.float64)
    kw = {"exact_limit": 2, "n_samples": 3}
    res = metagame.meta_attributions(f, x, method="shapley", method_kwargs=kw)
    first = metagame.attribute(f, x, method="shapley", method_kwargs=kw)
    np.testing.assert_allclose(res.first_order, first, atol=1e-12)  # 0.1: exact Shapley, not the sampled one
    generic = metagame.meta_attributions(f, x, method=_ShapleyWithoutTable(**kw))
    np.testing.assert_allclose(res.matrix, generic.matrix, atol=1e-12)
    assert res.metadata["parameters"]["method_params"] == {"exact_limit": 2, "n_samples": 3, "seed": 0}


def test_default_shapley_agrees_between_entry_points_at_d17():
    d = 17
    w = torch.randn(d, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    f = lambda z: torch.tanh(z @ w) + z[:, 0] * z[:, 5] * z[:, 9]
    x = torch.ones(d, dtype=torch.float64)
    res = metagame.meta_attributions(f, x, method="shapley")
    np.testing.assert_allclose(res.first_order, metagame.attribute(f, x, method="shapley"), atol=1e-12)


@pytest.mark.slow
def test_default_shapley_agrees_between_entry_points_at_d20():
    d = 20
    w = torch.randn(d, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    f = lambda z: torch.tanh(z @ w)
    x = torch.ones(d, dtype=torch.float64)
    res = metagame.meta_attributions(f, x, method="shapley")
    np.testing.assert_allclose(res.first_order, metagame.attribute(f, x, method="shapley"), atol=1e-12)
    np.testing.assert_allclose(res.row_sums(), res.first_order, atol=1e-9)


# ---------------------------------------------------------------- inputs that used to fail late or blame the model
def test_float32_module_with_float64_inputs_is_cast():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1), torch.nn.Flatten(0))
    x64 = torch.tensor([2.0, 3.0, -1.0], dtype=torch.float64)
    res = metagame.meta_attributions(net, x64, method="gradient_x_input")
    ref = metagame.meta_attributions(net, x64.float(), method="gradient_x_input")
    np.testing.assert_array_equal(res.matrix, ref.matrix)
    wrapped = lambda z: net(z)  # not a module: the dtype cannot be known, so the error says what to do
    with pytest.raises(MetagameError, match=r"dtype torch.float64.*x.float\(\)"):
        metagame.meta_attributions(wrapped, x64, method="gradient_x_input")


def test_inputs_with_a_batch_dimension_get_a_clear_error():
    f = lambda z: z[:, 0] + z[:, 1]
    with pytest.raises(MetagameError, match=r"inputs\[0\] of shape \(2,\)"):
        metagame.meta_attributions(f, torch.ones(1, 2), method="shapley")


def test_nonfinite_empty_inputs_and_bad_seed():
    f = lambda z: z.sum(dim=1)
    with pytest.raises(MetagameError, match=r"inputs contain a non-finite value \(nan\)"):
        metagame.meta_attributions(f, torch.tensor([1.0, float("nan")]))
    with pytest.raises(MetagameError, match=r"baselines contain a non-finite value \(inf\)"):
        metagame.meta_attributions(f, torch.ones(2), torch.tensor([0.0, float("inf")]))
    with pytest.raises(MetagameError, match="inputs are empty"):
        metagame.meta_attributions(f, torch.ones(0))
    for seed in (1.5, "7", True):
        with pytest.raises(MetagameError, match="seed must be an integer"):
            metagame.meta_attributions(f, torch.ones(3), budget=10, seed=seed)


def test_method_options_listed_from_the_real_signature():
    with pytest.raises(MetagameError, match=r"does not take \['n_steps'\].*its options are: none"):
        metagame.meta_attributions(lambda z: z.sum(1), torch.ones(3), method="occlusion", method_kwargs={"n_steps": 3})


def test_unknown_run_option_lists_the_valid_ones():
    with pytest.raises(MetagameError, match=r"unknown option\(s\) \['budgett'\].*run options: variant, value, budget, seed"):
        metagame.meta_attributions(lambda z: z.sum(1), torch.ones(3), budgett=10)


def test_matrices_are_float64_whatever_the_model_dtype():
    net = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0)).half().float()
    res = metagame.meta_attributions(net, torch.ones(3), method="gradient_x_input")
    assert res.matrix.dtype == np.float64 and res.first_order.dtype == np.float64


# ---------------------------------------------------------------- load: clear errors naming the file
def test_load_rejects_broken_files(tmp_path):
    res = metagame.meta_attributions(lambda z: z[:, 0] * z[:, 1], torch.ones(2), method="shapley")
    good = json.loads(res.save(tmp_path / "good.json").read_text())
    cases = {
        "list.json": ([1, 2, 3], r"list\.json.*JSON list"),
        "shape.json": ({**good, "matrix": [[1.0, 2.0, 3.0]]}, r"shape\.json.*'matrix' has shape \(1, 3\)"),
        "keys.json": ({k: v for k, v in good.items() if k != "first_order"}, r"keys\.json.*missing.*first_order"),
        "car.json": ({**good, "extras": {"maps": {"sidecar": "car.npz", "key": "maps"}}}, r"car\.json.*side-car.*missing"),
        "abs.json": ({**good, "extras": {"maps": {"sidecar": "/etc/passwd", "key": "maps"}}}, r"inside the result's folder"),
        "up.json": ({**good, "extras": {"maps": {"sidecar": "../x.npz", "key": "maps"}}}, r"inside the result's folder"),
    }
    for name, (data, pattern) in cases.items():
        (tmp_path / name).write_text(json.dumps(data))
        with pytest.raises(MetagameError, match=pattern):
            metagame.load(tmp_path / name)


# ---------------------------------------------------------------- the command line: fail before work, CLI spellings
def test_bad_out_fails_before_any_model_is_loaded(tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    base = ["lm", "--model", str(tmp_path / "no-such-model"), "--prompt", "hi there"]
    for out, expected in ((a_file, "is an existing file"), (a_file / "sub", "lies under the file")):
        assert main([*base, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert expected in err and "no-such-model" not in err  # refused before the model was looked up


def test_cli_errors_use_cli_spellings(tmp_path, capsys):
    code = main(["similarity", "--model", "m", "--text-a", "a", "--text-b", "b", "--budget", "30",
                 "--checkpoint", str(tmp_path / "c.npz"), "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert "--seed N" in err and "seed=<int>" not in err


def test_cuda_device_without_cuda_is_said_plainly(monkeypatch):
    from metagame.domains.lm.adapter import check_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(MetagameError, match=r"sees no CUDA GPU.*device='cpu'"):
        check_device("cuda")
    check_device("cpu")


def test_write_failure_saves_the_result_elsewhere(tmp_path, monkeypatch):
    from metagame.commands import common

    res = metagame.meta_attributions(lambda z: z.sum(1), torch.ones(2), method="shapley")

    def broken(result, out):
        raise OSError("disk full")

    monkeypatch.setattr("metagame.viz.write_outputs", broken)
    with pytest.raises(MetagameError, match=r"disk full.*saved to (\S+)") as info:
        common.write_all(res, tmp_path / "out")
    path = str(info.value).rsplit("saved to ", 1)[1]
    np.testing.assert_array_equal(metagame.load(path).matrix, res.matrix)
