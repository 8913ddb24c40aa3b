"""Causal-LM adapter: word grouping, masking, batching/padding invariance, teacher forcing, CLI.

Tiny random Llama-, Qwen2- and GPT-2-style models are built from configs with a tokenizer trained
offline by the ``tokenizers`` library, saved to a temp folder and loaded by path like a user would.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig, PreTrainedTokenizerFast

import metagame
from metagame.domains.lm.entry import explain_lm
from metagame.cli import main
from metagame.errors import MetagameError
from metagame.domains.lm.adapter import CausalLM
from metagame.players import all_coalitions
from metagame.players.text import group_words, token_player_map, unique_labels

#: these tests load (tiny or bundled) Hugging Face models: the fast tier skips them (-m "not slow")
pytestmark = pytest.mark.slow

CORPUS = [
    "the movie was not bad at all", "an unbelievable story told badly", "the weather is nice today",
    "what is the capital of france", "paris is the capital", "what a film!", "it was a wonderful and unbelievably good film",
] * 3
SPECIALS = ["<pad>", "<unk>", "<mask>", "<s>", "</s>", "<|user|>", "<|system|>", "<|assistant|>", "<|end|>"]
TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
PROMPT = "the movie was unbelievably bad"


def make_tokenizer(kind: str, template: bool = True) -> PreTrainedTokenizerFast:
    """WordPiece (``##`` subwords) or byte-level BPE (``Ġ`` words), trained on CORPUS."""
    if kind == "wordpiece":
        tk = Tokenizer(models.WordPiece(unk_token="<unk>"))
        tk.pre_tokenizer = pre_tokenizers.Whitespace()
        tk.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=90, special_tokens=SPECIALS)
    else:
        tk = Tokenizer(models.BPE())
        tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tk.decoder = decoders.ByteLevel()
        tk.post_processor = processors.ByteLevel(trim_offsets=True)
        trainer = trainers.BpeTrainer(
            vocab_size=330, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        )
    tk.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>", mask_token="<mask>", bos_token="<s>",
        eos_token="</s>", additional_special_tokens=SPECIALS[5:],
    )
    if template:
        fast.chat_template = TEMPLATE
    return fast


def make_model(arch: str, path, n_positions: int = 64) -> str:
    """Save a tiny random model of ``arch`` with its tokenizer to ``path``; returns the path."""
    tok = make_tokenizer("wordpiece" if arch in ("llama", "bert") else "bpe", template=arch != "gpt2")
    ids = dict(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=n_positions)
    if arch in ("llama", "qwen2"):
        cfg = AutoConfig.for_model(arch, num_key_value_heads=2, **small, **ids)
    elif arch == "gpt2":
        cfg = AutoConfig.for_model("gpt2", n_embd=32, n_layer=2, n_head=4, n_positions=n_positions, **ids)
    else:
        cfg = AutoConfig.for_model("bert", **small, vocab_size=len(tok))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm")
    return {arch: make_model(arch, root / arch) for arch in ("llama", "qwen2", "gpt2")} | {"root": root}


@pytest.fixture(scope="module")
def llama(paths):
    """Loaded once: float64 Llama-style model with a chat template."""
    a = CausalLM(paths["llama"], PROMPT, "paris is nice", dtype="float64")
    return a.model, a.tokenizer


def manual_log_prob(model, ids: list[int], answer: list[int]) -> float:
    """Σ_k log p(a_k | ids, a_<k) from one plain forward pass over input_ids."""
    seq = torch.as_tensor([ids + answer])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=seq).logits[0].double(), dim=-1)
    L = len(ids)
    return float(sum(logp[L - 1 + k, a] for k, a in enumerate(answer)))


