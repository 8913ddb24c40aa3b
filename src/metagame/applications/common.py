"""The step every application entry point ends with: build the adapter from the keywords it takes, then
:func:`metagame.explain` with the run options (the fields of :class:`~metagame.run.RunOptions`).

``exact_max_players`` (every entry point's keyword) is read in one place, :func:`exact_limit`, and set on the built
adapter in one place, :func:`build_extended`; each adapter class's ``exact_max_players`` attribute is its default.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

import numpy as np

from ..errors import MetagameError
from ..methods.registry import check_method_for
from ..models.base import ModelAdapter
from ..models.state import kept_as_given
from ..results.result import MetaAttribution
from ..run.backend import set_recipe
from ..run.explain import explain
from ..run.options import RunOptions, split_run_options


def adapter_options(factory: Callable[..., ModelAdapter]) -> list[str]:
    """The keyword options an adapter factory (a class or function) takes."""
    params = inspect.signature(factory).parameters.values()
    return [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


#: the keyword every entry point takes on top of its adapter's options: the most players explained exactly (default:
#: the adapter class's ``exact_max_players``)
EXACT_LIMIT = "exact_max_players"


def exact_limit(options: Mapping[str, Any], adapter_class: type[ModelAdapter] | None = None) -> int | None:
    """The ``exact_max_players`` override in an entry point's adapter options (checked), else ``adapter_class``'s
    default (None without a class): the one reading of the override, for :func:`build_extended` and for entry points
    that check the size before building their adapter.

    Raises:
        MetagameError: for an override that is not a positive integer.
    """
    limit = options.get(EXACT_LIMIT)
    if limit is None:
        return None if adapter_class is None else int(adapter_class.exact_max_players)
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise MetagameError(f"{EXACT_LIMIT} must be a positive integer (the most players explained exactly); got {limit!r}")
    return int(limit)


def build_adapter(factory: Callable[..., ModelAdapter], entry: str, /, *args: Any, **kwargs: Any) -> ModelAdapter:
    """``factory(*args, **kwargs)`` with an error naming the valid options when a keyword is unknown.

    ``exact_max_players`` is accepted by every entry point and set on the built adapter; ``adapter.recipe`` records
    the call (:class:`~metagame.run.backend.AdapterRecipe`), so Ray workers build their own copy from it.
    """
    return build_extended(factory, entry, args, kwargs)


def _construct(factory: Callable[..., ModelAdapter], entry: str, args: tuple, kwargs: dict[str, Any]) -> ModelAdapter:
    """``factory(*args, **kwargs)`` (no ``exact_max_players``), its recipe recorded."""
    accepted = adapter_options(factory)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise MetagameError(
            f"{entry} got unknown option(s) {unknown}. Its options are: {', '.join(accepted[len(args):])}, "
            f"{EXACT_LIMIT}; and the run options: {', '.join(RunOptions.names())}"
        )
    adapter = factory(*args, **kwargs)
    return set_recipe(adapter, factory, *args, **kwargs)  # Ray workers build their own copy from it


#: an optional extension of an entry point: (its extra keyword names, extend(adapter, those keywords) -> adapter)
Extension = tuple[tuple[str, ...], Callable[[ModelAdapter, dict], ModelAdapter]]


def check_texts(**texts: Any) -> None:
    """Refuse empty or non-string texts before any model loads."""
    for key, text in texts.items():
        if not isinstance(text, str):
            raise MetagameError(f"{key} must be a string; got {type(text).__name__}")
        if not text.strip():
            raise MetagameError(f"{key} is empty; pass a text with at least one word")


def application_of(entry: str, factory: Callable[..., ModelAdapter]) -> str:
    """The application an entry point serves (``explain_lm`` → ``"lm"``; ``meta_attributions`` → ``"tensor"``, or
    ``"set_function"`` for a set-function model), the key of the methods' ``applications``."""
    if entry == "meta_attributions":
        return "tensor" if getattr(factory, "differentiable", True) else "set_function"
    return entry.removeprefix("explain_")


def explain_application(
    factory: Callable[..., ModelAdapter],
    entry: str,
    args: tuple,
    method: Any,
    method_kwargs: dict | None,
    options: RunOptions | Mapping[str, Any] | None,
    kwargs: dict[str, Any],
    extension: Extension | None = None,
) -> MetaAttribution:
    """Split ``kwargs`` into run options, the ``extension``'s keywords (e.g. ``components=``) and adapter options,
    build the adapter (extended), run :func:`metagame.explain`.

    Run options are validated first, so a bad option fails before any model is loaded.
    """
    run, rest = split_run_options(kwargs)
    opts = RunOptions.build(options, **run)
    check_method_for(method, method_kwargs, application_of(entry, factory),
                     differentiable=getattr(factory, "differentiable", True))
    with kept_as_given(*args, method):  # every module the entry point was given is left exactly as given (models/state.py)
        adapter = build_extended(factory, entry, args, rest, extension)
        return explain(adapter, method, method_kwargs=method_kwargs, options=opts)


def build_extended(
    factory: Callable[..., ModelAdapter], entry: str, args: tuple, options: dict[str, Any],
    extension: Extension | None = None,
) -> ModelAdapter:
    """The adapter of one input: ``factory(*args, **adapter options)`` with the ``extension``'s keywords (e.g.
    ``components=``) applied to it, and the ``exact_max_players`` override (:func:`exact_limit`) set on the result;
    ``options`` holds no run options."""
    limit = exact_limit(options)
    rest = {k: v for k, v in options.items() if k != EXACT_LIMIT}
    names, extend = extension if extension is not None else ((), None)
    extra = {k: rest.pop(k) for k in names if k in rest}
    adapter = _construct(factory, entry, args, rest)
    if extend is not None:
        extended = extend(adapter, extra)
        if extended is not adapter:  # Ray workers build the base adapter and extend it the same way
            extended.recipe = adapter.recipe.extended(extend, extra)
        adapter = extended
    if limit is not None:  # on the final adapter: a joint game's own limit is the least of its parts' defaults
        adapter.exact_max_players = limit
    return adapter


__all__ = ["EXACT_LIMIT", "Extension", "adapter_options", "application_of", "build_adapter", "build_extended",
           "check_texts", "exact_limit", "explain_application"]
