"""Vision-language meta-attributions on tiny random CLIP and SigLIP models built from configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metagame import explain
from metagame.domains.encoders.entry import explain_vision, vision_adapter
from metagame.errors import MetagameError
from metagame.domains.encoders.patch_maps import PatchMapsModel
from metagame.domains.encoders.vision import VisionLanguageModel, load_vision_language

#: these tests load (tiny or bundled) Hugging Face models: the fast tier skips them (-m "not slow")
pytestmark = pytest.mark.slow

WORDS = "a photo of cat dog red blue green car on the grass sky".split()


def build_tiny(kind: str, root) -> str:
    """Save a tiny random CLIP/SigLIP (image 32, patch 8: a 4×4 grid) with an offline tokenizer and processor."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import (
        CLIPConfig, CLIPImageProcessor, CLIPModel, PreTrainedTokenizerFast, SiglipConfig, SiglipImageProcessor,
        SiglipModel,
    )

    vocab = {"<unk>": 0, "<pad>": 1, "<bos>": 2, "<eos>": 3}
    for w in WORDS + [".", ","]:
        vocab[w] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    single = "<bos> $A <eos>" if kind == "clip" else "$A <eos>"
    specials = [("<bos>", 2), ("<eos>", 3)] if kind == "clip" else [("<eos>", 3)]
    tok.post_processor = processors.TemplateProcessing(single=single, special_tokens=specials)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<bos>", eos_token="<eos>")
    text = dict(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                max_position_embeddings=12, bos_token_id=2, eos_token_id=3, pad_token_id=1)
    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8)
    torch.manual_seed(0)
    if kind == "clip":
        model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8))
        proc = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    else:
        model = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
        proc = SiglipImageProcessor(size={"height": 32, "width": 32})
    path = root / kind
    model.save_pretrained(path)
    fast.save_pretrained(path)
    proc.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("vl")
    return {k: build_tiny(k, root) for k in ("clip", "siglip")}


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    from PIL import Image

    rng = np.random.default_rng(0)
    arr = (rng.random((40, 48, 3)) * 255).astype(np.uint8)
    arr[:20, :24] = [200, 30, 30]
    path = tmp_path_factory.mktemp("img") / "img.png"
    Image.fromarray(arr).save(path)
    return str(path)


@pytest.fixture(scope="module")
def loaded(tiny):
    return {k: load_vision_language(p) for k, p in tiny.items()}


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_shapes_and_row_efficiency(kind, loaded, image_file):
    model, ip, tok = loaded[kind]
    res = explain_vision(model, image_file, "a red cat", image_processor=ip, tokenizer=tok, grid=2,
                         method="integrated_gradients", method_kwargs={"n_steps": 4})
    assert res.players[:4] == ["patch (0, 0)", "patch (0, 1)", "patch (1, 0)", "patch (1, 1)"]
    assert res.players[4:] == ["a", "red", "cat"]
    assert res.player_kinds == ["patch"] * 4 + ["word"] * 3
    assert res.matrix.shape == (7, 7)
    np.testing.assert_allclose(res.row_sums(), res.first_order, atol=1e-9)
    assert res.context["grid"] == [2, 2] and res.context["image_path"] == image_file
    assert res.extras["image"].shape[2] == 3 and 0 <= res.extras["image"].min() <= res.extras["image"].max() <= 1
    # f(x) is the model's own logit for the pair
    adapter = vision_adapter(model, image_file, "a red cat", image_processor=ip, tokenizer=tok, grid=2)
    full = adapter.values(np.ones((1, 7), dtype=bool))[0]
    assert res.context["value_full"] == pytest.approx(float(full), abs=1e-6)
    kwargs = {"padding": "max_length", "max_length": 12} if kind == "siglip" else {}
    enc = tok("a red cat", return_tensors="pt", **kwargs)
    with torch.no_grad():
        out = model(input_ids=enc["input_ids"], pixel_values=adapter.pixels[None])
    assert float(out.logits_per_image[0, 0]) == pytest.approx(float(full), abs=1e-4)


