"""The many-players benchmark's reference machinery (tests/many_player_games.py): at sizes the exact engine covers,
the sampled reference a builder makes lies within its own stated error bar of the exact meta-attributions."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from metagame.methods.registry import get_method
from metagame.run import RunOptions, exact_meta_attributions

from many_player_games import METHOD, build_clip, build_lm, build_mlp

pytestmark = pytest.mark.slow  # builds tiny Hugging Face models (the transformers import alone is seconds)


@pytest.mark.parametrize("build,d,ref_calls", [(build_mlp, 10, 600), (build_lm, 8, 200), (build_clip, 9, 300)])
def test_sampled_reference_within_its_error_bar(build, d, ref_calls):
    """Forced to sample (exact_max=0, fewer calls than the 2^d coalitions), the reference agrees with the exact engine:
    ~95% of entries inside ±1.96·stderr, none beyond 5σ, and ||ref − exact||² ≈ Σ stderr² (its stated noise)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        game = build(d, 3, ref_calls, exact_max=0)
        exact = exact_meta_attributions(game.model, get_method(METHOD), RunOptions(progress=False)).matrix
    assert game.ref_stderr is not None and "montecarlo" in game.description
    off = ~np.eye(d, dtype=bool)
    err, se = np.abs(game.reference - exact)[off], game.ref_stderr[off]
    assert np.all(np.isfinite(se)) and np.all(se > 0)
    np.testing.assert_allclose(np.diag(game.reference), np.diag(exact), rtol=1e-5, atol=1e-7)  # M[i, i] is paid
    assert np.mean(err <= 1.96 * se) >= 0.85, np.mean(err <= 1.96 * se)
    assert np.max(err / se) <= 5.0, np.max(err / se)
    ratio = np.sum(err**2) / np.sum(se**2)
    assert 0.3 <= ratio <= 2.0, ratio
    # the stated noise is small next to the entries: the reference is informative
    assert np.sqrt(np.sum(se**2)) < 0.5 * np.linalg.norm(exact[off])


def test_exact_reference_at_small_d():
    """Below exact_max the builders return the exact engine's matrix with no stderr."""
    game = build_lm(6, 0, 100)
    assert game.ref_stderr is None and "exact (63 calls)" in game.description
    np.testing.assert_allclose(game.reference.sum(axis=1), game.model.attribute(
        get_method(METHOD), np.ones((1, 6), bool)).numpy()[0, :6], rtol=1e-5, atol=1e-6)
