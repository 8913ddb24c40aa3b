"""Issue 23 (Trust III): the user's model left as given, eval mode, Captum fingerprints, NaN gradients, duplicate
labels, and issue 24 item 5: what was explained (f in words, the value the scores sum against).

Every check compares with a computation written from the definition (affine networks' attributions, IG's
completeness against f at the path's start, the tokenizer's own token strings), not with the code under test.
"""

from __future__ import annotations

import copy
import os

import captum.attr as ca
import numpy as np
import pytest
import torch

import metagame
from metagame.errors import MetagameError, ModelOutputError
from metagame.domains.tensors import TensorModel
from metagame.models.state import kept_as_given, module_state


def affine_net() -> torch.nn.Module:
    """Linear → BatchNorm → Dropout → Linear: random BatchNorm statistics, so train and eval mode differ."""
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Dropout(0.5), torch.nn.Linear(4, 1),
                              torch.nn.Flatten(0)).double()
    with torch.no_grad():
        net[1].running_mean.uniform_(-1, 1)
        net[1].running_var.uniform_(0.5, 2)
        net[1].weight.uniform_(0.5, 1.5)
    return net


def user_state(net: torch.nn.Module) -> torch.nn.Module:
    """A user's model as found in the wild: train mode, a frozen layer, a hook, a gradient left over."""
    net.train()
    first = next(net.parameters())
    first.requires_grad_(False)
    net.register_forward_hook(lambda m, a, out: None)
    last = list(net.parameters())[-1]
    last.grad = torch.full_like(last, 0.25)
    return net


# ------------------------------------------------------------------------------------------------ item 2: eval mode
def test_train_mode_network_is_explained_in_eval_mode_and_left_as_given():
    net = user_state(affine_net())
    before = module_state(net)
    x = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    res = metagame.meta_attributions(net, x, method="integrated_gradients", method_kwargs={"n_steps": 2})
    # in eval mode the network is affine, f(x) = w·x + c with w = W2 diag(γ/√(var + ε)) W1: IG's φ_i(x_S) = w_i x_i for
    # i in S, so M[i, i] = w_i x_i and M[i, j] = 0 off the diagonal
    lin1, bn, lin2 = net[0], net[1], net[3]
    w = (lin2.weight[0] * bn.weight / torch.sqrt(bn.running_var + bn.eps)) @ lin1.weight
    np.testing.assert_allclose(res.matrix, np.diag((w * x).detach().numpy()), atol=1e-12)
    assert module_state(net) == before  # mode, running statistics, requires_grad, .grad and hooks as given
    assert net.training and all(m.training for m in net.modules())
    again = metagame.meta_attributions(net, x, method="integrated_gradients", method_kwargs={"n_steps": 2}, batch_size=1)
    np.testing.assert_array_equal(again.matrix, res.matrix)  # no dependence on the batch


def test_every_tensor_entry_point_and_a_captum_instance_leave_the_model_as_given(tmp_path):
    net = user_state(affine_net())
    before = module_state(net)
    x = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    wrapped = lambda z: net(z) * 2.0  # noqa: E731 - a function reading the module
    metagame.meta_attributions(wrapped, x, method="shapley")
    metagame.meta_attributions(net, x, method=ca.IntegratedGradients(net), budget=20, seed=0)
    metagame.attribute(net, x, method="gradient_x_input")
    metagame.shapley_taylor(net, x)
    metagame.explain(TensorModel(net, x), "occlusion", checkpoint=str(tmp_path / "c.npz"))
    assert module_state(net) == before


def test_kept_as_given_restores_casts_hooks_buffers_and_attention_settings():
    net = affine_net()
    net.config = type("Cfg", (), {"_attn_implementation_internal": "sdpa"})()
    before = module_state(net)
    with pytest.raises(RuntimeError, match="inside"):
        with kept_as_given(net):
            assert not net.training
            net.float()
            net[1].running_mean.add_(1.0)
            net.register_forward_pre_hook(lambda m, a: None)
            net.config._attn_implementation_internal = "eager"
            net[0].weight.requires_grad_(False)
            raise RuntimeError("an error inside the run")
    assert module_state(net) == before
    assert net.config._attn_implementation_internal == "sdpa" and net[0].weight.dtype == torch.float64