# ---------------------------------------------------------------- word grouping
def test_group_words_subwords_and_tokens():
    tok = make_tokenizer("wordpiece")
    text = "<s>the movie was unbelievably bad!"
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    special = [t in tok.all_special_ids for t in enc["input_ids"]]
    words = group_words(text, enc["offset_mapping"], special_mask=special)
    assert [w.label for w in words] == ["the", "movie", "was", "unbelievably", "bad!"]
    assert len(words[3].tokens) > 1  # subwords of one word are one player
    assert 0 not in [t for w in words for t in w.tokens]  # the special <s> is no player
    pieces = [tok.convert_ids_to_tokens(enc["input_ids"][t]) for t in words[1].tokens]
    assert "".join(p.removeprefix("##") for p in pieces) == "movie"
    split = group_words(text, enc["offset_mapping"], special_mask=special, split_punctuation=True)
    assert [w.label for w in split][-2:] == ["bad", "!"]
    toks = group_words(text, enc["offset_mapping"], grouping="tokens", special_mask=special)
    assert len(toks) == sum(len(w.tokens) for w in words) and all(len(w.tokens) == 1 for w in toks)
    inside = group_words(text, enc["offset_mapping"], special_mask=special, span=(text.index("was"), text.index(" bad")))
    assert [w.label for w in inside] == ["was", "unbelievably"]
    tmap = token_player_map(words, len(enc["input_ids"]))
    assert tmap[0] == -1 and set(tmap[list(words[3].tokens)]) == {3}
    assert unique_labels(group_words("a b a", [(0, 1), (2, 3), (4, 5)])) == ["a#1", "b", "a#2"]
    # byte-level BPE: leading-space tokens ("Ġword") and empty-span tokens
    bpe = make_tokenizer("bpe")
    enc = bpe(PROMPT, add_special_tokens=False, return_offsets_mapping=True)
    assert [w.label for w in group_words(PROMPT, enc["offset_mapping"])] == PROMPT.split()


# ---------------------------------------------------------------- f, masking, template
@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt2"])
def test_values_match_manual_forward(paths, arch):
    """f(x_S) equals a plain forward pass over the edited token ids, for all three maskings that have one."""
    a = CausalLM(paths[arch], PROMPT, "paris is nice", masking="attention")
    assert a.players == PROMPT.split()
    assert a.player_kinds == ["word"] * 5
    ids, ans = a.prompt_ids, a.answer_ids
    assert abs(a.value(np.ones(5, bool)) - manual_log_prob(a.model, ids, ans)) < 1e-4
    S = np.array([1, 0, 1, 0, 1], bool)
    drop = {t for p, w in enumerate(a.words) if not S[p] for t in w.tokens}
    deleted = [t for i, t in enumerate(ids) if i not in drop]
    assert abs(a.value(S) - manual_log_prob(a.model, deleted, ans)) < 1e-4
    m = CausalLM(a.model, PROMPT, ans, tokenizer=a.tokenizer, masking="mask_token")
    replaced = [m.baseline_token_id if i in drop else t for i, t in enumerate(ids)]
    assert m.baseline_token_id == a.tokenizer.mask_token_id
    assert abs(m.value(S) - manual_log_prob(a.model, replaced, ans)) < 1e-4


def test_template_and_special_tokens_never_masked(paths, llama):
    model, tok = llama
    prompt = "the <mask> movie was bad"
    for masking in ("mask_token", "zero_embedding", "attention"):
        a = CausalLM(model, prompt, "paris", tokenizer=tok, masking=masking, prefix_cache=False)
        assert a.players == ["the", "movie", "was", "bad"]  # the special token inside the prompt is no player
        assert a.template_text.startswith("<s><|user|>\n") and a.template_text.endswith("<|assistant|>\n")
        full = a._z_full
        z, zb, extra = a.embed(all_coalitions(a.n_players))
        player_tok = a._is_player_tok
        assert torch.equal(z[:, ~player_tok], full[~player_tok].expand(z.shape[0], -1, -1))
        assert torch.equal(zb[:, ~player_tok], full[~player_tok].expand(z.shape[0], -1, -1))
        if masking == "attention":
            keep = extra[0]
            assert bool(keep[:, ~player_tok].all()) and not bool(keep[0, player_tok].any())
        # the prefix (<s><|user|>\n) lies before z: it is never part of the masked input
        header = tok("<s><|user|>\n", add_special_tokens=False)["input_ids"]
        assert a.prefix_len == len(header) >= 2 and a.prompt_ids[: a.prefix_len] == header


# ---------------------------------------------------------------- batching and padding
@pytest.mark.parametrize("masking", ["attention", "mask_token"])
def test_batch_size_padding_and_prefix_cache_invariance(llama, masking):
    model, tok = llama
    C = all_coalitions(4)
    ref = None
    for batch_size, side, cache in [(32, "left", True), (2, "right", False), (5, "right", True)]:
        a = CausalLM(model, "the movie was unbelievably", "paris is nice", tokenizer=tok, masking=masking, batch_size=batch_size,
                     padding_side=side, prefix_cache=cache)
        assert (a._prefix_kv is not None) == cache
        v = a.values(C).numpy()
        res = metagame.explain(a, "gradient_x_input")
        if ref is None:
            ref = (v, res.matrix)
            assert a.n_forward_passes < len(C)  # many coalitions per forward pass
        else:
            np.testing.assert_allclose(v, ref[0], atol=1e-10, rtol=0)
            np.testing.assert_allclose(res.matrix, ref[1], atol=1e-10, rtol=0)


