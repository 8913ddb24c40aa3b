"""Picture geometry: the comparison's first-order panel is scaled to the bars, and arcs stay inside the frame."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import metagame  # noqa: E402
from metagame.viz import arc_diagram, comparison  # noqa: E402


def _two_texts(d_a=6, d_b=5, seed=0):
    rng = np.random.default_rng(seed)
    d = d_a + d_b
    m = rng.normal(scale=0.05, size=(d, d))
    m[3, 10] = m[10, 3] = 0.3  # one long-range pair across the texts
    kinds = ["word_a"] * d_a + ["word_b"] * d_b
    return metagame.MetaAttribution(matrix=m, first_order=m.sum(1), players=[f"w{k}" for k in range(d)],
                                    method="shapley", player_kinds=kinds)


def test_comparison_first_order_axis_fits_the_bars():
    res = _two_texts()
    fig = comparison(res)
    ax0 = next(a for a in fig.axes if a.get_title() == "first-order φ_i")
    lo, hi = ax0.get_xlim()
    values = np.concatenate([res.first_order, res.row_sums(), [0.0]])
    span = values.max() - values.min()
    assert lo <= values.min() and hi >= values.max()
    assert hi - lo <= 1.5 * span  # no separator line stretching the value axis


@pytest.mark.parametrize("d_a,d_b", [(6, 5), (2, 12), (10, 10)])
def test_arcs_stay_inside_the_frame(d_a, d_b):
    res = _two_texts(d_a, d_b, seed=d_a)
    fig = arc_diagram(res, n=12)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    ax = fig.axes[0]
    frame = ax.get_window_extent(renderer)
    arrows = [p for p in ax.patches]
    assert arrows
    for p in arrows:
        box = p.get_window_extent(renderer)
        assert frame.y0 - 1 <= box.y0 and box.y1 <= frame.y1 + 1, (box, frame)
