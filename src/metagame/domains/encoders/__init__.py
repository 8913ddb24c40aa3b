"""Encoders: text pairs (bi-encoders and cross-encoders; players are the words of both texts, f their cosine
similarity or score) and CLIP/SigLIP image–text pairs (players are image patches and caption words); Grad-ECLIP is
this domain's own method. Entry points: :func:`metagame.explain_text_pair`, :func:`metagame.explain_vision`;
commands: ``metagame similarity``, ``metagame vision``."""

from .grad_eclip import GradECLIP
from .patch_maps import PatchMapsModel
from .text_pair import TextPairModel
from .two_tower import TwoTowerModel
from .vision import VisionLanguageModel

__all__ = ["GradECLIP", "PatchMapsModel", "TextPairModel", "TwoTowerModel", "VisionLanguageModel"]
