"""Causal language models: players are the words (or tokens) of a prompt, f is the log-probability of the answer
(or the margin over an alternative); AttnLRP is this domain's own method. Entry point:
:func:`metagame.explain_lm`; command: ``metagame lm``."""

from .. import lazy_exports

_NAMES = {"CausalLM": "adapter", "AttnLRP": "attnlrp", "attnlrp_rules": "attnlrp"}
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
__all__ = sorted(_NAMES)
