"""The domains: one package per kind of model, each holding its adapter, its own methods, its entry point, its
command and its pictures, registered in :data:`DOMAINS` (the one table the core reads, lazily).

=============  =======================================================================================
domain         what it explains
=============  =======================================================================================
``tensors``    tensor callables and set functions (:func:`metagame.meta_attributions`)
``lm``         causal language models: words of a prompt → the answer's log-probability (AttnLRP)
``encoders``   text pairs (bi-encoders, cross-encoders) and CLIP/SigLIP image–text pairs (Grad-ECLIP)
``diffusion``  diffusion transformers through ConceptAttention maps
``components`` attention heads, MLP neurons and layers of a torch model
``data``       training points (KNN-Shapley, gradient influence, retraining games)
``hf``         Hugging Face loading shared by the text and vision domains (safetensors, GGUF, offline hub)
=============  =======================================================================================

The core (players, solvers, games, generic methods, run, results, viz, evaluate, the CLI) imports a domain only
through this table, by module path, when a name of that domain is first used.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class Domain:
    """What one domain registers. Every value is a module path (``"metagame.domains.x.y"``) or a
    ``"module:attribute"`` reference, imported on first use.

    Attributes:
        name: the domain's package name under :mod:`metagame.domains`.
        entry_points: public ``explain_*`` functions, each ``name -> "module"`` (``metagame.<name>``).
        methods: first-order methods made for this domain, ``method name -> "module:Class"``.
        commands: CLI commands, ``command -> "module"`` (a module with ``HELP``, ``DESCRIPTION``,
            ``add_arguments(parser)`` and ``run(args)``).
        pictures: ``"module:function"``, ``function(result) -> {name: Figure}`` adding this domain's pictures to
            :func:`metagame.viz.default_figures` (an empty dict when the result is not this domain's).
        demos: ``metagame demo <kind>`` demos on bundled real models, ``kind -> "module"`` (a module with
            ``METHOD``, ``SUMMARY``, ``add_arguments(parser)``, ``flags(args)`` and ``run(args)``).
        rebuild: adapter factories that rebuild a saved result from its stored recipe (``metadata["recipe"]``, see
            :meth:`metagame.run.backend.AdapterRecipe.to_json`), ``factory name -> "module:function"``; each takes
            the model name/path as its first argument (what ``rebuild_adapter(model=...)`` replaces).
    """

    name: str
    entry_points: Mapping[str, str] = field(default_factory=dict)
    methods: Mapping[str, str] = field(default_factory=dict)
    commands: Mapping[str, str] = field(default_factory=dict)
    pictures: str | None = None
    demos: Mapping[str, str] = field(default_factory=dict)
    rebuild: Mapping[str, str] = field(default_factory=dict)


def _m(domain: str, module: str) -> str:
    return f"metagame.domains.{domain}.{module}"


#: every domain, in the order commands and pictures are listed
DOMAINS: tuple[Domain, ...] = (
    Domain(
        "tensors",
        entry_points={"meta_attributions": _m("tensors", "entry"), "attribute": _m("tensors", "entry"),
                      "shapley_taylor": _m("tensors", "entry")},
    ),
    Domain(
        "lm",
        entry_points={"explain_lm": _m("lm", "entry")},
        methods={"attnlrp": _m("lm", "attnlrp") + ":AttnLRP"},
        commands={"lm": _m("lm", "command")},
        demos={"lm": _m("lm", "demo")},
        rebuild={"causal_lm": _m("lm", "adapter") + ":CausalLM"},
    ),
    Domain(
        "encoders",
        entry_points={"explain_text_pair": _m("encoders", "entry"), "explain_vision": _m("encoders", "entry")},
        methods={"grad_eclip": _m("encoders", "grad_eclip") + ":GradECLIP"},
        commands={"similarity": _m("encoders", "similarity_command"), "vision": _m("encoders", "vision_command")},
        demos={"similarity": _m("encoders", "demo")},
        rebuild={"text_pair": _m("encoders", "entry") + ":text_pair_adapter",
                 "vision": _m("encoders", "entry") + ":vision_adapter"},
    ),
    Domain(
        "diffusion",
        entry_points={"explain_diffusion": _m("diffusion", "entry")},
        methods={"concept_attention": _m("diffusion", "concept_attention") + ":ConceptAttention"},
        commands={"diffusion": _m("diffusion", "command")},
        pictures=_m("diffusion", "pictures") + ":diffusion_figures",
    ),
    Domain(
        "components",
        entry_points={"explain_components": _m("components", "entry")},
    ),
    Domain(
        "data",
        entry_points={"explain_data": _m("data", "entry"), "explain_feature_data": _m("data", "entry")},
        methods={"knn_shapley": _m("data", "methods") + ":KNNShapley",
                 "gradient_influence": _m("data", "methods") + ":GradientInfluence"},
    ),
    Domain("hf"),
)


def resolve(reference: str) -> Any:
    """The object a ``"module:attribute"`` reference names (the module itself without ``:``)."""
    module, _, attribute = reference.partition(":")
    mod = importlib.import_module(module)
    return getattr(mod, attribute) if attribute else mod


def lazy_exports(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for a domain package whose public ``names`` (``name -> submodule``) are imported on
    first use, so that importing one module of a domain (its method, for the registry) loads nothing else."""

    def getattr_(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{names[name]}"), name)

    return getattr_, lambda: sorted(names)


def _merged(what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for domain in DOMAINS:
        for key, ref in getattr(domain, what).items():
            if key in out:
                raise RuntimeError(f"two domains register {what[:-1]} {key!r}")
            out[key] = ref
    return out


def entry_points() -> dict[str, str]:
    """``explain_*`` name -> module, over every domain."""
    return _merged("entry_points")


def domain_methods() -> dict[str, str]:
    """Method name -> ``"module:Class"``, over every domain."""
    return _merged("methods")


def domain_commands() -> dict[str, str]:
    """CLI command -> module, over every domain."""
    return _merged("commands")


def domain_demos() -> dict[str, str]:
    """Demo kind -> module, over every domain."""
    return _merged("demos")


def rebuild_factories() -> dict[str, str]:
    """Recipe factory name -> ``"module:function"``, over every domain."""
    return _merged("rebuild")


def picture_hooks() -> list[Callable[[Any], dict]]:
    """The domains' picture functions (imported)."""
    return [resolve(d.pictures) for d in DOMAINS if d.pictures]


__all__ = ["DOMAINS", "Domain", "domain_commands", "domain_demos", "domain_methods", "entry_points", "lazy_exports", "picture_hooks",
           "rebuild_factories", "resolve"]
