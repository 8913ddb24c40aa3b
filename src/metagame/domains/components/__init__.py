"""Model components: players are attention heads, MLP neurons or layers of a torch model, switched by gates on
their outputs (ablation or attribution patching). Entry point: :func:`metagame.explain_components`; the
``components=`` option of the word entry points (:mod:`metagame.domains.components.extension`)."""

from .. import lazy_exports

_NAMES = {"ComponentModel": "adapter", "ComponentOptions": "options"}
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
__all__ = sorted(_NAMES)