# ------------------------------------------------------------------------------------------------ item 1: Captum
def test_a_checkpoint_is_refused_across_captum_objects(tmp_path):
    f = lambda z: z[:, 0] * z[:, 1] + torch.sin(z[:, 2])  # noqa: E731
    x = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    path = str(tmp_path / "c.npz")
    first = metagame.meta_attributions(f, x, method=ca.IntegratedGradients(f, multiply_by_inputs=True), checkpoint=path)
    assert first.metadata["parameters"]["method_params"]["captum"]["multiply_by_inputs"] is True
    again = metagame.meta_attributions(f, x, method=ca.IntegratedGradients(f, multiply_by_inputs=True), checkpoint=path)
    np.testing.assert_array_equal(again.matrix, first.matrix)  # an equal object resumes
    g = lambda z: 2 * f(z)  # noqa: E731 - same code shape, other behaviour
    for other in (ca.IntegratedGradients(f, multiply_by_inputs=False), ca.IntegratedGradients(g),
                  ca.InputXGradient(f)):
        with pytest.raises(MetagameError, match="different parameters"):
            metagame.meta_attributions(f, x, method=other, checkpoint=path)
    nt = str(tmp_path / "nt.npz")
    kw = dict(method_kwargs={"nt_samples": 2, "stdevs": 0.1}, checkpoint=nt)
    metagame.meta_attributions(f, x, method=ca.NoiseTunnel(ca.Saliency(f)), **kw)
    with pytest.raises(MetagameError, match="method"):
        metagame.meta_attributions(f, x, method=ca.NoiseTunnel(ca.InputXGradient(f)), **kw)


# ------------------------------------------------------------------------------------------------ item 3: NaN
def test_nan_gradients_fail_naming_the_coalition():
    f = lambda z: torch.sqrt(z[:, 0] * z[:, 1] + z[:, 2] ** 2)  # noqa: E731
    x = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    # S = {x0}: the input (1, 0, 0) and the whole IG path give sqrt(0), whose derivative is 0/0
    with pytest.raises(ModelOutputError, match=r"'x0' at coalition S = \{0:'x0'\}"):
        metagame.meta_attributions(f, x, method="integrated_gradients")
    # the values themselves are finite, so a perturbation method works: Shapley of v(S) = f(x_S) by hand at S = N
    res = metagame.meta_attributions(f, x, method="shapley")
    assert np.isfinite(res.matrix).all()
    v = {s: float(f(torch.tensor([[x[i] if i in s else 0.0 for i in range(3)]], dtype=torch.float64))) for s in
         [(), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]}
    phi2 = (v[(2,)] - v[()]) / 3 + (v[(0, 2)] - v[(0,)] + v[(1, 2)] - v[(1,)]) / 6 + (v[(0, 1, 2)] - v[(0, 1)]) / 3
    assert res.first_order[2] == pytest.approx(phi2, abs=1e-12)


# ------------------------------------------------------------------------------------------------ item 7: labels
def test_duplicate_player_labels_are_refused():
    with pytest.raises(MetagameError, match=r"repeats the label\(s\) \['a'\]"):
        metagame.meta_attributions(lambda z: z.sum(1), torch.ones(3), players=["a", "a", "b"])
    X, y = np.random.default_rng(0).random((3, 2)), np.array([0, 1, 0])
    with pytest.raises(MetagameError, match="repeats"):
        metagame.explain_data(X, y, X_test=X[:1], y_test=y[:1], players=["p", "q", "p"], method="knn_shapley")
    adapter = TensorModel(lambda z: z.sum(1), torch.ones(2))
    adapter.players = ["same", "same"]
    with pytest.raises(MetagameError, match="repeats"):
        metagame.explain(adapter, "occlusion")


