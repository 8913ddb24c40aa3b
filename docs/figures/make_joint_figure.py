"""Re-make docs/figures/joint_cross_blocks.png: words and attention heads of one model in one game.

    python docs/figures/make_joint_figure.py [--steps 300]

A 2-layer, 4-head Llama is trained here (CPU, one to three minutes) to answer "positive" / "negative" for short reviews with
negation ("the movie was not bad" -> positive; the toy task of benchmarks/inner_figures.py). The players are the 5
prompt words and the 8 attention heads; f = log p(positive) − log p(negative); the inner method is the Shapley value
(exact, 2^13 coalitions, word masking and head ablation in the same forward passes). The picture shows the two cross
blocks: head → word (how each head moves each word's attribution) and word → head.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from inner_figures import train_lm  # noqa: E402

import metagame  # noqa: E402
from metagame.viz.plots import cross_blocks_figure, save_figure  # noqa: E402

PROMPT = "the movie was not bad"


def main(steps: int = 300) -> Path:
    model, tok = train_lm(steps)
    res = metagame.explain_lm(model, PROMPT, "positive", alternative="negative", tokenizer=tok, components="heads",
                              method="shapley")
    nw = res.player_kinds.count("word")
    print(f"f(x) = {res.context['value_full']:.3f}; first-order φ of the words {dict(zip(res.players[:nw], res.first_order[:nw].round(3)))}")
    fig = cross_blocks_figure(res, title="words × heads of a toy negation model · inner Shapley · f = log p(positive) − log p(negative)")
    return save_figure(fig, ROOT / "docs" / "figures" / "joint_cross_blocks.png", dpi=90)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps of the toy model (default 300)")
    print(main(parser.parse_args().steps))
