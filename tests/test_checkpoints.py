"""Checkpoints hold finished work and are keyed by everything that determines the numbers (issue 10, item 1).

Each test reproduces a stale replay of the old ``describe()``-keyed checkpoints (a different input, baseline,
model or function silently reused) and checks it is now refused with an error naming the file and what differs.
The fault-injection tests kill a real subprocess with SIGKILL mid-run and resume it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

import metagame
from metagame.errors import MetagameError


def _net(d: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(d, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1), torch.nn.Flatten(0)).double()


@pytest.mark.parametrize("budget", [None, 60])
def test_changed_input_baseline_or_model_is_refused(tmp_path, budget):
    d = 6
    net = _net(d, 0)
    x = torch.linspace(-1, 1, d, dtype=torch.float64)
    ck = str(tmp_path / "run.npz")
    kw = dict(method="gradient_x_input", checkpoint=ck, budget=budget, seed=0)
    first = metagame.meta_attributions(net, x, **kw)
    assert os.path.exists(ck)
    again = metagame.meta_attributions(net, x, **kw)  # the same run resumes from the file
    np.testing.assert_array_equal(again.matrix, first.matrix)
    with pytest.raises(MetagameError, match=r"run\.npz.*inputs"):
        metagame.meta_attributions(net, x + 0.5, **kw)
    with pytest.raises(MetagameError, match=r"run\.npz.*baselines"):
        metagame.meta_attributions(net, x, torch.full((d,), 0.3, dtype=torch.float64), **kw)
    with pytest.raises(MetagameError, match=r"run\.npz.*model"):
        metagame.meta_attributions(_net(d, 1), x, **kw)  # same architecture, other weights
    # a plain function: the probe outputs catch a different function with the same closure
    w = torch.randn(d, dtype=torch.float64)
    f = lambda z: torch.tanh(z @ w)
    ck2 = str(tmp_path / "fn.npz")
    metagame.meta_attributions(f, x, method="gradient_x_input", checkpoint=ck2, budget=budget, seed=0)
    g = lambda z: torch.tanh(z @ w) + 0.01 * z[:, 0]
    with pytest.raises(MetagameError, match=r"fn\.npz.*model outputs"):
        metagame.meta_attributions(g, x, method="gradient_x_input", checkpoint=ck2, budget=budget, seed=0)
    # other method parameters are refused too; overwrite starts afresh on request
    with pytest.raises(MetagameError, match="method"):
        metagame.meta_attributions(net, x, method="integrated_gradients", checkpoint=ck, budget=budget, seed=0)
    fresh = metagame.meta_attributions(net, x + 0.5, **kw, checkpoint_mode="overwrite")
    np.testing.assert_allclose(fresh.matrix, metagame.meta_attributions(net, x + 0.5, method="gradient_x_input",
                                                                        budget=budget, seed=0).matrix, atol=1e-12)


def test_missing_checkpoint_folder_fails_before_any_work(tmp_path):
    calls = {"n": 0}

    def f(z):
        calls["n"] += 1
        return z.sum(dim=1)

    with pytest.raises(MetagameError, match="does not exist"):
        metagame.meta_attributions(f, torch.ones(3), checkpoint=str(tmp_path / "nope" / "run.npz"))
    assert calls["n"] == 0
    with pytest.raises(MetagameError, match="seed"):
        metagame.meta_attributions(f, torch.ones(3), budget=10, checkpoint=str(tmp_path / "run.npz"))
    assert calls["n"] == 0


_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    import torch, metagame
    d, budget, ck, log = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    budget = None if budget == "none" else int(budget)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(d, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1), torch.nn.Flatten(0)).double()
    x = torch.linspace(-1, 1, d, dtype=torch.float64)
    rows = [0]
    def f(z):
        rows[0] += z.shape[0]
        with open(log, "a") as fh:
            fh.write(f"{rows[0]}\\n")
        time.sleep(float(os.environ.get("MG_SLEEP", "0")))
        return net(z)
    res = metagame.meta_attributions(f, x, method="gradient_x_input", budget=budget, seed=1, batch_size=16,
                                     checkpoint=ck, checkpoint_every=0, estimator="montecarlo")
    res.save(ck + ".result.json")
    print(json.dumps({"rows": rows[0]}))
    """
)


def _run(script, args, env=None):
    return subprocess.Popen([sys.executable, str(script), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("budget", ["none", 1500])
def test_sigkill_mid_run_resumes_bitwise_identical(tmp_path, budget):
    script = tmp_path / "run.py"
    script.write_text(_SCRIPT)
    d = 11
    ck, log = tmp_path / "ck.npz", tmp_path / "rows.log"
    # the uninterrupted reference
    ref = _run(script, [d, budget, tmp_path / "ref.npz", tmp_path / "ref.log"])
    out, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err
    full_rows = int(__import__("json").loads(out.strip().splitlines()[-1])["rows"])
    reference = metagame.load(str(tmp_path / "ref.npz") + ".result.json")
    # a run killed with SIGKILL once a checkpoint holds part of the work
    proc = _run(script, [d, budget, ck, log], env={"MG_SLEEP": "0.05"})
    deadline = time.time() + 240
    while time.time() < deadline:
        done = log.exists() and len(log.read_text().split()) > 3 and ck.exists()
        if done:
            break
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert ck.exists()
    # resume: the same call finishes with fewer model rows and a bitwise-identical result
    log.unlink()
    resumed = _run(script, [d, budget, ck, log])
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    rows = int(__import__("json").loads(out.strip().splitlines()[-1])["rows"])
    assert rows < full_rows
    result = metagame.load(str(ck) + ".result.json")
    np.testing.assert_array_equal(result.matrix, reference.matrix)
    if reference.stderr is not None:
        np.testing.assert_array_equal(result.stderr, reference.stderr)
    # a changed input is refused
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(d, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1), torch.nn.Flatten(0)).double()
    with pytest.raises(MetagameError, match="inputs"):
        metagame.meta_attributions(net, torch.linspace(-1, 2, d, dtype=torch.float64), method="gradient_x_input",
                                   budget=None if budget == "none" else budget, seed=1, checkpoint=str(ck),
                                   estimator="montecarlo")


def test_content_digest_follows_values_not_identity():
    from metagame.models.fingerprint import content_digest

    a = torch.arange(6.0).reshape(2, 3)
    assert content_digest(a) == content_digest(a.clone()) != content_digest(a + 1e-7)
    assert content_digest(a) != content_digest(a.double())  # dtype is part of the content
    net = _net(3, 0)
    twin = _net(3, 0)
    assert content_digest(net) == content_digest(twin)  # same weights, another object
    with torch.no_grad():
        twin[0].weight[0, 0] += 1e-6
    assert content_digest(net) != content_digest(twin)
    f = lambda z: net(z)  # a closure is fingerprinted by the weights it reads
    g = lambda z: twin(z)
    assert content_digest(f) != content_digest(g)
    h = lambda z: net(z) * 1.0  # other code, same weights: the run's probe values tell these apart
    assert content_digest(f) == content_digest(h)
    assert content_digest({"x": np.ones(3), "y": [1, "a"]}) == content_digest({"y": [1, "a"], "x": np.ones(3)})