# ------------------------------------------------------------------------------------------------ items 8, 9, 24.5
def test_result_says_what_was_explained_and_what_the_scores_sum_to(tmp_path):
    f = lambda z: z[:, 0] * z[:, 1] + z[:, 2]  # noqa: E731
    x = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    b = torch.tensor([0.5, 0.0, 1.0], dtype=torch.float64)
    res = metagame.meta_attributions(f, x, b, method="integrated_gradients")
    text = res.describe()
    assert "baseline value b" in text and "integrated_gradients (n_steps=32" in text and "exact" in text
    # f(x) = 5, f(b) = 1: IG is complete against f(∅) = f(b) here
    assert "f(x) = 5, f(∅) = 1; first-order scores sum to 4 = f(x) − f(∅)" in text
    gxi = metagame.meta_attributions(f, x, b, method="gradient_x_input")
    # gradient×input: Σ_i (x_i − b_i) ∂_i f(x) = 0.5·2 + 2·1 + 2·1 = 5, not f(x) − f(b) = 4
    assert gxi.first_order.sum() == pytest.approx(5.0)
    assert "(f(x) − f(∅) = 4: gradient_x_input's scores are not complete against ∅)" in gxi.value_line()
    path = res.save(tmp_path / "r.json")
    back = metagame.load(path)
    assert back.describe() == text and back.f_description == res.f_description != ""


def test_terminal_and_report_state_f(tmp_path, capsys):
    from metagame.viz.report import write_report
    from metagame.viz.terminal import print_summary

    f = lambda z: z[:, 0] * z[:, 1] + z[:, 2]  # noqa: E731
    res = metagame.meta_attributions(f, torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), method="shapley",
                                     players=["<b>a</b>", "b", "c"])
    res.metadata["explained"]["f"] = "score of <script>x</script>"
    print_summary(res)
    out = capsys.readouterr().out
    assert "score of <script>x</script>" in out and "first-order scores sum to" in out
    html = write_report(res, tmp_path / "report.html").read_text()
    assert "score of &lt;script&gt;x&lt;/script&gt;" in html and "<script>x</script>" not in html


# ------------------------------------------------------------------------------------------------ real models (slow)
@pytest.fixture(scope="module")
def lm_parts():
    from test_lm import make_tokenizer
    from transformers import AutoConfig, AutoModelForCausalLM

    tok = make_tokenizer("wordpiece")
    cfg = AutoConfig.for_model("llama", hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                               num_key_value_heads=1, max_position_embeddings=64, vocab_size=len(tok),
                               bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                               attention_dropout=0.3)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(cfg), tok


@pytest.mark.slow
def test_every_entry_point_leaves_a_real_model_as_given(lm_parts, tmp_path):
    """explain_lm (words, with an alternative, with components), explain_components, explain_text_pair and
    explain_vision on tiny models in train mode with a frozen layer, a hook and a leftover gradient."""
    from test_vision import build_tiny
    from transformers import BertConfig, BertModel

    from metagame.domains.encoders.vision import load_vision_language

    lm, tok = lm_parts
    lm = user_state(lm)
    before = module_state(lm)
    ig = dict(method="integrated_gradients", method_kwargs={"n_steps": 2})
    res = metagame.explain_lm(lm, "the movie was bad", "paris is nice", tokenizer=tok, alternative="what", **ig)
    assert module_state(lm) == before
    # item 8 / 24.5: f names the exact answer and alternative tokens (the tokenizer's own strings)
    answer = [tok.decode([t]) for t in tok("paris is nice", add_special_tokens=False)["input_ids"]]
    alt = [tok.decode([t]) for t in tok("what", add_special_tokens=False)["input_ids"]]
    assert "log p('paris is nice' | prompt in the chat template) − log p('what' | prompt in the chat template)" in \
        res.f_description
    assert " ".join(map(repr, answer)) in res.f_description and " ".join(map(repr, alt)) in res.f_description
    assert f"the {len(answer)} answer tokens" in res.f_description
    metagame.explain_lm(lm, "the movie was bad", "paris", tokenizer=tok, components="layers", **ig)
    from metagame.domains.lm.adapter import CausalLM

    adapter = CausalLM(lm, "the movie was bad", "paris", tokenizer=tok)  # an adapter built by hand, then explained
    assert module_state(lm) == before
    metagame.explain(adapter, "occlusion")
    ids = torch.as_tensor([tok("the movie was bad")["input_ids"]])
    metagame.explain_components(lm, {"input_ids": ids}, output=5, components="layers")
    assert module_state(lm) == before

    bert = user_state(BertModel(BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                           intermediate_size=16)))
    before = module_state(bert)
    metagame.explain_text_pair(bert, "the movie", "a film", tokenizer=tok, **ig)
    assert module_state(bert) == before

    clip, processor, clip_tok = load_vision_language(build_tiny("clip", tmp_path))
    clip = user_state(clip)
    before = module_state(clip)
    image = np.random.default_rng(0).random((32, 32, 3))
    metagame.explain_vision(clip, image, "a red cat", image_processor=processor, tokenizer=clip_tok, grid=2, **ig)
    assert module_state(clip) == before


