"""README's ten-line example runs as written and prints what its comments say."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs_and_its_numbers_hold(tmp_path, monkeypatch):
    text = README.read_text()
    block = re.search(r"## Ten lines\s+```python\n(.*?)```", text, re.S)
    assert block, "README has no '## Ten lines' python block"
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(block.group(1), "README.md", "exec"), scope)  # noqa: S102 - our own README
    res = scope["res"]
    np.testing.assert_allclose(res.matrix, [[2, 6], [12, 0]], atol=1e-10)
    np.testing.assert_allclose(res.first_order, [8, 12], atol=1e-10)
    assert (tmp_path / "result.json").exists()
