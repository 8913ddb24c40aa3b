"""Causal language models: players are the words (or tokens) of a prompt, f is the log-probability of the answer
(or the margin over an alternative); AttnLRP is this domain's own method. Entry point:
:func:`metagame.explain_lm`; command: ``metagame lm``."""

from .adapter import CausalLM
from .attnlrp import AttnLRP, attnlrp_rules

__all__ = ["AttnLRP", "CausalLM", "attnlrp_rules"]
