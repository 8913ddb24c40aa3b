"""Component players: ablation by hand-written hooks, attribution patching vs exact patching,
batched masks, exact Shapley over 8 heads vs brute force, hook hygiene, registry, bad input."""

from __future__ import annotations

from math import factorial

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM
from transformers.utils import logging as hf_logging

import metagame
from metagame.domains.components.entry import component_adapter, explain_components
from metagame.errors import MetagameError
from metagame.methods import GradientXInput, IntegratedGradients, Occlusion
from metagame.domains.components.adapter import ComponentModel
from metagame.players import all_coalitions

#: these tests load (tiny or bundled) Hugging Face models: the fast tier skips them (-m "not slow")
pytestmark = pytest.mark.slow

hf_logging.set_verbosity_error()


def _tiny(tmp_path_factory, model_type: str, auto=AutoModelForCausalLM, **cfg):
    """A tiny random model built from a config, saved and loaded by path (no download)."""
    torch.manual_seed(0)
    config = AutoConfig.for_model(model_type, **cfg)
    path = tmp_path_factory.mktemp(model_type)
    auto.from_config(config).save_pretrained(path)
    return auto.from_pretrained(path).eval()


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    return _tiny(tmp_path_factory, "gpt2", n_layer=2, n_head=4, n_embd=16, vocab_size=40, n_positions=16, bos_token_id=0, eos_token_id=0)


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return _tiny(
        tmp_path_factory, "llama", num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, hidden_size=16,
        intermediate_size=24, vocab_size=40, bos_token_id=0, eos_token_id=0, pad_token_id=0,
    )


IDS = torch.tensor([[3, 7, 1, 9, 4, 2]])
REF = torch.tensor([[5, 1, 8, 2, 6, 3], [9, 9, 2, 4, 1, 7], [2, 6, 3, 3, 8, 1]])
SITES = {"gpt2": "transformer.h.{l}.attn.c_proj", "llama": "model.layers.{l}.self_attn.o_proj"}


def _no_hooks(model) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


# ---------------------------------------------------------------- ablation equals hand-written edits
@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_mean_ablating_a_head_equals_editing_its_output_by_hand(arch, request):
    model = request.getfixturevalue(arch)
    layer, head, n_heads = 1, 2, 4
    site = dict(model.named_modules())[SITES[arch].format(l=layer)]
    captured = {}
    h = site.register_forward_pre_hook(lambda mod, args: captured.__setitem__("ref", args[0].detach().clone()))
    with torch.no_grad():
        model(input_ids=REF)
    h.remove()
    width = captured["ref"].shape[-1] // n_heads
    cols = slice(head * width, (head + 1) * width)
    mean = captured["ref"][..., cols].mean(dim=0)

    def edit(mod, args):
        x = args[0].clone()
        x[..., cols] = mean
        return (x,)

    h = site.register_forward_pre_hook(edit)
    with torch.no_grad():
        by_hand = float(model(input_ids=IDS).logits[0, -1, 5])
    h.remove()

    adapter = ComponentModel(model, {"input_ids": IDS}, output=5, ablation="mean", reference={"input_ids": REF})
    assert adapter.players[4 * layer + head] == f"L{layer}.H{head}"
    coalition = np.ones((1, adapter.n_players), dtype=bool)
    coalition[0, 4 * layer + head] = False
    assert float(adapter.values(coalition)[0]) == pytest.approx(by_hand, abs=1e-6)
    with torch.no_grad():
        clean = float(model(input_ids=IDS).logits[0, -1, 5])
    assert float(adapter.values(np.ones((1, 8), dtype=bool))[0]) == pytest.approx(clean, abs=1e-6)
    assert _no_hooks(model)


def test_zero_ablating_a_layer_skips_the_block(gpt2):
    block = gpt2.transformer.h[0]
    h = block.register_forward_hook(lambda mod, args, kwargs, out: (args[0] if args else kwargs["hidden_states"],) + tuple(out[1:]) if isinstance(out, tuple) else (args[0] if args else kwargs["hidden_states"]), with_kwargs=True)
    with torch.no_grad():
        skipped = float(gpt2(input_ids=IDS).logits[0, -1, 5])
    h.remove()
    adapter = ComponentModel(gpt2, {"input_ids": IDS}, output=5, components="layers")
    assert adapter.players == ["L0", "L1"] and adapter.player_kinds == ["layer", "layer"]
    assert float(adapter.values(np.array([[False, True]]))[0]) == pytest.approx(skipped, abs=1e-6)


