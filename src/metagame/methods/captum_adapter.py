"""Any Captum attribution method as the inner method.

Two ways to pass one:

* an **instance** built on your own model, e.g. ``captum.attr.IntegratedGradients(f)`` or
  ``captum.attr.DeepLift(net)``: it is called on the masked inputs x_S with ``baselines=b``
  (only for adapters whose continuous space is the model's own input, i.e. tensor models);
* a **class**, e.g. ``captum.attr.IntegratedGradients``: metagame builds it on the adapter's
  differentiable forward (embeddings, pixels, gates), so it works for every adapter.

Coordinate attributions are summed per player.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch

from ..errors import MetagameError
from ..models.base import ModelAdapter
from ..models.contract import NativeInput, TorchModule, provides, require_capability
from .base import AttributionMethod


def is_captum_method(obj: Any) -> bool:
    """True for Captum attribution instances or classes."""
    cls = obj if inspect.isclass(obj) else type(obj)
    return any(c.__module__.startswith("captum.attr") and c.__name__ == "Attribution" for c in cls.__mro__)


#: attributes of Captum objects that are not settings: the forward function (fingerprinted by its weights and its
#: outputs), Captum's own gradient function and hook handles (run-time state)
_NOT_SETTINGS = ("forward_func", "model", "gradient_func", "forward_handles", "backward_handles")


def captum_settings(obj: Any) -> dict[str, Any]:
    """A Captum object (or class) as data: its class, its constructor settings and the methods it wraps (recursively,
    e.g. ``NoiseTunnel(Saliency(f))``); values that are not plain data (a layer, a function) by their type name."""
    cls = obj if inspect.isclass(obj) else type(obj)
    out: dict[str, Any] = {"class": f"{cls.__module__}.{cls.__qualname__}"}
    if inspect.isclass(obj):
        return out
    for name, value in sorted(vars(obj).items()):
        if name in _NOT_SETTINGS or name.startswith("__"):
            continue
        key = name.lstrip("_")
        if is_captum_method(value):
            out[key] = captum_settings(value)
        elif isinstance(value, (int, float, str, bool, type(None))):
            out[key] = value
        else:
            out[key] = type(value).__qualname__
    return out


class AdapterModule(torch.nn.Module):
    """``nn.Module`` view of an adapter's differentiable forward: ``forward(z, *extra) -> [n]``."""

    def __init__(self, model: ModelAdapter):
        super().__init__()
        self.adapter = model
        if provides(model, TorchModule):
            self.inner = model.model  # registered so hook-based methods (DeepLift, LRP) see its layers

    def forward(self, z, *extra):
        if len(extra) == 0:
            packed = None
        elif len(extra) == 1:
            packed = extra[0]
        else:
            packed = tuple(extra)
        return self.adapter.forward(z, packed)


def _settings_values(obj: Any) -> Any:
    """Every setting of a Captum object by value (wrapped methods recursively), for fingerprints."""
    if inspect.isclass(obj):
        return f"{obj.__module__}.{obj.__qualname__}"
    out: dict[str, Any] = {"class": f"{type(obj).__module__}.{type(obj).__qualname__}"}
    for name, value in vars(obj).items():
        if name in _NOT_SETTINGS or name.startswith("__"):
            continue
        out[name] = _settings_values(value) if is_captum_method(value) else value
    return out


class CaptumMethod(AttributionMethod):
    """Wraps a Captum attribution object or class; ``attribute_kwargs`` go to ``.attribute``."""

    family = "captum"
    needs_gradients = True

    def __init__(self, method: Any, /, **attribute_kwargs):  # positional-only: Captum's IG takes method=...
        if not is_captum_method(method):
            raise MetagameError(f"{method!r} is not a Captum attribution method (captum.attr.*)")
        self.method = method
        self.attribute_kwargs = attribute_kwargs
        cls = method if inspect.isclass(method) else type(method)
        self.name = f"captum.{cls.__name__}"
        accepted = inspect.signature(cls.attribute).parameters
        self._takes_baselines = "baselines" in accepted
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
            options = [p for p in accepted if p not in ("self", "inputs")]
            unknown = sorted(set(attribute_kwargs) - set(options))
            if unknown:
                raise MetagameError(
                    f"{cls.__name__}.attribute does not take {unknown}; pass method_kwargs from its options: {', '.join(options)}"
                )

    def params(self):
        kwargs = {k: (v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)) for k, v in self.attribute_kwargs.items()}
        return {"captum": captum_settings(self.method), **kwargs}

    def fingerprint_parts(self, model: ModelAdapter, probes: np.ndarray) -> dict[str, Any]:
        """The object's settings and wrapped methods (values, also those that are not plain data, e.g. a layer's
        weights), the attribute keywords (values), and for an instance its forward function: the weights it reads
        and its outputs at the checkpoint's probe inputs (behaviour, as for models)."""
        parts: dict[str, Any] = {"settings": _settings_values(self.method), "attribute_kwargs": self.attribute_kwargs}
        if not inspect.isclass(self.method):
            forward = self.method.forward_func
            parts["forward_func"] = forward
            if provides(model, NativeInput):
                z, _, _ = model.embed(probes)
                with torch.no_grad():
                    out = forward(z)
                parts["forward_probes"] = out[0] if isinstance(out, tuple) else out
        return parts

    def _instance(self, model: ModelAdapter):
        """The Captum object for this adapter: the user's instance (on their own forward), or the class built on the
        adapter's differentiable forward (cheap; built per call, so nothing is cached by object identity)."""
        if not inspect.isclass(self.method):
            require_capability(
                model, NativeInput, "a Captum instance",
                f"the instance is bound to your own forward function, but {type(model).__name__} explains in its own "
                f"space; pass the class instead (e.g. method=captum.attr.{type(self.method).__name__})")
            return self.method
        return self.method(AdapterModule(model))

    def coalitions_per_pass(self, model: ModelAdapter) -> int:
        """``batch_size // n_steps``: the coalitions handed to the Captum method at once."""
        return max(1, model.batch_size // int(self.attribute_kwargs.get("n_steps", 1)))

    def attribute(self, model: ModelAdapter, coalitions: np.ndarray) -> torch.Tensor:
        coalitions = np.asarray(coalitions, dtype=bool)
        obj = self._instance(model)
        per = self.coalitions_per_pass(model)
        parts = []
        for start in range(0, len(coalitions), per):
            chunk = coalitions[start : start + per]
            z, zb, extra = model.embed(chunk)
            kwargs = dict(self.attribute_kwargs)
            if self._takes_baselines and "baselines" not in kwargs:
                kwargs["baselines"] = zb
            if extra is not None and inspect.isclass(self.method):
                kwargs["additional_forward_args"] = extra if isinstance(extra, tuple) else (extra,)
            with torch.enable_grad():
                attr = obj.attribute(z.detach().clone().requires_grad_(True), **kwargs)
            if isinstance(attr, tuple):
                attr = attr[0]
            parts.append(model.reduce(attr.detach().to(z.dtype)))
        return torch.cat(parts)
