"""Encoders: text pairs (bi-encoders and cross-encoders; players are the words of both texts, f their cosine
similarity or score) and CLIP/SigLIP image–text pairs (players are image patches and caption words); Grad-ECLIP is
this domain's own method. Entry points: :func:`metagame.explain_text_pair`, :func:`metagame.explain_vision`;
commands: ``metagame similarity``, ``metagame vision``."""

from .. import lazy_exports

_NAMES = {"GradECLIP": "grad_eclip", "PatchMapsModel": "patch_maps", "TextPairModel": "text_pair",
          "TwoTowerModel": "two_tower", "VisionLanguageModel": "vision"}
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
__all__ = sorted(_NAMES)