def test_patching_from_a_corrupted_input_with_all_heads_patched_in_the_last_layer(gpt2):
    corrupted = torch.tensor([[8, 8, 2, 5, 5, 1]])
    site = gpt2.transformer.h[1].attn.c_proj
    captured = {}
    h = site.register_forward_pre_hook(lambda mod, args: captured.__setitem__("a", args[0].detach().clone()))
    with torch.no_grad():
        gpt2(input_ids=corrupted)
    h.remove()
    h = site.register_forward_pre_hook(lambda mod, args: (captured["a"].expand_as(args[0]),))
    with torch.no_grad():
        by_hand = float(gpt2(input_ids=IDS).logits[0, -1, 5])
    h.remove()
    adapter = ComponentModel(gpt2, {"input_ids": IDS}, output=5, ablation="patch", corrupted={"input_ids": corrupted})
    keep = np.array([[True] * 4 + [False] * 4])
    assert float(adapter.values(keep)[0]) == pytest.approx(by_hand, abs=1e-6)


# ---------------------------------------------------------------- attribution patching
class TwoBranch(torch.nn.Module):
    """f(x) = v · [tanh(W1 x), relu(W2 x)]: linear in both patched activations."""

    def __init__(self):
        super().__init__()
        self.w1 = torch.nn.Linear(4, 3)
        self.w2 = torch.nn.Linear(4, 5)
        self.act_a = torch.nn.Tanh()
        self.act_b = torch.nn.ReLU()
        self.head = torch.nn.Linear(8, 1)

    def forward(self, x):
        return self.head(torch.cat([self.act_a(self.w1(x)), self.act_b(self.w2(x))], dim=-1))


def test_attribution_patching_equals_exact_patching_when_linear_in_the_activation():
    net = TwoBranch().double()
    x = torch.randn(1, 4, dtype=torch.float64)
    corrupted = torch.randn(1, 4, dtype=torch.float64)
    adapter = ComponentModel(net, x, output=lambda out: out[:, 0], components=["act_a", "act_b"], ablation="patch", corrupted=corrupted)
    assert adapter.player_kinds == ["component", "component"]
    full = np.ones((1, 2), dtype=bool)
    patching = GradientXInput().attribute(adapter, full).numpy()[0]
    exact = Occlusion().attribute(adapter, full).numpy()[0]
    np.testing.assert_allclose(patching, exact, rtol=1e-10)
    # and by hand: gradient × (clean − corrupted) of the head's input
    with torch.no_grad():
        a_clean, a_corr = net.act_a(net.w1(x)), net.act_a(net.w1(corrupted))
    np.testing.assert_allclose(patching[0], float(net.head.weight[0, :3].detach() @ (a_clean - a_corr)[0]), rtol=1e-10)
    np.testing.assert_allclose(IntegratedGradients(n_steps=4).attribute(adapter, full).numpy()[0], exact, rtol=1e-10)


def test_attribution_patching_is_a_first_order_approximation_on_gpt2(gpt2):
    res = explain_components(gpt2, {"input_ids": IDS}, output=5, method="attribution_patching", layers=[1], batch_size=32)
    assert res.method == "gradient_x_input" and res.matrix.shape == (4, 4)
    np.testing.assert_allclose(res.matrix.sum(axis=1), res.first_order, atol=1e-6)


# ---------------------------------------------------------------- exact Shapley over 8 heads, batching
def test_exact_component_shapley_over_8_heads_matches_brute_force(llama):
    heads = [llama.model.layers[l].self_attn.o_proj for l in range(2)]

    coalitions = all_coalitions(8)

    def zero_heads(layer):  # row r of the batch keeps the heads of coalition r, the others output 0
        def hook(mod, args):
            x = args[0]
            w = x.shape[-1] // 4
            keep = torch.as_tensor(coalitions[:, 4 * layer : 4 * layer + 4], dtype=x.dtype).repeat_interleave(w, dim=1)
            return (x * keep[:, None, :],)

        return hook

    handles = [m.register_forward_pre_hook(zero_heads(l)) for l, m in enumerate(heads)]
    try:
        with torch.no_grad():
            table = llama(input_ids=IDS.expand(256, -1)).logits[:, -1, 7].double().numpy()
    finally:
        for hd in handles:
            hd.remove()
    n = 8
    brute = np.zeros(n)
    for s in range(2**n):
        for i in range(n):
            if not s >> i & 1:
                t = bin(s).count("1")
                brute[i] += factorial(t) * factorial(n - t - 1) / factorial(n) * (table[s | 1 << i] - table[s])

    adapter = component_adapter(llama, {"input_ids": IDS}, output=7, batch_size=64)
    res = metagame.explain(adapter, "shapley")
    np.testing.assert_allclose(res.first_order, brute, atol=1e-5)
    np.testing.assert_allclose(res.matrix.sum(axis=1), res.first_order, atol=1e-5)
    assert adapter.n_forward_passes == 256 // 64  # every mask of a batch in one forward pass
    assert res.players[:2] == ["L0.H0", "L0.H1"] and res.player_kinds == ["head"] * 8


