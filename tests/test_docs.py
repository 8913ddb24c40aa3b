"""The code in docs/adapters.md runs as written and its claims hold."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

DOC = Path(__file__).resolve().parents[1] / "docs" / "adapters.md"


def test_custom_adapter_example_runs_and_claims_hold():
    block = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert block, "docs/adapters.md has no python block"
    scope: dict = {}
    exec(compile(block.group(1), str(DOC), "exec"), scope)  # noqa: S102 - our own docs
    res = scope["res"]
    assert res.exact and res.player_kinds == ["sentence"] * 4
    np.testing.assert_allclose(res.row_sums(), res.first_order, atol=1e-12)
    # sentence 0 ("Prices rose") interacts with each negative sentence j: v has a term m({0, j}) = own effect of j,
    # split evenly, so M[j, 0] = M[0, j] = m({j}) / 2 = M[j, j] / 2
    for j in (1, 2, 3):
        assert abs(res.matrix[j, 0] - res.matrix[j, j] / 2) < 1e-12
    np.testing.assert_allclose(res.matrix, res.matrix.T, atol=1e-12)  # Meta-SV is symmetric
