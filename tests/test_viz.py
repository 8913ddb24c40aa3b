"""Pictures, report, terminal summary and save/load on synthetic results of every player kind."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

from metagame.errors import MetagameError
from metagame.results import result as result_mod
from metagame.results.result import MetaAttribution, load
from metagame.viz import (
    arc_diagram,
    comparison,
    default_figures,
    heatmap,
    image_overlay,
    print_summary,
    render_report,
    waterfall,
    write_outputs,
)
from metagame.results.codec import json_for_script

KINDS = ("feature", "token", "word_ab", "patch", "patch_plain", "data", "head")


def make_result(kind: str, seed: int = 0) -> MetaAttribution:
    """A synthetic result whose rows sum to φ, with the players and context of one application."""
    rng = np.random.default_rng(seed)
    context: dict = {}
    extras: dict = {}
    if kind == "feature":
        players = ["x1", "x2", "x3", "x4"]
        kinds = ["feature"] * 4
    elif kind == "token":
        words = ["The", "cat", "sat", "on", "the", "mat", "."]
        players, kinds = words, ["word"] * len(words)
        context = {"prompt": "The cat sat on the mat.", "answer": " It", "model": "tiny-llama"}
    elif kind == "word_ab":
        players = ["a", "dog", "runs", "the", "puppy", "sprints"]
        kinds = ["word_a"] * 3 + ["word_b"] * 3
        context = {"text_a": "a dog runs", "text_b": "the puppy sprints"}
    elif kind in ("patch", "patch_plain"):
        rows, cols = 3, 4
        words = ["red", "car"]
        players = words + [f"patch ({r}, {c})" for r in range(rows) for c in range(cols)]
        kinds = ["word"] * 2 + ["patch"] * (rows * cols)
        context = {"text": "red car"}
        if kind == "patch":
            context["grid"] = [rows, cols]
            yy, xx = np.mgrid[0:24, 0:32]
            extras["image"] = np.stack([xx / 31, yy / 23, 0.5 * np.ones_like(xx)], axis=-1)
            extras["patch_maps"] = rng.normal(size=(2, rows, cols))
    elif kind == "data":
        players = [f"train[{k}]" for k in range(6)]
        kinds = ["data"] * 6
    elif kind == "head":
        players = [f"L{l}.H{h}" for l in range(2) for h in range(3)]
        kinds = ["head"] * 6
    else:  # pragma: no cover
        raise ValueError(kind)
    d = len(players)
    m = rng.normal(size=(d, d))
    stderr = None
    exact = kind != "head"
    if not exact:
        stderr = np.abs(rng.normal(scale=0.05, size=(d, d)))
        stderr[0, 1] = math.nan
    return MetaAttribution(
        matrix=m,
        first_order=m.sum(axis=1),
        players=players,
        method="integrated_gradients" if kind != "data" else "leave_one_out",
        exact=exact,
        stderr=stderr,
        n_evaluations=2**d - 1 if exact else 256,
        n_model_rows=123,
        player_kinds=kinds,
        metadata={"parameters": {"method": "integrated_gradients", "method_params": {"n_steps": 16},
                                 "variant": "metagame", "value": "shapley", "budget": None if exact else 256,
                                 "seed": None if exact else 7},
                  "model": {"name": "synthetic", "d": d}, "created": "2024-01-01T00:00:00+00:00"},
        context=context,
        extras=extras,
    )


def assert_same(a: MetaAttribution, b: MetaAttribution) -> None:
    np.testing.assert_array_equal(a.matrix, b.matrix)
    np.testing.assert_array_equal(a.first_order, b.first_order)
    if a.stderr is None:
        assert b.stderr is None
    else:
        np.testing.assert_array_equal(a.stderr, b.stderr)
    for name in ("players", "player_kinds", "method", "variant", "value", "exact", "n_evaluations",
                 "n_model_rows", "metadata", "context"):
        assert getattr(a, name) == getattr(b, name), name
        assert type(getattr(a, name)) is type(getattr(b, name)), name
    assert a.extras.keys() == b.extras.keys()
    for k in a.extras:
        assert a.extras[k].dtype == b.extras[k].dtype
        np.testing.assert_array_equal(a.extras[k], b.extras[k])


# ------------------------------------------------------------------------------------------- figures
@pytest.mark.parametrize("kind", KINDS)
def test_default_figures_render_for_every_kind(kind, tmp_path):
    res = make_result(kind)
    figs = default_figures(res)
    assert "heatmap" in figs and "waterfall" in figs
    if kind.startswith("patch"):
        assert "image" in figs
    for name, fig in figs.items():
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert fig.axes, name


def test_each_plot_saves_png_and_svg(tmp_path):
    res = make_result("token")
    heatmap(res, save=tmp_path / "h.png")
    arc_diagram(res, n=5, save=tmp_path / "a.svg")
    waterfall(res, target="cat", save=tmp_path / "w.png")
    comparison(res, stii=res.matrix + res.matrix.T, save=tmp_path / "c.png")
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"
    assert b"<svg" in (tmp_path / "a.svg").read_bytes()[:2000]
    assert (tmp_path / "w.png").stat().st_size > 1000 and (tmp_path / "c.png").stat().st_size > 1000
    with pytest.raises(MetagameError, match="png"):
        heatmap(res, save=tmp_path / "h.jpgx")


def test_heatmap_is_directed_and_centred():
    """Row = target, column = source; the pairs are coloured on their own scale and the diagonal (own effects) is a
    separate strip on its own scale (issue 12: the diagonal used to set the scale and wash the pairs out)."""
    res = make_result("feature")
    fig = heatmap(res)
    im = fig.axes[0].images[0]
    shown = np.ma.getdata(im.get_array())
    mask = np.ma.getmaskarray(im.get_array())
    off = ~np.eye(res.n_players, dtype=bool)
    np.testing.assert_array_equal(shown[off], res.matrix[off])  # the matrix itself, not its transpose
    assert mask[~off].all() and not mask[off].any()
    vmax = np.abs(res.matrix[off]).max()
    assert im.norm.vmin == pytest.approx(-vmax) and im.norm.vmax == pytest.approx(vmax)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == res.players
    strip = fig.axes[1].images[0]
    np.testing.assert_array_equal(np.ma.getdata(strip.get_array())[:, 0], np.diag(res.matrix))
    assert strip.norm.vmax == pytest.approx(np.abs(np.diag(res.matrix)).max())


def _overlaps(texts) -> list[tuple[str, str]]:
    boxes = [(t.get_text(), t.get_window_extent()) for t in texts if t.get_text() and t.get_visible()]
    bad = []
    for a in range(len(boxes)):
        for b in range(a + 1, len(boxes)):
            if boxes[a][1].overlaps(boxes[b][1]):
                bad.append((boxes[a][0], boxes[b][0]))
    return bad


@pytest.mark.parametrize("d", [5, 20, 48])
def test_labels_are_readable_and_never_overlap(d):
    """Every row and column is labelled (full names here) and no two label boxes overlap (issue 12)."""
    rng = np.random.default_rng(d)
    players = [f"feature_{k:02d}" for k in range(d)]
    m = rng.normal(size=(d, d))
    res = MetaAttribution(matrix=m, first_order=m.sum(axis=1), players=players, method="integrated_gradients",
                          player_kinds=["feature"] * d)
    for fig in (heatmap(res), comparison(res), waterfall(res)):
        fig.canvas.draw()
        for ax in fig.axes:
            for texts in (ax.get_xticklabels(), ax.get_yticklabels(), ax.texts):
                assert not _overlaps(texts), (d, ax.get_title(), _overlaps(texts)[:3])
            # value labels of the waterfall never cover its category labels
            assert not _overlaps(list(ax.get_yticklabels()) + [t for a in fig.axes for t in a.texts])
    ax = heatmap(res).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == players  # all of them, unabridged


def test_long_labels_become_indices_with_a_legend():
    d = 12
    players = [f"a rather long label number {k} that does not fit" for k in range(d)]
    m = np.random.default_rng(0).normal(size=(d, d))
    res = MetaAttribution(matrix=m, first_order=m.sum(axis=1), players=players, method="saliency")
    fig = heatmap(res)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == [str(k) for k in range(d)]
    legend = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "0: a rather long label num…" in legend or any(s.startswith("0: a rather long") for s in legend)


def test_waterfall_bars_sum_to_the_row():
    res = make_result("data")
    fig = waterfall(res, target=2, n=3)
    ax = fig.axes[0]
    widths = [p.get_width() for p in ax.patches]
    # own effect + 3 shown pushes + pooled rest, then the total bar
    assert len(widths) == 6
    assert sum(widths[:-1]) == pytest.approx(res.matrix[2].sum())
    assert widths[-1] == pytest.approx(res.first_order[2])
    assert widths[0] == pytest.approx(res.matrix[2, 2])
    with pytest.raises(MetagameError, match="no player labelled"):
        waterfall(res, target="nobody")


def test_image_overlay_panels():
    res = make_result("patch")
    fig = image_overlay(res)
    titled = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titled == ["input image", "'red' → patches", "'car' → patches"]
    plain = make_result("patch_plain")
    fig = image_overlay(plain)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[0] == "first-order φ (patches)" and len(titles) == 3
    with pytest.raises(MetagameError, match="patch players"):
        image_overlay(make_result("feature"))


def test_arc_diagram_draws_top_edges():
    res = make_result("token")
    fig = arc_diagram(res, n=4)
    arrows = [p for p in fig.axes[0].patches if type(p).__name__ == "FancyArrowPatch"]
    assert len(arrows) == 4
    widths = sorted(a.get_linewidth() for a in arrows)
    assert widths[-1] > widths[0]


# ------------------------------------------------------------------------------------------- save / load
@pytest.mark.parametrize("kind", KINDS)
def test_save_load_roundtrip_every_field(kind, tmp_path):
    res = make_result(kind)
    res.matrix[0, 0] = math.nan
    res.context["value_full"] = math.inf
    res.context["value_empty"] = math.nan
    res.context["tags"] = ("a", 1)
    res.metadata["weights"] = np.arange(3.0)
    back = load(res.save(tmp_path / "r.json"))
    assert np.isnan(back.matrix[0, 0])
    assert back.context["tags"] == ("a", 1)
    assert math.isnan(back.context["value_empty"]) and back.context["value_full"] == math.inf
    np.testing.assert_array_equal(back.metadata.pop("weights"), np.arange(3.0))
    res.metadata.pop("weights")
    res.context["value_empty"] = back.context["value_empty"] = "nan-checked"
    assert_same(res, back)
    assert back.saved_info["library"] == "metagame" and back.saved_info["saved"]
    raw = json.loads((tmp_path / "r.json").read_text())
    assert raw["metadata"]["version"] and raw["metadata"]["saved"]


def test_big_extra_goes_to_sidecar(tmp_path, monkeypatch):
    monkeypatch.setattr(result_mod, "SIDECAR_THRESHOLD", 50)
    res = make_result("patch")
    res.extras["big"] = np.random.default_rng(1).normal(size=(10, 10))
    res.extras["big"][3, 3] = math.nan
    path = res.save(tmp_path / "out" / "result.json")
    assert (tmp_path / "out" / "result.npz").exists()
    raw = json.loads(path.read_text())
    assert raw["extras"]["big"].get("sidecar") == "result.npz"
    back = MetaAttribution.load(path)
    assert_same(res, back)
    # a later save without big extras removes the stale side-car
    monkeypatch.setattr(result_mod, "SIDECAR_THRESHOLD", 10**9)
    res.save(path)
    assert not (tmp_path / "out" / "result.npz").exists()
    assert_same(res, MetaAttribution.load(path))


def test_load_errors_name_the_fix(tmp_path):
    with pytest.raises(MetagameError, match="no result file"):
        load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(MetagameError, match="MetaAttribution.save"):
        load(tmp_path / "bad.json")


# ------------------------------------------------------------------------------------------- report / html
EVIL = '<script>window.__pwned = 1</script>'


def test_report_escapes_user_text():
    res = make_result("token")
    res.context["prompt"] = EVIL + " & more"
    res.players[1] = '<img src=x onerror="window.__pwned=2">'
    res.context["model"] = "</script><script>alert(1)</script>"
    page = render_report(res, figures={})
    assert "<script>window.__pwned" not in page
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt; &amp; more" in page
    assert "<img src=x" not in page
    assert "alert(1)</script>" not in page
    # only our two script tags exist, the data block cannot be closed early
    assert page.count("<script") == 2 and page.count("</script>") == 2
    assert "'nonce-" in page and "default-src 'none'" in page
    assert "http://" not in page and "https://" not in page


def test_json_for_script_cannot_close_the_tag():
    s = json_for_script({"x": "</script><!-- \u2028 & >"})
    assert "<" not in s and ">" not in s and "&" not in s and "\u2028" not in s
    assert json.loads(s) == {"x": "</script><!-- \u2028 & >"}


def test_repr_html_is_escaped_and_handles_nan():
    res = make_result("head")
    res.players[0] = "<b>x</b>"
    res.matrix[1, 1] = math.nan
    page = res._repr_html_()
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "nan)" not in page  # no broken css colour from a NaN
    big = make_result("patch")
    assert "strongest" in big._repr_html_()


def test_write_outputs_writes_everything(tmp_path):
    res = make_result("patch")
    paths = write_outputs(res, tmp_path / "run")
    assert {"result", "report", "heatmap", "image", "waterfall"} <= set(paths)
    for name, p in paths.items():
        assert p.exists() and p.stat().st_size > 0, name
    page = paths["report"].read_text()
    assert page.count("data:image/png;base64,") >= len(paths) - 2 + 1  # figures + the input image
    assert_same(res, load(paths["result"]))


def test_print_summary(capsys):
    from rich.console import Console

    res = make_result("head")
    res.players[2] = "[bold]L0.H2[/bold]"
    console = Console(file=io.StringIO(), width=120, color_system=None)
    print_summary(res, n=5, console=console)
    out = console.file.getvalue()
    assert "integrated_gradients" in out and "estimated" in out
    assert out.count("→") >= 5 and "±" in out
    assert "[bold]L0.H2[/bold]" in out  # labels are shown literally, not as markup
    i, j, v = res.top_pairs(1)[0]
    assert f"{v:+.4g}" in out
