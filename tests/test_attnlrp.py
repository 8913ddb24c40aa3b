"""AttnLRP: removable per-model rules, identity cases, a hand-computed reference, conservation, every family.

Tiny random models are built from configs (float64 unless stated). The hand-computed reference propagates
relevance with the LRP rule equations themselves (ε-LRP divisions, uniform and softmax rules), not with
gradients; the per-family reference re-implements the rules in the test by rewriting forwards with
``detach`` on that one model instance.
"""

from __future__ import annotations

import json
import types
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

from metagame.domains.components.entry import explain_components
from metagame.domains.lm.entry import explain_lm
from metagame.cli import main
from metagame.errors import MetagameError
from metagame.methods import GradientXInput, get_method
from metagame.domains.lm.attnlrp import AttnLRP, attnlrp_rules, detect_family
from metagame.domains.components.adapter import ComponentModel
from metagame.domains.lm.adapter import CausalLM
from metagame.domains.tensors.adapter import TensorModel
from metagame.players import all_coalitions

FAMILIES = ["llama", "qwen2", "mistral", "gemma3_text", "gpt2"]
WORDS = "the movie was not bad at all paris is nice today".split()
SPECIALS = ["<pad>", "<unk>", "<mask>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|end|>"]
TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def tiny_config(arch: str, vocab: int = 40, layers: int = 2, **over):
    """A tiny config of ``arch`` (2 heads, GQA where the family has it; Gemma-3 with a sliding-window layer)."""
    if arch == "gpt2":
        kw = dict(vocab_size=vocab, n_embd=16, n_layer=layers, n_head=2, n_positions=64, bos_token_id=0, eos_token_id=0)
    else:
        kw = dict(vocab_size=vocab, hidden_size=16, intermediate_size=24, num_hidden_layers=layers, num_attention_heads=2,
                  num_key_value_heads=1, max_position_embeddings=64, head_dim=8, bos_token_id=0, eos_token_id=0,
                  pad_token_id=0)
        if arch == "gemma3_text":
            kw.update(sliding_window=2, layer_types=(["sliding_attention", "full_attention"] * layers)[:layers],
                      query_pre_attn_scalar=8)
    kw.update(over)
    return AutoConfig.for_model(arch, **kw)


def tiny_model(arch: str, seed: int = 0, dtype=torch.float64, **over) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(arch, **over)).to(dtype).eval()
    with torch.no_grad():  # norm weights away from their init (ones / zeros) so the rules see real scales
        for name, p in model.named_parameters():
            if "norm" in name or "ln_" in name:
                p.add_(0.3 * torch.randn_like(p))
    return model


def embeds(model, ids) -> torch.Tensor:
    return model.get_input_embeddings()(torch.as_tensor(ids)).detach()