def test_batched_masks_equal_one_at_a_time(gpt2, rng):
    coalitions = rng.random((10, 8)) < 0.5
    batched = component_adapter(gpt2, {"input_ids": IDS}, output=3, ablation="mean", reference={"input_ids": REF}, batch_size=16)
    single = component_adapter(gpt2, {"input_ids": IDS}, output=3, ablation="mean", reference={"input_ids": REF}, batch_size=1)
    np.testing.assert_allclose(batched.values(coalitions).numpy(), single.values(coalitions).numpy(), atol=1e-6)
    assert batched.n_forward_passes == 1 and single.n_forward_passes == len({r.tobytes() for r in coalitions})


def test_neuron_groups(gpt2):
    adapter = component_adapter(gpt2, {"input_ids": IDS}, output=3, components="neurons", layers=[0], neuron_groups=4)
    assert adapter.players == ["L0.N0-15", "L0.N16-31", "L0.N32-47", "L0.N48-63"]
    assert adapter.player_kinds == ["neuron"] * 4
    res = metagame.explain(adapter, "banzhaf", value="banzhaf")
    assert res.matrix.shape == (4, 4)


# ---------------------------------------------------------------- registry
def test_bert_and_clip_vision_registry(tmp_path_factory):
    bert = _tiny(
        tmp_path_factory, "bert", auto=AutoModel, num_hidden_layers=2, num_attention_heads=2, hidden_size=8,
        intermediate_size=16, vocab_size=30,
    )
    out = lambda o: o.last_hidden_state[:, 0, 0]  # noqa: E731
    a = ComponentModel(bert, {"input_ids": torch.tensor([[1, 4, 5, 2]])}, output=out)
    assert a.architecture == "bert" and a.players == ["L0.H0", "L0.H1", "L1.H0", "L1.H1"]
    with torch.no_grad():
        clean = float(out(bert(input_ids=torch.tensor([[1, 4, 5, 2]]))))
    assert float(a.values(np.ones((1, 4), dtype=bool))[0]) == pytest.approx(clean, abs=1e-6)

    clip = _tiny(
        tmp_path_factory, "clip_vision_model", auto=AutoModel, num_hidden_layers=2, num_attention_heads=2, hidden_size=8,
        intermediate_size=16, image_size=8, patch_size=4,
    )
    pixels = torch.randn(1, 3, 8, 8)
    c = ComponentModel(clip, {"pixel_values": pixels}, output=lambda o: o.pooler_output[:, 0], components="neurons", neuron_groups=2)
    assert c.architecture == "clip_vision" and c.n_players == 4
    with torch.no_grad():
        clean = float(clip(pixel_values=pixels).pooler_output[0, 0])
    assert float(c.values(np.ones((1, 4), dtype=bool))[0]) == pytest.approx(clean, abs=1e-6)


# ---------------------------------------------------------------- hook hygiene and bad input
def test_hooks_are_removed_after_errors(gpt2):
    calls = {"n": 0}

    def flaky(out):
        calls["n"] += 1
        if calls["n"] > 1:  # the set-up run (which checks the output) works, the first gated forward fails
            raise RuntimeError("boom")
        return out.logits[:, -1, 0]

    adapter = ComponentModel(gpt2, {"input_ids": IDS}, output=flaky)
    with pytest.raises(RuntimeError, match="boom"):
        adapter.values(np.ones((2, 8), dtype=bool))
    assert _no_hooks(gpt2)
    with pytest.raises(MetagameError, match="non-finite"):
        ComponentModel(gpt2, {"input_ids": IDS}, output=lambda o: o.logits[:, -1, 0] / 0.0)
    assert _no_hooks(gpt2)


def test_bad_input_errors(gpt2):
    with pytest.raises(MetagameError, match=r"unknown module 'transformer\.h\.7'.*transformer\.h\.0\.attn\.c_proj"):
        ComponentModel(gpt2, {"input_ids": IDS}, output=1, components=["transformer.h.7"])
    with pytest.raises(MetagameError, match="layer 5 does not exist"):
        ComponentModel(gpt2, {"input_ids": IDS}, output=1, layers=[5])
    with pytest.raises(MetagameError, match="needs reference"):
        ComponentModel(gpt2, {"input_ids": IDS}, output=1, ablation="mean")
    with pytest.raises(MetagameError, match="same shape"):
        ComponentModel(gpt2, {"input_ids": IDS}, output=1, ablation="patch", corrupted={"input_ids": IDS[:, :4]})
    with pytest.raises(MetagameError, match="batch size 1"):
        ComponentModel(gpt2, {"input_ids": REF}, output=1)
    with pytest.raises(MetagameError, match="no component registry entry.*architecture="):
        ComponentModel(TwoBranch(), torch.randn(1, 4), output=lambda o: o[:, 0])
    with pytest.raises(MetagameError, match="outside the vocabulary"):
        ComponentModel(gpt2, {"input_ids": IDS}, output=1000)
    neurons = ComponentModel(gpt2, {"input_ids": IDS}, output=1, components="neurons")
    assert neurons.n_players == 128
    with pytest.raises(MetagameError, match="budget"):
        metagame.explain(neurons, "occlusion")
    assert _no_hooks(gpt2)