@pytest.mark.parametrize("masking", ["mean", "blur", "zero"])
def test_masking_leaves_present_patches_untouched(masking, loaded, image_file):
    model, ip, tok = loaded["clip"]
    ad = VisionLanguageModel(model, ip, tok, image_file, "a dog", patch_masking=masking)  # native 4×4 grid
    assert ad.n_patches == 16 and ad.n_words == 2
    rng = np.random.default_rng(1)
    coal = rng.random((3, ad.n_players)) < 0.5
    pix = ad.masked_pixels(coal)
    owner = ad.pixel_patch.numpy()
    for r in range(3):
        keep = coal[r, :16][owner]
        assert torch.equal(pix[r][:, torch.as_tensor(keep)], ad.pixels[:, torch.as_tensor(keep)])
        assert torch.equal(pix[r][:, torch.as_tensor(~keep)], ad.image_baseline[:, torch.as_tensor(~keep)])
    if masking != "zero":
        assert not torch.equal(ad.image_baseline, ad.pixels)


def test_patch_maps_equal_scalar_mode_per_patch(loaded, image_file):
    model, ip, tok = loaded["clip"]
    # grid 1: the image is one patch; the scalar row of that patch over the words is the patch map
    for method, kw in (("gradient_x_input", None), ("integrated_gradients", {"n_steps": 4})):
        ad = VisionLanguageModel(model, ip, tok, image_file, "a red car on grass", grid=1)
        scalar = explain_vision(model, image_file, "a red car on grass", image_processor=ip, tokenizer=tok, grid=1,
                                method=method, method_kwargs=kw)
        maps = explain(PatchMapsModel(ad), method, method_kwargs=kw)
        assert maps.extras["patch_maps"].shape == (5, 1, 1)
        np.testing.assert_allclose(maps.extras["patch_maps"][:, 0, 0], scalar.matrix[0, 1:], atol=1e-6)
    # a 2×2 grid: every patch's map sums over words to heatmap(all words) − heatmap(no words)
    res = explain_vision(model, image_file, "a red car", image_processor=ip, tokenizer=tok, grid=2, mode="patch_maps",
                         method="gradient_x_input")
    assert res.players == ["a", "red", "car"] and res.extras["patch_maps"].shape == (3, 2, 2)
    np.testing.assert_allclose(res.extras["patch_maps"].sum(axis=0), res.extras["heatmap"] - res.extras["heatmap_no_words"], atol=1e-9)
    np.testing.assert_allclose(res.row_sums(), res.first_order, atol=1e-9)


def test_result_json_roundtrip(loaded, image_file, tmp_path):
    from metagame.results.result import MetaAttribution

    model, ip, tok = loaded["siglip"]
    res = explain_vision(model, image_file, "blue sky", image_processor=ip, tokenizer=tok, grid=2, mode="patch_maps",
                         method="occlusion")
    back = MetaAttribution.load(res.save(tmp_path / "r.json"))
    np.testing.assert_allclose(back.extras["patch_maps"], res.extras["patch_maps"])


def test_bad_inputs(tiny, loaded, image_file, tmp_path):
    from PIL import Image

    model, ip, tok = loaded["clip"]
    with pytest.raises(MetagameError, match="not found"):
        VisionLanguageModel(model, ip, tok, str(tmp_path / "missing.png"), "a cat")
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(MetagameError, match="not an image"):
        VisionLanguageModel(model, ip, tok, str(bad), "a cat")
    with pytest.raises(MetagameError, match="empty"):
        VisionLanguageModel(model, ip, tok, image_file, "   ")
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((2, 2, 3), dtype=np.uint8)).save(small)
    with pytest.raises(MetagameError, match="too small"):
        VisionLanguageModel(model, ip, tok, str(small), "a cat", grid=4)
    with pytest.raises(MetagameError, match="finer than"):
        VisionLanguageModel(model, ip, tok, image_file, "a cat", grid=5)
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)).save_pretrained(tmp_path / "bert")
    with pytest.raises(MetagameError, match="supported model types: clip, siglip"):
        load_vision_language(str(tmp_path / "bert"))


def test_cli_vision(tiny, image_file, tmp_path):
    from metagame.cli import main

    out = tmp_path / "out"
    rc = main(["vision", "--model", tiny["clip"], "--image", image_file, "--text", "a cat", "--grid", "2",
               "--method", "gradient_x_input", "--out", str(out)])
    assert rc == 0 and (out / "result.json").exists()
    rc = main(["vision", "--model", tiny["clip"], "--image", str(tmp_path / "nope.jpg"), "--text", "a cat", "--out", str(out)])
    assert rc == 2
