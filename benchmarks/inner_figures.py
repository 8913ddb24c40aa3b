"""README pictures of the paper's inner methods, made from tiny models trained here on toy tasks (CPU, ~1–2 min).

* ``docs/figures/attnlrp_heatmap.png``: Meta-AttnLRP of a 2-layer Llama trained to answer "positive" /
  "negative" for short reviews with negation ("the movie was not very bad" -> positive). f = log p(positive)
  − log p(negative); cell (i, j) = how word j moves the AttnLRP relevance of word i.
* ``docs/figures/grad_eclip_patch_maps.png``: Meta-Grad-ECLIP patch maps of a tiny CLIP trained
  contrastively on images with coloured squares and captions naming the colours: each word's map of how it
  moves every patch's Grad-ECLIP score.

    python benchmarks/inner_figures.py [--steps-lm 200] [--steps-clip 800] [--out docs/figures]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import AutoConfig, AutoModelForCausalLM, CLIPConfig, CLIPImageProcessor, CLIPModel, PreTrainedTokenizerFast

import metagame
from metagame.domains.encoders.entry import explain_vision
from metagame.viz import heatmap, image_overlay

OUT = os.path.join(os.path.dirname(__file__), "..", "docs", "figures")

# ------------------------------------------------------------------------------------------------ language model
NOUNS = ["movie", "film", "story", "plot", "food", "service"]
POS = ["good", "great", "fun", "nice"]
NEG = ["bad", "boring", "awful", "dull"]
LM_WORDS = ["the", "was", "is", "not", "very", "really", "positive", "negative"] + NOUNS + POS + NEG
SPECIALS = ["<pad>", "<unk>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|end|>"]
TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def lm_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {t: i for i, t in enumerate(SPECIALS + LM_WORDS)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
                                  eos_token="</s>", additional_special_tokens=SPECIALS[4:])
    tok.chat_template = TEMPLATE
    return tok


def review(rng: np.random.Generator) -> tuple[str, str]:
    """'the <noun> was [not] [very] <adjective>' and its label (negation flips the adjective)."""
    positive = rng.random() < 0.5
    adj = rng.choice(POS if positive else NEG)
    neg = rng.random() < 0.5
    words = ["the", rng.choice(NOUNS), rng.choice(["was", "is"])] + (["not"] if neg else [])
    words += [rng.choice(["very", "really"])] if rng.random() < 0.4 else []
    return " ".join(words + [adj]), "positive" if positive != neg else "negative"


def train_lm(steps: int, seed: int = 0):
    tok = lm_tokenizer()
    cfg = AutoConfig.for_model("llama", vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                               bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    rng = np.random.default_rng(seed)
    for step in range(steps):
        batch = [review(rng) for _ in range(64)]
        seqs = []
        for prompt, label in batch:
            text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
            seqs.append(tok(text, add_special_tokens=False)["input_ids"] + [tok.convert_tokens_to_ids(label)])
        width = max(map(len, seqs))
        ids = torch.full((len(seqs), width), tok.pad_token_id)
        mask = torch.zeros_like(ids)
        for r, s in enumerate(seqs):  # left padding: the answer token is always last
            ids[r, width - len(s):] = torch.as_tensor(s)
            mask[r, width - len(s):] = 1
        pos = (mask.cumsum(1) - 1).clamp(min=0)
        logits = model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=pos[:, :-1]).logits[:, -1]
        loss = torch.nn.functional.cross_entropy(logits, ids[:, -1])
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"LM trained {steps} steps, last loss {loss.item():.3f}")
    return model.eval(), tok


# ------------------------------------------------------------------------------------------------ CLIP
COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (40, 70, 220), "yellow": (230, 210, 40)}
CLIP_WORDS = ["a", "and", "square", "squares", "on", "grey"] + list(COLOURS)


def clip_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {"<unk>": 0, "<pad>": 1, "<bos>": 2, "<eos>": 3}
    for w in CLIP_WORDS:
        vocab[w] = len(vocab)
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.post_processor = processors.TemplateProcessing(single="<bos> $A <eos>", special_tokens=[("<bos>", 2), ("<eos>", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", pad_token="<pad>", bos_token="<bos>", eos_token="<eos>")


def squares_image(rng: np.random.Generator, colours: list[str], cells: list[tuple[int, int]]) -> np.ndarray:
    """32×32 grey noise with a 16×16 square of each colour at the given 2×2-cell positions."""
    img = (120 + 25 * rng.standard_normal((32, 32, 3))).clip(0, 255)
    for colour, (r, c) in zip(colours, cells):
        img[16 * r : 16 * r + 16, 16 * c : 16 * c + 16] = COLOURS[colour]
    return img.astype(np.uint8)


def scene(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    k = 1 + int(rng.random() < 0.6)
    colours = list(rng.choice(list(COLOURS), size=k, replace=False))
    cells = [tuple(x) for x in rng.permutation([(0, 0), (0, 1), (1, 0), (1, 1)])[:k]]
    caption = f"a {colours[0]} square" if k == 1 else f"a {colours[0]} and {colours[1]} square"
    return squares_image(rng, colours, cells), caption


def train_clip(steps: int, seed: int = 0):
    tok = clip_tokenizer()
    text = dict(vocab_size=len(tok), hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=12, bos_token_id=2, eos_token_id=3, pad_token_id=1)
    vision = dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8)
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=32))
    proc = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    mean = torch.tensor(proc.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(proc.image_std).view(1, 3, 1, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    rng = np.random.default_rng(seed)
    for step in range(steps):
        images, captions = zip(*[scene(rng) for _ in range(64)])
        pix = (torch.as_tensor(np.stack(images)).permute(0, 3, 1, 2).float() / 255 - mean) / std
        enc = tok(list(captions), padding=True, return_tensors="pt")
        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], pixel_values=pix)
        labels = torch.arange(len(images))
        loss = (torch.nn.functional.cross_entropy(out.logits_per_image, labels)
                + torch.nn.functional.cross_entropy(out.logits_per_text, labels)) / 2
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"CLIP trained {steps} steps, last loss {loss.item():.3f}")
    return model.eval(), proc, tok


# ------------------------------------------------------------------------------------------------ main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps-lm", type=int, default=200)
    ap.add_argument("--steps-clip", type=int, default=800)
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))

    t = time.perf_counter()
    lm, tok = train_lm(args.steps_lm)
    with tempfile.TemporaryDirectory() as tmp:  # saved and reloaded like a user's checkpoint
        lm.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        prompt = "the movie was not very bad"
        res = metagame.explain_lm(tmp, prompt, "positive", alternative="negative", method="attnlrp", dtype="float64")
    print(f"Meta-AttnLRP: f = log p(positive) - log p(negative) = {res.context['value_full']:.3f}; first order "
          + ", ".join(f"{p} {v:+.2f}" for p, v in zip(res.players, res.first_order)))
    heatmap(res, title=f"Meta-AttnLRP, toy Llama: '{prompt}' → positive", save=os.path.join(args.out, "attnlrp_heatmap.png"))

    clip, proc, ctok = train_clip(args.steps_clip)
    image = squares_image(np.random.default_rng(7), ["red", "blue"], [(0, 0), (1, 1)])
    res = explain_vision(clip, image, "a red and blue square", image_processor=proc, tokenizer=ctok, mode="patch_maps",
                         method="grad_eclip")
    print(f"Meta-Grad-ECLIP: f = {res.context['value_full']:.3f}; word scores "
          + ", ".join(f"{p} {v:+.2f}" for p, v in zip(res.players, res.first_order)))
    image_overlay(res, save=os.path.join(args.out, "grad_eclip_patch_maps.png"))
    print(f"wrote {args.out}/attnlrp_heatmap.png and grad_eclip_patch_maps.png in {time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()