def logit_relevance(model, emb: torch.Tensor, token: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, emb ⊙ ∂ logit[last, token] / ∂emb) of one plain forward/backward pass."""
    e = emb.clone().requires_grad_(True)
    logits = model(inputs_embeds=e).logits
    logits[:, -1, token].sum().backward()
    return logits.detach(), (e * e.grad).detach()


def hooks_count(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def attention_keys() -> set[str]:
    from transformers.masking_utils import AttentionMaskInterface
    from transformers.modeling_utils import AttentionInterface

    return {k for k in list(AttentionInterface._global_mapping) + list(AttentionMaskInterface._global_mapping) if "attnlrp" in k}


# ------------------------------------------------------------------------------------------------ (a) removal
@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_rules_leave_forward_unchanged_and_are_removed_bitwise(impl):
    model = tiny_model("llama", dtype=torch.float32)
    model.set_attn_implementation(impl)
    emb = embeds(model, [[3, 7, 9, 4, 11]])
    before_internal = model.config._attn_implementation_internal
    n_hooks = hooks_count(model)
    logits0, grad0 = logit_relevance(model, emb, 5)
    with attnlrp_rules(model) as rules:
        assert rules.n_attention == 2 and rules.n_norms == 5 and rules.n_products == 2
        assert model.config._attn_implementation != impl
        logits1, lrp = logit_relevance(model, emb, 5)
        assert torch.equal(logits1, logits0)  # the rules change gradients only
        assert not torch.allclose(lrp, grad0)
    logits2, grad2 = logit_relevance(model, emb, 5)
    assert torch.equal(logits2, logits0) and torch.equal(grad2, grad0)
    assert model.config._attn_implementation_internal == before_internal
    assert hooks_count(model) == n_hooks and attention_keys() == set()


def test_exception_inside_rules_restores_model():
    model = tiny_model("gpt2", dtype=torch.float32)
    emb = embeds(model, [[1, 2, 3, 4]])
    logits0, grad0 = logit_relevance(model, emb, 2)
    n_hooks = hooks_count(model)
    with pytest.raises(RuntimeError, match="boom"):
        with attnlrp_rules(model):
            logit_relevance(model, emb, 2)
            raise RuntimeError("boom")
    logits1, grad1 = logit_relevance(model, emb, 2)
    assert torch.equal(logits1, logits0) and torch.equal(grad1, grad0)
    assert hooks_count(model) == n_hooks and attention_keys() == set()
    assert model.config._attn_implementation == "sdpa"
    with attnlrp_rules(model):  # usable again afterwards
        pass


def test_other_models_are_never_affected():
    cfg = tiny_config("llama")
    torch.manual_seed(0)
    a = AutoModelForCausalLM.from_config(cfg).double().eval()
    shared = AutoModelForCausalLM.from_config(cfg).double().eval()  # same config object as ``a``
    assert shared.config is a.config
    other = tiny_model("llama", seed=1)
    emb = embeds(a, [[2, 4, 6, 8]])
    plain = {name: logit_relevance(m, emb, 3) for name, m in (("shared", shared), ("other", other))}
    with attnlrp_rules(a):
        for name, m in (("shared", shared), ("other", other)):
            logits, grad = logit_relevance(m, emb, 3)
            assert torch.equal(logits, plain[name][0]) and torch.equal(grad, plain[name][1]), name
        _, lrp_a = logit_relevance(a, emb, 3)
        with attnlrp_rules(shared):  # a second model under its own rules while the first is active
            _, lrp_shared = logit_relevance(shared, emb, 3)
        _, again = logit_relevance(shared, emb, 3)
        assert torch.equal(again, plain["shared"][1])
    assert not torch.allclose(lrp_a, plain["shared"][1])
    assert torch.allclose(lrp_shared, logit_relevance_under_rules(shared, emb, 3))
    assert a.config._attn_implementation == "sdpa" and attention_keys() == set()


def logit_relevance_under_rules(model, emb, token):
    with attnlrp_rules(model):
        return logit_relevance(model, emb, token)[1]


def test_refusals_name_the_fix():
    bert = AutoModelForCausalLM.from_config(AutoConfig.for_model(
        "bert", vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16, is_decoder=True
    ))
    with pytest.raises(MetagameError, match="supported: Hugging Face Llama, Qwen2, Mistral, Gemma-3"):
        with attnlrp_rules(bert.eval()):
            pass
    with pytest.raises(MetagameError, match="no rule for module '1' of type Sigmoid"):
        with attnlrp_rules(torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Sigmoid())):
            pass
    model = tiny_model("llama")
    with pytest.raises(MetagameError, match="model.eval"):
        with attnlrp_rules(model.train()):
            pass
    model.eval()
    with pytest.raises(MetagameError, match="already active"):
        with attnlrp_rules(model), attnlrp_rules(model):
            pass
    with pytest.raises(MetagameError, match="final_logit_softcapping"):
        detect_family(tiny_model("gemma3_text", final_logit_softcapping=30.0))  # detect is fine ...
        with attnlrp_rules(tiny_model("gemma3_text", final_logit_softcapping=30.0)):  # ... the rules are not
            pass
    with pytest.raises(MetagameError, match="wraps a torch module"):
        AttnLRP().attribute(TensorModel(lambda x: x.sum(1), torch.ones(3)), np.ones((1, 3), bool))
    from transformers import CLIPConfig, CLIPModel

    clip = CLIPModel(CLIPConfig(text_config=dict(hidden_size=8, intermediate_size=8, num_hidden_layers=1, num_attention_heads=2),
                                vision_config=dict(hidden_size=8, intermediate_size=8, num_hidden_layers=1,
                                                   num_attention_heads=2, image_size=8, patch_size=4)))
    with pytest.raises(MetagameError, match="grad_eclip"):
        detect_family(clip)
    assert attention_keys() == set()


# ------------------------------------------------------------------------------------------------ (b) identity case
def test_relu_network_equals_gradient_x_input_and_silu_uses_identity_rule():
    torch.manual_seed(0)
    x = torch.randn(5, dtype=torch.float64)
    relu_net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 4), torch.nn.ReLU(),
                                   torch.nn.Linear(4, 1)).double().eval()
    coal = all_coalitions(5)
    ad = TensorModel(relu_net, x)
    lrp = AttnLRP().attribute(ad, coal)
    gxi = GradientXInput().attribute(ad, coal)
    assert torch.equal(lrp, gxi)  # ReLU: σ(x)/x = 1[x > 0] = σ'(x), linear layers: the plain gradient
    # SiLU: the identity rule differs from the gradient; by hand R = x ⊙ W1ᵀ[(W2ᵀ 1) ⊙ silu(h)/h], h = W1 x + b1
    silu_net = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.SiLU(), torch.nn.Linear(6, 1)).double().eval()
    ad = TensorModel(silu_net, x)
    lrp = AttnLRP().attribute(ad, coal).numpy()
    W1, b1 = silu_net[0].weight.detach().numpy(), silu_net[0].bias.detach().numpy()
    W2 = silu_net[2].weight.detach().numpy()[0]
    for r, S in enumerate(coal):
        xs = np.where(S, x.numpy(), 0.0)
        h = W1 @ xs + b1
        ratio = (h / (1 + np.exp(-h))) / h
        np.testing.assert_allclose(lrp[r], xs * (W1.T @ (W2 * ratio)), atol=1e-12)
    assert not np.allclose(lrp, GradientXInput().attribute(ad, coal).numpy())


# ------------------------------------------------------------------------------------------------ (c) by hand
def _lin(x, W, R_out, y):
    """ε-LRP (ε → 0) for y = x Wᵀ: R_in[t, i] = Σ_o x[t, i] W[o, i] R_out[t, o] / y[t, o]."""
    ratio = np.divide(R_out, y, out=np.zeros_like(R_out), where=R_out != 0)
    return x * (ratio @ W)


def test_hand_computed_rules_on_one_layer_llama():
    """Relevance propagated with the rule equations on a 1-layer, 2-head (1 KV head) Llama over 4 tokens."""
    model = tiny_model("llama", seed=3, layers=1, vocab=20, hidden_size=8, intermediate_size=12, head_dim=4)
    ids, answer = [[5, 11, 2, 17]], 7
    emb = embeds(model, ids)
    with attnlrp_rules(model):
        logits, rel = logit_relevance(model, emb, answer)
    ours = rel[0].sum(-1).numpy()

    P = {k: v.detach().numpy() for k, v in model.named_parameters()}
    L = "model.layers.0."
    eps, T, nh, hd = model.config.rms_norm_eps, 4, 2, 4
    x0 = emb[0].numpy()

    def rms(x, w):
        return w * x / np.sqrt((x**2).mean(-1, keepdims=True) + eps)

    cos, sin = (t[0].detach().numpy() for t in model.model.rotary_emb(emb, torch.arange(T)[None]))
    rot = np.block([[np.zeros((2, 2)), -np.eye(2)], [np.eye(2), np.zeros((2, 2))]])  # rotate_half as a matrix
    M = [np.diag(cos[t]) + np.diag(sin[t]) @ rot for t in range(T)]  # q'_t = M_t q_t
    # forward
    n1 = rms(x0, P[L + "input_layernorm.weight"])
    q, k, v = (n1 @ P[L + f"self_attn.{p}_proj.weight"].T for p in "qkv")
    kr = np.stack([M[t] @ k[t] for t in range(T)])
    scale = hd**-0.5
    heads = []
    for h in range(nh):
        qh = q[:, h * hd : (h + 1) * hd]
        qr = np.stack([M[t] @ qh[t] for t in range(T)])
        S = np.where(np.tril(np.ones((T, T))) > 0, scale * qr @ kr.T, -np.inf)
        A = np.exp(S - S.max(1, keepdims=True))
        A /= A.sum(1, keepdims=True)
        heads.append(dict(qh=qh, qr=qr, S=S, A=A, O=A @ v))
    o = np.concatenate([hd_["O"] for hd_ in heads], axis=1)
    a = o @ P[L + "self_attn.o_proj.weight"].T
    x1 = x0 + a
    n2 = rms(x1, P[L + "post_attention_layernorm.weight"])
    g, u = n2 @ P[L + "mlp.gate_proj.weight"].T, n2 @ P[L + "mlp.up_proj.weight"].T
    sg = g / (1 + np.exp(-g))
    p = sg * u
    m = p @ P[L + "mlp.down_proj.weight"].T
    x2 = x1 + m
    n3 = rms(x2, P["model.norm.weight"])
    out = n3 @ P["lm_head.weight"].T
    f = out[T - 1, answer]
    np.testing.assert_allclose(logits[0].numpy(), out, atol=1e-7)  # Llama norms compute in float32
    # relevance, output to input
    R_out = np.zeros_like(out)
    R_out[T - 1, answer] = f
    R_x2 = _lin(n3, P["lm_head.weight"], R_out, out)  # final norm: identity rule (1/rms held constant)
    R_x1, R_m = x1 / x2 * R_x2, m / x2 * R_x2  # residual sum: ε-LRP
    R_p = _lin(p, P[L + "mlp.down_proj.weight"], R_m, m)
    R_sg = R_u = R_p / 2  # uniform rule on the gate product; identity rule through SiLU: R_g = R_sg
    R_n2 = _lin(n2, P[L + "mlp.gate_proj.weight"], R_sg, g) + _lin(n2, P[L + "mlp.up_proj.weight"], R_u, u)
    R_x1 = R_x1 + R_n2
    R_x0, R_a = x0 / x1 * R_x1, a / x1 * R_x1
    R_o = _lin(o, P[L + "self_attn.o_proj.weight"], R_a, a)
    R_q, R_k, R_v = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    absorbed = 0.0
    for h, hh in enumerate(heads):
        R_O = R_o[:, h * hd : (h + 1) * hd]
        share = np.divide(R_O, hh["O"], out=np.zeros_like(R_O), where=R_O != 0)  # R_O / O per (t, d)
        R_A = 0.5 * hh["A"] * (share @ v.T)  # uniform rule on A·V: R_A[t,s] = ½ Σ_d A V R_O / O
        R_v += 0.5 * v * (hh["A"].T @ share)
        causal = np.isfinite(hh["S"])
        R_S = np.where(causal, np.where(causal, hh["S"], 0) * (R_A - hh["A"] * R_A.sum(1, keepdims=True)), 0)  # softmax
        absorbed += R_A.sum() - R_S.sum()
        qk = hh["qr"] @ kr.T
        ratio = np.divide(R_S, qk, out=np.zeros_like(R_S), where=causal)
        R_qr = 0.5 * hh["qr"] * (ratio @ kr)  # uniform rule on q·kᵀ
        R_kr = 0.5 * kr * (ratio.T @ hh["qr"])
        for t in range(T):  # RoPE is linear: ε-LRP through M_t
            R_q[t, h * hd : (h + 1) * hd] += hh["qh"][t] * (M[t].T @ (R_qr[t] / hh["qr"][t]))
            R_k[t] += k[t] * (M[t].T @ (R_kr[t] / kr[t]))
    R_n1 = sum(_lin(n1, P[L + f"self_attn.{p}_proj.weight"], R, y) for p, R, y in (("q", R_q, q), ("k", R_k, k), ("v", R_v, v)))
    R_x0 = R_x0 + R_n1
    np.testing.assert_allclose(ours, R_x0.sum(-1), atol=1e-6, rtol=0)
    np.testing.assert_allclose(rel[0].numpy(), R_x0, atol=1e-9)
    # conservation: the only relevance lost in this bias-free model is what the softmax absorbs
    assert abs(f - R_x0.sum() - absorbed) < 1e-10
    assert abs(absorbed) > 1e-6


# ------------------------------------------------------------------------------------------------ (d) conservation
@pytest.mark.parametrize("arch", ["llama", "mistral", "gemma3_text"])
def test_conservation_holds_without_attention_relevance(arch):
    """Bias-free model, f a logit, attention output projection zeroed: Σ_i R_i = f exactly."""
    model = tiny_model(arch)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
    emb = embeds(model, [[3, 9, 1, 14, 6]])
    with attnlrp_rules(model):
        logits, rel = logit_relevance(model, emb, 4)
    assert float(rel.sum()) == pytest.approx(float(logits[0, -1, 4]), abs=1e-10)
    _, grad = logit_relevance(model, emb, 4)
    assert abs(float(grad.sum()) - float(logits[0, -1, 4])) > 1e-3  # plain gradient × input is not conservative


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_conservation_deviation_is_what_softmax_and_biases_absorb(arch, capsys):
    """With attention, f − Σ_i R_i is measured; in a bias-free Llama it is exactly the attention layers' loss
    Σ_l [R(attention output) − R(q) − R(k) − R(v)] (every other rule conserves)."""
    model = tiny_model(arch)
    emb = embeds(model, [[3, 9, 1, 14, 6, 2]])
    store: list[tuple[str, torch.Tensor]] = []

    def keep(tag):
        def hook(module, args, output=None):
            t = args[0] if output is None else output
            t.retain_grad()
            store.append((tag, t))
        return hook

    handles = []
    if arch == "llama":
        for layer in model.model.layers:
            for p in "qkv":
                handles.append(getattr(layer.self_attn, f"{p}_proj").register_forward_hook(keep("in")))
            handles.append(layer.self_attn.o_proj.register_forward_pre_hook(keep("out")))
    try:
        with attnlrp_rules(model):
            logits, rel = logit_relevance(model, emb, 4)
    finally:
        for h in handles:
            h.remove()
    f = float(logits[0, -1, 4])
    deviation = f - float(rel.sum())
    with capsys.disabled():
        print(f"\n[{arch}] f = {f:.6f}, Σ R = {float(rel.sum()):.6f}, deviation {deviation:+.3e} ({abs(deviation / f):.1%} of f)")
    assert abs(deviation) > 1e-8
    if arch == "llama":
        lost = sum(float((t.detach() * t.grad).sum()) * (1 if tag == "out" else -1) for tag, t in store)
        assert deviation == pytest.approx(lost, abs=1e-10)


# ------------------------------------------------------------------------------------------------ (e) every family
def _rms_reference(kind):
    def forward(self, x):
        xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        r = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + getattr(self, "variance_epsilon", getattr(self, "eps", None)))
        y = xf * r.detach()
        return (self.weight * y.to(x.dtype)) if kind == "rms" else (y * (1.0 + self.weight)).type_as(x)
    return forward


def _layer_norm_reference(self, x):
    mu = x.mean(-1, keepdim=True)
    std = ((x - mu).pow(2).mean(-1, keepdim=True) + self.eps).sqrt()
    return (x - mu) / std.detach() * self.weight + self.bias


def _activation_reference(orig):
    def forward(self, x):
        y = orig(x)
        return x * torch.where(x != 0, y / torch.where(x != 0, x, torch.ones_like(x)), torch.zeros_like(x)).detach()
    return forward


def _gated_mlp_reference(self, x):
    prod = self.act_fn(self.gate_proj(x)) * self.up_proj(x)
    return self.down_proj(0.5 * prod + 0.5 * prod.detach())


@contextmanager
def reference_rules(model):
    """The AttnLRP rules re-implemented in the test: rewritten forwards with ``detach`` (this instance only) and
    attention gradients scaled at the q/k/v projections (¼, ¼, ½)."""
    patched, handles = [], []

    def patch(module, fn):
        module.forward = types.MethodType(fn, module)
        patched.append(module)

    def scale_hook(factors):
        def hook(module, args, out):
            s = factors(out.shape[-1]).to(out.dtype)
            return s * out + ((1 - s) * out).detach()
        return hook

    for module in model.modules():
        cls = type(module).__name__
        if cls.endswith("RMSNorm"):
            patch(module, _rms_reference("rms_one_plus" if cls.startswith("Gemma3") else "rms"))
        elif isinstance(module, torch.nn.LayerNorm):
            patch(module, _layer_norm_reference)
        elif cls in ("SiLUActivation", "NewGELUActivation", "GELUTanh", "GELUActivation"):
            patch(module, _activation_reference(module.forward))
        elif cls.endswith("MLP") and hasattr(module, "gate_proj"):
            patch(module, _gated_mlp_reference)
        elif cls.endswith("Attention"):
            if hasattr(module, "c_attn"):
                handles.append(module.c_attn.register_forward_hook(scale_hook(
                    lambda n: torch.cat([torch.full((2 * n // 3,), 0.25), torch.full((n // 3,), 0.5)]))))
            else:
                for p, c in (("q", 0.25), ("k", 0.25), ("v", 0.5)):
                    handles.append(getattr(module, f"{p}_proj").register_forward_hook(scale_hook(lambda n, c=c: torch.full((n,), c))))
    try:
        yield
    finally:
        for module in patched:
            del module.forward
        for h in handles:
            h.remove()


@pytest.mark.parametrize("arch", FAMILIES)
@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_every_family_matches_the_rules_reimplemented(arch, impl):
    model = tiny_model(arch, attention_bias=True) if arch == "gemma3_text" else tiny_model(arch)
    model.set_attn_implementation(impl)
    emb = embeds(model, [[4, 8, 15, 16, 23, 2], [1, 5, 9, 13, 17, 21]])
    logits0, grad0 = logit_relevance(model, emb, 6)
    with attnlrp_rules(model):
        logits, ours = logit_relevance(model, emb, 6)
    assert torch.equal(logits, logits0)
    with reference_rules(model):
        _, ref = logit_relevance(model, emb, 6)
    torch.testing.assert_close(ours, ref, atol=1e-8, rtol=1e-5)  # Llama-style norms run in float32 inside
    assert not torch.allclose(ours, grad0, atol=1e-6)
    logits2, grad2 = logit_relevance(model, emb, 6)
    assert torch.equal(logits2, logits0) and torch.equal(grad2, grad0)


# ------------------------------------------------------------------------------------------------ end to end
def make_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {t: i for i, t in enumerate(SPECIALS + WORDS + ["\n"])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
                                  bos_token="<s>", eos_token="</s>", additional_special_tokens=SPECIALS[5:])
    tok.chat_template = TEMPLATE
    return tok


@pytest.fixture(scope="module")
def lm_path(tmp_path_factory):
    tok = make_tokenizer()
    path = tmp_path_factory.mktemp("attnlrp_lm") / "llama"
    tiny_model("llama", vocab=len(tok)).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def test_explain_lm_exact_matches_rules_and_budgeted_run(lm_path):
    adapter = CausalLM(lm_path, "the movie was not bad", "paris is nice", dtype="float64")
    model, tok = adapter.model, adapter.tokenizer
    res = explain_lm(model, "the movie was not bad", "paris is nice", tokenizer=tok, method="attnlrp", dtype="float64")
    assert res.exact and res.method == "attnlrp" and res.players == "the movie was not bad".split()
    np.testing.assert_allclose(res.row_sums(), res.first_order, atol=1e-10)
    # first order = Σ over each word's tokens of emb ⊙ ĝ of the teacher-forced log-probability under the rules
    ids = adapter.prompt_ids + adapter.answer_ids
    emb = embeds(model, [ids]).requires_grad_(True)
    with attnlrp_rules(model):
        logp = torch.log_softmax(model(inputs_embeds=emb).logits[0], dim=-1)
        n = len(adapter.prompt_ids)
        f = sum(logp[n - 1 + j, a] for j, a in enumerate(adapter.answer_ids))
        f.backward()
    per_token = (emb * emb.grad)[0].sum(-1).detach().numpy()
    expected = [sum(per_token[t] for t in w.tokens) for w in adapter.words]
    np.testing.assert_allclose(res.first_order, expected, atol=1e-9)
    assert res.context["value_full"] == pytest.approx(float(f.detach()), abs=1e-9)
    est = explain_lm(model, "the movie was not bad", "paris is nice", tokenizer=tok, method="attnlrp", budget=12, seed=0)
    assert not est.exact and est.stderr is not None and np.isfinite(est.matrix).all() and est.matrix.shape == (5, 5)
    assert get_method("attn_lrp").name == "attnlrp"


def test_cli_lm_attnlrp(lm_path, tmp_path):
    out = tmp_path / "run"
    assert main(["lm", "--model", lm_path, "--prompt", "the movie was bad", "--answer", "paris", "--method", "attnlrp",
                 "--dtype", "float64", "--out", str(out)]) == 0
    data = json.loads((out / "result.json").read_text())
    assert data["method"] == "attnlrp" and data["players"] == ["the", "movie", "was", "bad"]
    np.testing.assert_allclose(np.array(data["matrix"]).sum(axis=1), data["first_order"], atol=1e-9)


def test_component_gates_get_the_relevance_of_each_head():
    model = tiny_model("gpt2")
    ids = torch.tensor([[3, 1, 4, 1, 5]])
    ad = ComponentModel(model, ids, output=7, components="heads")
    full = np.ones((1, ad.n_players), bool)
    ours = AttnLRP().attribute(ad, full)[0].numpy()
    # reference: AttnLRP relevance of each head's slice of the attention output (c_proj input), R = o ⊙ ĝ
    store = []
    handles = [blk.attn.c_proj.register_forward_pre_hook(lambda m, a: (a[0].retain_grad(), store.append(a[0]))[1] and None)
               for blk in model.transformer.h]
    try:
        with attnlrp_rules(model):
            model(ids).logits[0, -1, 7].backward()
    finally:
        for h in handles:
            h.remove()
    ref = np.concatenate([(o * o.grad)[0].reshape(5, 2, 8).sum((0, 2)).detach().numpy() for o in store])
    np.testing.assert_allclose(ours, ref, atol=1e-10)
    res = explain_components(model, ids, output=7, components="heads", method="attnlrp")
    assert res.exact and res.matrix.shape == (4, 4)
    np.testing.assert_allclose(res.row_sums(), res.first_order, atol=1e-10)
    np.testing.assert_allclose(res.first_order, ours, atol=1e-10)
