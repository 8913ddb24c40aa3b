"""Exceptions raised by metagame. Every message says what went wrong and how to fix it."""

from __future__ import annotations


class MetagameError(ValueError):
    """Bad input or an impossible request; the message names the fix."""


class ModelOutputError(MetagameError):
    """The model returned something metagame cannot use (wrong shape, NaN/inf)."""


class NotDifferentiableError(MetagameError):
    """A gradient method was asked of a model that does not propagate gradients."""


class MissingCapabilityError(MetagameError):
    """A method needs an optional adapter capability (:mod:`metagame.models.contract`) the adapter does not provide."""
