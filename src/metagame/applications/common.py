"""The step every application entry point ends with: build the adapter from the keywords it takes, then
:func:`metagame.explain` with the run options (the fields of :class:`~metagame.run.RunOptions`)."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

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


def build_adapter(factory: Callable[..., ModelAdapter], entry: str, /, *args: Any, **kwargs: Any) -> ModelAdapter:
    """``factory(*args, **kwargs)`` with an error naming the valid options when a keyword is unknown.

    ``exact_max_players`` is accepted by every entry point and set on the built adapter; ``adapter.recipe`` records
    the call (:class:`~metagame.run.backend.AdapterRecipe`), so Ray workers build their own copy from it.
    """
    limit = kwargs.pop("exact_max_players", None)
    accepted = adapter_options(factory)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise MetagameError(
            f"{entry} got unknown option(s) {unknown}. Its options are: {', '.join(accepted[len(args):])}, "
            f"exact_max_players; and the run options: {', '.join(RunOptions.names())}"
        )
    adapter = factory(*args, **kwargs)
    if limit is not None:
        adapter.exact_max_players = int(limit)
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
    ``components=``) applied to it; ``options`` holds no run options."""
    rest = dict(options)
    limit = rest.pop("exact_max_players", None)
    names, extend = extension if extension is not None else ((), None)
    extra = {k: rest.pop(k) for k in names if k in rest}
    adapter = build_adapter(factory, entry, *args, **rest)
    if extend is not None:
        extended = extend(adapter, extra)
        if extended is not adapter:  # Ray workers build the base adapter and extend it the same way
            extended.recipe = adapter.recipe.extended(extend, extra)
        adapter = extended
    if limit is not None:
        adapter.exact_max_players = int(limit)
    return adapter


__all__ = ["Extension", "adapter_options", "application_of", "build_adapter", "build_extended", "check_texts",
           "explain_application"]