def test_float32_batch_invariance_gpt2_without_prefix(paths):
    """GPT-2 style without template or BOS in the text: the BOS token is prepended as the only (never-masked)
    context token (issue 10: before, the empty coalition had no context at all); padding sides agree."""
    a = CausalLM(paths["gpt2"], PROMPT, "paris", batch_size=64, padding_side="left")
    assert a.prefix_len == 1 and a.context_token_id == a.tokenizer.bos_token_id
    b = CausalLM(a.model, PROMPT, "paris", tokenizer=a.tokenizer, batch_size=3, padding_side="right")
    C = all_coalitions(5)
    va, vb = a.values(C).numpy(), b.values(C).numpy()
    assert np.isfinite(va).all()
    np.testing.assert_allclose(va, vb, atol=1e-4, rtol=0)


def test_empty_coalition_without_prefix_is_the_same_for_every_prompt(paths):
    """Issue 10 item 5: with no template and no BOS in the text, 0.1 read f(x_∅) at a deleted token's position
    (so it depended on the deleted words), gave gradient×input scores to deleted words and crashed with right
    padding. The BOS context token makes f(x_∅) = log p(answer | BOS) for any prompt and either padding side."""
    import metagame

    empties = []
    for prompt in (PROMPT, "what a film", "paris is the capital of france"):
        for side in ("left", "right"):
            a = CausalLM(paths["gpt2"], prompt, "paris", padding_side=side, batch_size=4)
            empties.append(float(a.values(np.zeros((1, a.n_players), dtype=bool))[0]))
            rng = np.random.default_rng(0)
            coal = rng.random((6, a.n_players)) < 0.5
            coal[0] = False
            phi = a.attribute(metagame.methods.GradientXInput(), coal).numpy()
            assert np.all(phi[~coal] == 0), phi  # deleted words get nothing
    np.testing.assert_allclose(empties, empties[0], atol=1e-5, rtol=0)
    tok = AutoTokenizer_from(paths["gpt2"])
    tok.bos_token = None
    tok.eos_token = None
    model = AutoModelForCausalLM.from_pretrained(paths["gpt2"])
    model.config.bos_token_id = None
    with pytest.raises(MetagameError, match="BOS or EOS token"):
        CausalLM(model, PROMPT, "paris", tokenizer=tok)


def AutoTokenizer_from(path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


# ---------------------------------------------------------------- the metagame on an LM
@pytest.mark.parametrize("method", ["gradient_x_input", "integrated_gradients", "occlusion", "shapley"])
@pytest.mark.parametrize("masking", ["attention", "mask_token", "zero_embedding"])
def test_rows_sum_to_first_order(llama, method, masking):
    model, tok = llama
    a = CausalLM(model, "the movie was not bad", "paris", tokenizer=tok, masking=masking)
    kw = {"n_steps": 4} if method == "integrated_gradients" else None
    res = metagame.explain(a, method, method_kwargs=kw)
    np.testing.assert_allclose(res.row_sums(), res.first_order, atol=1e-9)
    direct = metagame.methods.get_method(method, kw).attribute(a, np.ones((1, 5), bool))[0].numpy()
    np.testing.assert_allclose(res.first_order, direct, atol=1e-9)
    if method == "shapley":
        assert abs(res.first_order.sum() - (res.context["value_full"] - res.context["value_empty"])) < 1e-9
        np.testing.assert_allclose(res.matrix, res.matrix.T, atol=1e-9)  # Meta-SV is symmetric
    if method == "integrated_gradients" and masking == "mask_token":
        # completeness at x: Σ_i IG_i = f(x) − f(baseline); checked with a fine quadrature (64 Gauss-Legendre
        # nodes) so the check does not depend on how rough the path of a random tiny model is
        fine = metagame.methods.get_method(method, {"n_steps": 64}).attribute(a, np.ones((1, 5), bool))[0].numpy()
        gap = res.context["value_full"] - res.context["value_empty"]
        assert abs(fine.sum() - gap) < 1e-4 * (abs(fine).sum() + abs(gap)) + 1e-8


def test_captum_class_on_embeddings_matches_ours(llama):
    import captum.attr

    model, tok = llama
    a = CausalLM(model, "the movie was not bad", "paris", tokenizer=tok)
    ours = metagame.explain(a, "integrated_gradients", method_kwargs={"n_steps": 4})  # Gauss-Legendre, as Captum
    theirs = metagame.explain(a, captum.attr.IntegratedGradients, method_kwargs={"n_steps": 4})
    np.testing.assert_allclose(theirs.matrix, ours.matrix, atol=1e-8)


def test_tokens_mode_and_contrast(llama):
    model, tok = llama
    a = CausalLM(model, "the movie", "paris", tokenizer=tok, grouping="tokens", alternative="nice")
    assert a.player_kinds == ["token"] * a.n_players and a.n_players == sum(len(w.tokens) for w in a.words) > 2
    alt = tok("nice", add_special_tokens=False)["input_ids"]
    want = manual_log_prob(model, a.prompt_ids, a.answer_ids) - manual_log_prob(model, a.prompt_ids, alt)
    assert abs(a.value(np.ones(a.n_players, bool)) - want) < 1e-9


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_generation_then_teacher_forcing(paths, arch):
    """The generated answer's teacher-forced log-probability equals what generate() reports."""
    a = CausalLM(paths[arch], PROMPT, None, max_answer_tokens=5, dtype="float64")
    assert a.generated and 1 <= len(a.answer_ids) <= 5
    ids = torch.as_tensor([a.prompt_ids])
    cfg = GenerationConfig(max_new_tokens=len(a.answer_ids), do_sample=False, num_beams=1, pad_token_id=a.tokenizer.pad_token_id,
                           eos_token_id=None, output_logits=True, return_dict_in_generate=True)
    out = a.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=cfg)
    assert out.sequences[0, ids.shape[1] :].tolist() == a.answer_ids
    reported = sum(float(torch.log_softmax(l[0].double(), -1)[t]) for l, t in zip(out.logits, a.answer_ids))
    assert abs(a.value(np.ones(a.n_players, bool)) - reported) < 1e-5  # generate() keeps float32 logits
    assert abs(a.value(np.ones(a.n_players, bool)) - manual_log_prob(a.model, a.prompt_ids, a.answer_ids)) < 1e-8


