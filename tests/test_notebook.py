"""Notebook support: the HTML view, dir(metagame), logging (silent by default), progress bars in Jupyter, and no
third-party deprecation notices from our own calls."""

import logging
import sys
import types
import warnings

import numpy as np
import pytest
import torch

import metagame
from metagame.run.progress import in_notebook, progress_bar


def _result(d, **context):
    rng = np.random.default_rng(0)
    m = rng.normal(size=(d, d))
    return metagame.MetaAttribution(matrix=m, first_order=m.sum(1), players=[f"p<{k}>" for k in range(d)],
                                    method="shapley", context=context)


def test_repr_html_says_what_f_is_and_works_at_any_d():
    res = _result(4, prompt="Is <b>this</b> good?", answer="yes", alternative="no", value_full=1.25,
                  value_empty=-0.5, model="tiny<llama>")
    page = res._repr_html_()
    for text in ("Is &lt;b&gt;this&lt;/b&gt; good?", "answer", "alternative", "f(x)", "1.25", "f(∅)", "-0.5",
                 "tiny&lt;llama&gt;", "p&lt;0&gt;"):
        assert text in page, text
    assert "<b>this</b>" not in page and "row = target i" in page
    big = _result(40)
    page = big._repr_html_()
    assert "row = target i" not in page and "40 players" in page
    i, j, v = big.top_pairs(1)[0]
    assert f"{v:.3g}" in page and f"p&lt;{j}&gt;</td><td>→</td><td>p&lt;{i}&gt;" in page
    described = _result(2)
    described.metadata["explained"] = {"f": "log p(yes) − log p(<no>)"}
    assert metagame.results.html.describe_f(described)[0] == ("f", "log p(yes) − log p(<no>)")
    assert "log p(yes) − log p(&lt;no&gt;)" in described._repr_html_()


def test_lazy_entry_points_are_listed():
    names = dir(metagame)
    for name in ("explain_lm", "explain_text_pair", "explain_vision", "explain_data", "meta_attributions", "evaluate"):
        assert name in names


def test_logging_is_silent_by_default_and_says_what_a_run_decided(caplog, capsys):
    f = lambda x: x[:, 0] * x[:, 1] + x[:, 2]
    metagame.meta_attributions(f, torch.ones(3), method="shapley", progress=False)
    assert capsys.readouterr().err == ""
    with caplog.at_level(logging.INFO, logger="metagame"):
        metagame.meta_attributions(f, torch.ones(3), method="gradient_x_input", budget=40, progress=False)
    text = caplog.text
    assert "budget 40" in text and "estimator 'stratified'" in text and "served from the cache" in text


def test_progress_shows_in_a_notebook(monkeypatch):
    assert not in_notebook()
    shell = types.SimpleNamespace(config={"IPKernelApp": {}})
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    assert in_notebook()
    assert not progress_bar(10, "x", None).disable
    assert progress_bar(10, "x", False).disable


@pytest.mark.slow
def test_lm_run_prints_no_deprecation_notice(tmp_path):
    pytest.importorskip("transformers")
    from test_lm import make_model

    path = make_model("llama", tmp_path / "llama")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        res = metagame.explain_lm(path, "the movie was not bad", "good", method="gradient_x_input", progress=False)
    assert res.metadata["model"]["prefix_cache"]  # the cached-prefix route (where the notice came from) ran