@pytest.mark.slow
def test_printed_reference_is_what_ig_scores_sum_against(lm_parts):
    """Item 9 on a tiny BERT text pair (attention masking, empty='zero'): f(∅) = 0 by the empty-side rule, but IG's
    scores sum to f(x) − f(r) with r = the word embeddings set to zero (full attention); f(r) computed here by hand."""
    from transformers import BertConfig, BertModel

    _, tok = lm_parts
    torch.manual_seed(3)
    bert = BertModel(BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=16)).eval()
    a, b = "the movie was bad", "a film"
    res = metagame.explain_text_pair(bert, a, b, tokenizer=tok, method="integrated_gradients",
                                     method_kwargs={"n_steps": 64})

    def pooled(text: str, zero: bool) -> torch.Tensor:
        enc = tok(text, return_tensors="pt")
        emb = bert.embeddings.word_embeddings(enc["input_ids"])
        if zero:
            special = torch.as_tensor([[t in tok.all_special_ids for t in enc["input_ids"][0].tolist()]])
            emb = torch.where(special[..., None], emb, torch.zeros_like(emb))
        with torch.no_grad():
            h = bert(inputs_embeds=emb, attention_mask=enc["attention_mask"]).last_hidden_state
        return h.mean(dim=1)[0]

    cos = torch.nn.functional.cosine_similarity
    f_x = float(cos(pooled(a, False), pooled(b, False), dim=0))
    f_r = float(cos(pooled(a, True), pooled(b, True), dim=0))
    assert res.context["value_full"] == pytest.approx(f_x, abs=1e-5)
    assert res.context["value_empty"] == 0.0
    assert res.context["value_reference"] == pytest.approx(f_r, abs=1e-5)
    assert res.first_order.sum() == pytest.approx(f_x - f_r, abs=1e-4)  # IG's completeness against r, not ∅
    assert f"f(r) = {f_r:.4g}" in res.value_line() and "not f(x) − f(∅)" in res.value_line()


@pytest.mark.slow
def test_explain_diffusion_leaves_the_pipeline_as_given():
    """The pipeline's transformer and text encoders, in train mode with a frozen layer and a hook, as given after
    explain_diffusion (a tiny Flux pipeline built from configs)."""
    pytest.importorskip("diffusers")
    from tiny_diffusion import tiny_flux_pipeline

    pipe = tiny_flux_pipeline()
    parts = [user_state(pipe.transformer), user_state(pipe.text_encoder), user_state(pipe.text_encoder_2)]
    before = [module_state(m) for m in parts]
    with pytest.raises(MetagameError, match="distinct|repeats"):
        metagame.explain_diffusion(pipe, "a cat under a tree", concepts=["cat", "cat"], steps=2, height=16, width=16,
                                   max_sequence_length=12)
    metagame.explain_diffusion(pipe, "a cat under a tree", concepts=["cat", "tree"], steps=2, height=16, width=16,
                               max_sequence_length=12)
    assert [module_state(m) for m in parts] == before
