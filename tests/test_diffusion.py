"""Meta-ConceptAttention on tiny random diffusers MM-DiT models (Flux, SD3), built offline from configs.

References are written here from the definitions: the concept stream by hand with the stock joint blocks (the
concepts as their text stream), word masking against deleting the word's tokens, the metagame by enumerating
every coalition with Shapley weights.
"""

from __future__ import annotations

import json
import math
from itertools import combinations

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

from tiny_diffusion import tiny_flux_pipeline, tiny_flux_transformer, tiny_sd3_pipeline, tiny_sd3_transformer  # noqa: E402

from metagame.domains.diffusion.entry import (  # noqa: E402
    diffusion_adapter,
    explain_diffusion,
    load_diffusion,
    prompt_words,
)
from metagame.domains.diffusion.concept_attention import ConceptAttention as ConceptAttentionMethod  # noqa: E402
from metagame.run.tables import metagame_from_table as metagame_maps_from_table  # noqa: E402
from metagame.errors import MetagameError  # noqa: E402
from metagame.domains.diffusion import (  # noqa: E402
    ConceptStreams,
    masked_text_forward,
    run_transformer,
    text_masking,
)
from metagame.players import all_coalitions  # noqa: E402

GEN = dict(steps=2, height=16, width=16, max_sequence_length=12)
CONCEPTS = ["cat", "tree", "sky"]


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def flux_pipe():
    return tiny_flux_pipeline()


@pytest.fixture(scope="module")
def sd3_pipe():
    return tiny_sd3_pipeline()