# ---------------------------------------------------------------- bad input
def test_bad_inputs(paths, llama):
    model, tok = llama
    with pytest.raises(MetagameError, match="prompt is empty"):
        CausalLM(model, "   ", "x", tokenizer=tok)
    with pytest.raises(MetagameError, match="context is 64 tokens"):
        CausalLM(model, " ".join(["movie"] * 80), "x", tokenizer=tok)
    with pytest.raises(MetagameError, match="unknown masking mode 'blank'.*attention, mask_token, zero_embedding"):
        CausalLM(model, PROMPT, "x", tokenizer=tok, masking="blank")
    with pytest.raises(MetagameError, match="needs its tokenizer"):
        CausalLM(model, PROMPT, "x")
    bert = make_model("bert", paths["root"] / "bert")
    with pytest.raises(MetagameError, match="not a causal language model"):
        CausalLM(bert, PROMPT, "x")
    long_prompt = " ".join(["the movie was nice"] * 5)  # 20 words
    with pytest.raises(MetagameError, match="budget="):
        explain_lm(model, long_prompt, "x", tokenizer=tok, method="occlusion")
    with pytest.raises(MetagameError, match="no chat template"):
        CausalLM(paths["gpt2"], PROMPT, "x", chat_template=True)


# ---------------------------------------------------------------- command line
def test_cli_end_to_end(paths, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["lm", "--model", paths["qwen2"], "--prompt", "the movie was not bad", "--answer", "paris",
               "--method", "gradient_x_input", "--masking", "mask_token", "--out", str(out)])
    assert rc == 0
    data = json.loads((out / "result.json").read_text())
    for key in ("players", "matrix", "first_order", "stderr", "method", "variant", "exact", "budget", "model",
                "answer", "value_full", "value_empty", "prompt"):
        assert key in data, key
    assert data["players"] == ["the", "movie", "was", "not", "bad"]
    assert data["model"] == paths["qwen2"] and data["answer"] == "paris" and data["exact"] is True
    assert data["stderr"] is None and data["budget"] is None and data["method"] == "gradient_x_input"
    m = np.array(data["matrix"])
    np.testing.assert_allclose(m.sum(axis=1), data["first_order"], atol=1e-9)
    assert data["player_kinds"] == ["word"] * 5
    assert "answer" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # argparse rejects an unknown masking mode
        main(["lm", "--model", paths["qwen2"], "--prompt", "the movie", "--masking", "nope", "--out", str(out)])
    assert main(["lm", "--model", paths["qwen2"], "--prompt", "  ", "--answer", "x", "--out", str(out)]) == 2


def test_budget_estimate_runs_and_reports_stderr(llama):
    model, tok = llama
    res = explain_lm(model, "the movie was not bad", "paris", tokenizer=tok, method="occlusion", budget=12, seed=0)
    assert not res.exact and res.stderr is not None and res.to_dict()["budget"] == 12
    assert res.matrix.shape == (5, 5) and np.isfinite(res.matrix).all()
