"""Default inner methods of the entry points, chosen by measurement (README, "Defaults").

Text pairs: the Shapley value. On 15 MiniLM sentence pairs with hand-aligned words (``benchmarks/evaluation.py``)
Meta-SV had recall@15% 0.93 and R² 0.55 / 0.45 against Meta-IG's 0.26 and −0.26 / 0.09; on the alignment check
(``benchmarks/encoders.py``) it pointed to the counterpart word 94% of the time against 35% for IG; and exact
Meta-SV needs only the 2^|A| + 2^|B| encoder rows of the distinct halves, where exact Meta-IG needs a forward-mode
product per half, quadrature step and present word (measured in README: 6 + 6 words, see "Defaults").
"""

from __future__ import annotations

#: inner method of ``explain_text_pair``, ``metagame similarity`` and ``metagame demo``
TEXT_PAIR_DEFAULT_METHOD = "shapley"

__all__ = ["TEXT_PAIR_DEFAULT_METHOD"]