def flux_inputs(transformer, n_text: int = 6, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    ids = torch.zeros(4, 4, 3)
    ids[..., 1] = torch.arange(4)[:, None]
    ids[..., 2] = torch.arange(4)[None, :]
    return dict(
        hidden_states=torch.randn(1, 16, 4, generator=g),
        encoder_hidden_states=torch.randn(1, n_text, 32, generator=g),
        pooled_projections=torch.randn(1, 32, generator=g),
        timestep=torch.tensor([0.7]),
        img_ids=ids.reshape(16, 3),
        txt_ids=torch.zeros(n_text, 3),
    )


def sd3_inputs(transformer, n_text: int = 6, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    return dict(
        hidden_states=torch.randn(1, 4, 8, 8, generator=g),
        encoder_hidden_states=torch.randn(1, n_text, 32, generator=g),
        pooled_projections=torch.randn(1, 32, generator=g),
        timestep=torch.tensor([700.0]),
    )


MODELS = {
    "flux": (lambda: tiny_flux_transformer(num_layers=3).eval(), flux_inputs),
    "sd3": (lambda: tiny_sd3_transformer(num_layers=3, qk_norm="rms_norm", dual=(0,)).eval(), sd3_inputs),  # SD3.5-like
}


def hooks_left(module: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())


# ------------------------------------------------------------------------------------------------ references
def reference_concept_maps(transformer, kwargs, concept_embeds, coalition, read, self_attention=True):
    """ConceptAttention maps by hand: run the stock joint blocks with the concepts as their text stream.

    The image input of each block and the image attention output o_p come from the real forward; the concept
    attention output o_c is the stock processor's text-side output before ``to_add_out``. Returns ``[d, P]``.
    """
    flux = hasattr(transformer, "pos_embed") and hasattr(transformer.pos_embed, "axes_dim")
    blocks = list(transformer.transformer_blocks)
    seen: dict[int, dict] = {}
    handles = []
    for b, blk in enumerate(blocks):
        handles.append(blk.register_forward_pre_hook(lambda m, a, kw, b=b: seen.setdefault(b, {}).update(kw), with_kwargs=True))
        handles.append(blk.attn.to_out[0].register_forward_pre_hook(lambda m, a, b=b: seen[b].__setitem__("o_img", a[0])))
    with torch.no_grad():
        transformer(**kwargs)
    for h in handles:
        h.remove()
    d = concept_embeds.shape[0]
    members = [int(c) for c in np.flatnonzero(coalition)]
    groups = [members] if self_attention else [[c] for c in members]
    p = seen[0]["o_img"].shape[1]
    scores = {b: torch.zeros(d, p) for b in read}
    with torch.no_grad():
        for g in groups:
            h = transformer.context_embedder(concept_embeds[g])[None]
            for b, blk in enumerate(blocks[: max(read) + 1]):
                kw, out = seen[b], {}
                if blk.attn.context_pre_only:
                    hook = blk.attn.register_forward_hook(lambda m, a, o: out.__setitem__("o_c", o[1]))
                else:
                    hook = blk.attn.to_add_out.register_forward_pre_hook(lambda m, a: out.__setitem__("o_c", a[0]))
                call = dict(hidden_states=kw["hidden_states"], encoder_hidden_states=h, temb=kw["temb"])
                if flux:
                    ids = torch.cat([torch.zeros(len(g), 3), kwargs["img_ids"]])
                    call["image_rotary_emb"] = transformer.pos_embed(ids)
                h, _ = blk(**call)
                hook.remove()
                if b in read:
                    scores[b][g] = out["o_c"][0] @ kw["o_img"][0].T
    maps = torch.zeros(d, p)
    for b in read:
        sm = torch.zeros(d, p)
        if members:
            sm[members] = torch.softmax(scores[b][members], dim=0)
        maps += sm / len(read)
    return maps.double()


def brute_force_meta(phi_of, d: int) -> np.ndarray:
    """M[i, j, :] = Σ_T w(|T|) (u_i(T ∪ j) − u_i(T)), u_i(T) = φ_i(x_{T∪{i}}); M[i, i] = φ_i(x_{i})."""
    n = d - 1
    out = None
    for i in range(d):
        others = [k for k in range(d) if k != i]
        for j in range(d):
            if j == i:
                val = phi_of({i})[i]
            else:
                rest = [k for k in others if k != j]
                val = 0.0
                for t in range(len(rest) + 1):
                    w = math.factorial(t) * math.factorial(n - 1 - t) / math.factorial(n)
                    for T in combinations(rest, t):
                        val = val + w * (phi_of(set(T) | {i, j})[i] - phi_of(set(T) | {i})[i])
            if out is None:
                out = np.zeros((d, d) + np.shape(val))
            out[i, j] = val
    return out


# ------------------------------------------------------------------------------------------------ the metagame of maps
def test_metagame_maps_from_table_equals_brute_force(rng):
    d, p = 4, 5
    table = rng.normal(size=(2**d, d, p))
    table *= all_coalitions(d)[:, :, None]  # absent players have 0 rows
    meta = metagame_maps_from_table(table)

    def phi_of(S):
        return table[sum(1 << k for k in S)]

    np.testing.assert_allclose(meta, brute_force_meta(phi_of, d), atol=1e-12)
    np.testing.assert_allclose(meta.sum(axis=1), table[-1], atol=1e-12)  # rows sum to the full map per patch
    bz = metagame_maps_from_table(table, "banzhaf")  # Banzhaf: plain mean of the marginal contributions
    want = np.mean([table[(1 << 0) | (1 << 1) | sum(1 << k for k in T)][0] - table[(1 << 0) | sum(1 << k for k in T)][0]
                    for t in range(3) for T in combinations([2, 3], t)], axis=0)
    np.testing.assert_allclose(bz[0, 1], want, atol=1e-12)
    assert meta.shape == (d, d, p)  # the engine's vector-valued metagame (one game per patch)


# ------------------------------------------------------------------------------------------------ concept maps
@pytest.mark.parametrize("family", ["flux", "sd3"])
@pytest.mark.parametrize("self_attention", [True, False])
def test_concept_map_equals_hand_reference(family, self_attention):
    make, make_inputs = MODELS[family]
    tr = make()
    kwargs = make_inputs(tr)
    ce = torch.randn(3, 32)
    read = [1, 2]  # block 2 of SD3 is context-pre-only
    adapter = diffusion_adapter(tr, concepts=CONCEPTS, inputs=kwargs, concept_embeds=ce, blocks=read,
                                route="coupled", concept_self_attention=self_attention)
    coalitions = all_coalitions(3)
    maps = adapter.maps(coalitions)
    for s, S in enumerate(coalitions):
        want = reference_concept_maps(tr, kwargs, ce, S, read, self_attention)
        torch.testing.assert_close(maps[s], want, atol=2e-6, rtol=1e-5)
    assert torch.all(maps[0] == 0) and torch.allclose(maps[-1].sum(0), torch.ones(16, dtype=torch.float64))
    assert hooks_left(tr) == 0


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_decoupled_equals_coupled_without_concept_self_attention(family):
    make, make_inputs = MODELS[family]
    tr = make()
    kw = dict(concepts=["a", "b", "c", "d"], inputs=make_inputs(tr), concept_embeds=torch.randn(4, 32), blocks=[0, 2])
    coalitions = all_coalitions(4)
    dec = diffusion_adapter(tr, route="decoupled", **kw)
    assert dec.concept_self_attention is False and dec.route == "decoupled"
    cpl = diffusion_adapter(tr, route="coupled", concept_self_attention=False, batch_size=3, **kw)  # 6 chunks
    a, b = dec.maps(coalitions), ConceptAttentionMethod().attribute(cpl, coalitions)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert dec.n_model_rows == 1 and dec.n_stream_rows == 1  # one partial forward, one concept row
    # concepts that see each other move each other's maps: the routes differ there
    full = diffusion_adapter(tr, route="coupled", **kw).maps(coalitions)
    assert (full - a).abs().max() > 1e-4


# ------------------------------------------------------------------------------------------------ word masking
@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_masking_a_prompt_word_equals_deleting_it(family):
    make, make_inputs = MODELS[family]
    tr = make()
    kwargs = make_inputs(tr, n_text=7)
    keep = torch.tensor([True, True, False, False, True, True, True])  # word 1 = tokens 2, 3 masked
    out_masked = masked_text_forward(tr, kwargs, keep[None])
    deleted = dict(kwargs, encoder_hidden_states=kwargs["encoder_hidden_states"][:, keep])
    if family == "flux":
        deleted["txt_ids"] = kwargs["txt_ids"][keep]
    with torch.no_grad():
        out_deleted = tr(**deleted, return_dict=False)[0]
        out_full = tr(**kwargs, return_dict=False)[0]
    torch.testing.assert_close(out_masked[0], out_deleted[0], atol=1e-5, rtol=1e-5)
    assert (out_masked - out_full).abs().max() > 1e-4
    # all kept: the masked path is the model itself
    torch.testing.assert_close(masked_text_forward(tr, kwargs, torch.ones(1, 7, dtype=torch.bool)), out_full,
                               atol=1e-5, rtol=1e-5)

    # the word maps of the remaining words equal those of the prompt with the word deleted
    words = [("w0", [0, 1]), ("w1", [2, 3]), ("w2", [4]), ("w3", [5, 6])]
    read = [0, 1]
    adapter = diffusion_adapter(tr, players="words", inputs=kwargs, words=words, blocks=read)
    got = adapter.maps(np.array([[True, False, True, True]]))[0]
    seen: dict = {}
    handles = []
    for b in read:
        attn = tr.transformer_blocks[b].attn
        handles.append(attn.to_out[0].register_forward_pre_hook(lambda m, a, b=b: seen.__setitem__(("img", b), a[0])))
        handles.append(attn.to_add_out.register_forward_pre_hook(lambda m, a, b=b: seen.__setitem__(("txt", b), a[0])))
    with torch.no_grad():
        tr(**deleted)
    for h in handles:
        h.remove()
    pos = {t: k for k, t in enumerate(np.flatnonzero(keep.numpy()))}
    want = torch.zeros(4, 16, dtype=torch.float64)
    for b in read:
        vecs = torch.stack([seen[("txt", b)][0, [pos[t] for t in toks]].mean(0) for w, (_, toks) in enumerate(words) if w != 1])
        sm = torch.softmax(vecs @ seen[("img", b)][0].T, dim=0).double()
        want[[0, 2, 3]] += sm / len(read)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert hooks_left(tr) == 0


def test_prompt_words_map_tokens_of_both_text_encoders(flux_pipe, sd3_pipe):
    labels, toks = prompt_words(flux_pipe, "a cat under a tree", 12)
    assert labels == ["a#1", "cat", "under", "a#2", "tree"]
    ids = flux_pipe.tokenizer_2("a cat under a tree")["input_ids"]
    assert [len(t) for t in toks] and all(t[0] < len(ids) - 1 for t in toks)  # T5 part, before </s>
    labels, toks = prompt_words(sd3_pipe, "a cat under a tree", 16 + 12)
    assert labels[1] == "cat" and all(any(t < 16 for t in w) and any(t >= 16 for t in w) for w in toks)  # CLIP + T5


# ------------------------------------------------------------------------------------------------ end to end
@pytest.mark.parametrize("players", ["concepts", "words"])
def test_exact_metagame_equals_brute_force_and_rows_sum_to_maps(flux_pipe, players):
    kw = dict(concepts=CONCEPTS) if players == "concepts" else {}
    res = explain_diffusion(flux_pipe, "a cat under a tree", players=players, timesteps=[1], **kw, **GEN)
    adapter = diffusion_adapter(flux_pipe, "a cat under a tree", players=players, timesteps=[1], **kw, **GEN)
    d = res.n_players
    cache: dict = {}

    def phi_of(S):  # one coalition per call: no batching shared with the result
        key = frozenset(S)
        if key not in cache:
            row = np.zeros((1, d), dtype=bool)
            row[0, list(S)] = True
            cache[key] = adapter.maps(row)[0].numpy()
        return cache[key]

    meta = res.extras["meta_maps"].reshape(d, d, -1)
    np.testing.assert_allclose(meta, brute_force_meta(phi_of, d), atol=2e-6)  # float32 model, batched vs one row
    np.testing.assert_allclose(meta.sum(axis=1), res.extras["concept_maps"].reshape(d, -1), atol=1e-12)
    np.testing.assert_allclose(res.row_sums(), res.first_order, atol=1e-12)
    np.testing.assert_allclose(res.matrix, meta.mean(axis=2), atol=1e-12)
    assert res.player_kinds == [players[:-1]] * d and res.extras["image"].shape == (16, 16, 3)
    assert res.context["prompt"] == "a cat under a tree" and res.metadata["model"]["timesteps"] == [1]
    if players == "concepts":  # softmax maps: a concept alone owns every patch
        np.testing.assert_allclose(np.diagonal(meta, axis1=0, axis2=1), 1.0)


def test_region_summary_and_save_load(flux_pipe, tmp_path):
    region = np.zeros((16, 16))
    region[:8, 8:] = 1.0  # top-right quarter of the image = patches rows 0-1, cols 2-3
    res = explain_diffusion(flux_pipe, "a cat under a tree", concepts=CONCEPTS, region=region, **GEN)
    w = np.zeros((4, 4))
    w[:2, 2:] = 1.0
    np.testing.assert_allclose(res.matrix, (res.extras["meta_maps"] * w).sum(axis=(2, 3)) / 4, atol=1e-12)
    np.testing.assert_allclose(res.extras["region"], w)
    back = type(res).load(res.save(tmp_path / "r.json"))
    np.testing.assert_array_equal(back.extras["meta_maps"], res.extras["meta_maps"])
    assert back.context["concepts"] == CONCEPTS
    with pytest.raises(MetagameError, match="patch grid"):
        explain_diffusion(flux_pipe, "a cat", concepts=CONCEPTS, region=np.ones((5, 5)), **GEN)


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_hooks_removed_and_pipeline_outputs_unchanged(flux_pipe, sd3_pipe, family):
    pipe = flux_pipe if family == "flux" else sd3_pipe
    tr = pipe.transformer
    processors = [b.attn.processor for b in tr.transformer_blocks]
    hooks0 = hooks_left(pipe.transformer)

    def generate():
        calls = []
        h = tr.register_forward_pre_hook(lambda m, a, kw: calls.append({k: v for k, v in kw.items()}), with_kwargs=True)
        try:
            img = pipe("a cat under a tree", num_inference_steps=2, height=16, width=16, max_sequence_length=12,
                       output_type="np", generator=torch.Generator().manual_seed(0)).images[0]
        finally:
            h.remove()
        return img, calls

    before, calls = generate()
    adapter = diffusion_adapter(pipe, "a cat under a tree", concepts=CONCEPTS, **GEN)
    np.testing.assert_allclose(adapter.image, before, atol=1e-6)  # the explained image is the pipeline's own
    step = adapter.steps[1].kwargs  # the conditional (last) row of the transformer call of step 1
    for k, v in step.items():
        want = calls[1][k]
        torch.testing.assert_close(v, want[-1:] if k not in ("img_ids", "txt_ids") else want)
    if family == "sd3":
        assert calls[1]["hidden_states"].shape[0] == 2  # classifier-free guidance: explained row = the prompt's
    adapter.maps(all_coalitions(3))
    explain_diffusion(pipe, "a cat under a tree", players="words", **GEN)
    explain_diffusion(pipe, "a cat under a tree", concepts=CONCEPTS, route="decoupled", **GEN)
    after, _ = generate()
    np.testing.assert_array_equal(after, before)
    assert hooks_left(pipe.transformer) == hooks0 == 0
    assert [b.attn.processor for b in tr.transformer_blocks] == processors


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_hooks_removed_when_a_run_fails(family):
    make, make_inputs = MODELS[family]
    tr = make()
    kwargs = make_inputs(tr)
    processors = [b.attn.processor for b in tr.transformer_blocks]

    def boom(*args):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        with ConceptStreams(tr, torch.randn(2, 32), np.ones((1, 2), bool), self_attention=True, read=[1], on_scores=boom):
            run_transformer(tr, kwargs)
    assert hooks_left(tr) == 0
    with pytest.raises(RuntimeError, match="boom"):
        masked_text_forward(tr, kwargs, torch.ones(2, 6, dtype=torch.bool), read=[0], on_outputs=boom)
    assert hooks_left(tr) == 0 and [b.attn.processor for b in tr.transformer_blocks] == processors
    with pytest.raises(ValueError):
        with text_masking(tr, torch.ones(1, 6, dtype=torch.bool), 16, read=[0]):
            raise ValueError("inside")
    assert hooks_left(tr) == 0 and [b.attn.processor for b in tr.transformer_blocks] == processors
    with pytest.raises(MetagameError, match="concept_embeds must have shape"):
        diffusion_adapter(tr, concepts=["a", "b"], inputs=kwargs, concept_embeds=torch.randn(2, 7))
    assert hooks_left(tr) == 0


# ------------------------------------------------------------------------------------------------ loading, CLI, errors
def test_load_by_path_safetensors_only(tmp_path):
    tr = tiny_sd3_transformer()
    tr.save_pretrained(tmp_path / "tr")
    _, loaded, name = load_diffusion(tmp_path / "tr")
    assert type(loaded).__name__ == "SD3Transformer2DModel" and name == str(tmp_path / "tr")
    tr.save_pretrained(tmp_path / "bin", safe_serialization=False)
    with pytest.raises(MetagameError, match="safetensors"):
        load_diffusion(tmp_path / "bin")
    with pytest.raises(MetagameError, match="not a supported diffusion transformer"):
        load_diffusion(torch.nn.Linear(2, 2))


def test_cli_writes_result_report_and_pictures(flux_pipe, tmp_path):
    from metagame.cli import main

    flux_pipe.save_pretrained(tmp_path / "pipe")
    out = tmp_path / "out"
    rc = main(["diffusion", "--model", str(tmp_path / "pipe"), "--prompt", "a cat under a tree", "--concepts",
               "cat,tree,sky", "--out", str(out), "--steps", "2", "--height", "16", "--width", "16",
               "--max-sequence-length", "12", "--timesteps", "1", "--blocks", "1"])
    assert rc == 0
    data = json.loads((out / "result.json").read_text())
    assert data["players"] == CONCEPTS and data["method"] == "concept_attention"
    assert data["extras"]["meta_maps"]["sidecar"] == "result.npz"  # map stacks live in the npz side-car
    from metagame import load

    assert load(out / "result.json").extras["meta_maps"].shape == (3, 3, 4, 4)
    html = (out / "report.html").read_text()
    for name in ("concept_maps", "meta_maps"):
        assert (out / f"{name}.png").stat().st_size > 1000 and name in html
    assert main(["diffusion", "--model", str(tmp_path / "pipe"), "--prompt", "a cat", "--concepts", "cat,cat",
                 "--out", str(out)]) == 2


def test_errors_name_the_fix(flux_pipe):
    tr = tiny_flux_transformer()
    kwargs = flux_inputs(tr)
    with pytest.raises(MetagameError, match="concept_self_attention=False"):
        diffusion_adapter(tr, concepts=["a"], inputs=kwargs, concept_embeds=torch.randn(1, 32), route="decoupled",
                          concept_self_attention=True)
    with pytest.raises(MetagameError, match="inputs="):
        diffusion_adapter(tr, "a cat", concepts=["a"])
    with pytest.raises(MetagameError, match="blocks must be"):
        diffusion_adapter(tr, concepts=["a"], inputs=kwargs, concept_embeds=torch.randn(1, 32), blocks=[5])
    with pytest.raises(MetagameError, match="too large"):
        explain_diffusion(tr, concepts=list("abcde"), inputs=kwargs, concept_embeds=torch.randn(5, 32),
                          exact_max_players=4)
    with pytest.raises(MetagameError, match="timesteps"):
        explain_diffusion(flux_pipe, "a cat", concepts=["cat"], timesteps=[7], **GEN)
    with pytest.raises(MetagameError, match="drop concepts"):
        diffusion_adapter(tr, players="words", concepts=["a"], inputs=kwargs, words=[("a", [0])])
    with pytest.raises(MetagameError, match="explain_diffusion"):
        ConceptAttentionMethod().attribute(object(), np.ones((1, 1), bool))
    with pytest.raises(MetagameError, match="no scalar output"):
        diffusion_adapter(tr, concepts=["a"], inputs=kwargs, concept_embeds=torch.randn(1, 32)).values(np.ones((1, 1)))


def test_figures_overlay_maps_on_the_image(flux_pipe, tmp_path):
    pytest.importorskip("matplotlib")
    from metagame.domains.diffusion.pictures import concept_maps_figure, diffusion_figures, meta_maps_figure

    res = explain_diffusion(flux_pipe, "a cat under a tree", concepts=CONCEPTS, **GEN)
    figs = diffusion_figures(res)
    assert set(figs) == {"concept_maps", "meta_maps"}
    assert len(meta_maps_figure(res).axes) >= 9 + 3  # image column/row + d x d cells
    concept_maps_figure(res, save=tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 1000
