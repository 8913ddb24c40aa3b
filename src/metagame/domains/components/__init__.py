"""Model components: players are attention heads, MLP neurons or layers of a torch model, switched by gates on
their outputs (ablation or attribution patching). Entry point: :func:`metagame.explain_components`."""

from .adapter import ComponentModel

__all__ = ["ComponentModel"]
