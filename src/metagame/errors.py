"""Exceptions raised by metagame. Every message says what went wrong and how to fix it."""

from __future__ import annotations

from typing import Any, get_args


class MetagameError(ValueError):
    """Bad input or an impossible request; the message names the fix."""


class ModelOutputError(MetagameError):
    """The model returned something metagame cannot use (wrong shape, NaN/inf)."""


class NotDifferentiableError(MetagameError):
    """A gradient method was asked of a model that does not propagate gradients."""


class MissingCapabilityError(MetagameError):
    """A method needs an optional adapter capability (:mod:`metagame.models.contract`) the adapter does not provide."""


def one_of(values: Any) -> str:
    """The values of a ``Literal`` (or a sequence of values) as an error message lists them: ``'a', 'b' or 'c'``.

    Error messages that list an option's choices read them from its ``Literal`` through this, so the choices are
    written once.
    """
    listed = [repr(v) for v in (get_args(values) or values)]
    return listed[0] if len(listed) == 1 else f"{', '.join(listed[:-1])} or {listed[-1]}"
