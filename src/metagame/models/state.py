"""The user's torch modules, left exactly as given: one snapshot, one restore, one place.

Every entry point runs inside :func:`kept_as_given`: it snapshots the state of every ``torch.nn.Module`` it is
given (directly, inside a function's closure or globals, or as a pipeline's components), puts them in **eval
mode** for the run (Dropout off, BatchNorm on its running statistics, so the numbers do not depend on batch size or
composition and no buffer is updated), and on the way out (also on errors) restores what it snapshotted:

* each parameter's tensor (so values, dtype and device; a cast during the run is undone), ``requires_grad``
  and ``.grad``;
* the ``training`` flag of every submodule;
* every buffer's values, dtype and device (BatchNorm running statistics, position ids ...);
* the forward / backward (pre-)hooks of every submodule (hooks added during the run are removed);
* the attention implementation of every Hugging Face config (``config._attn_implementation_internal``).

:func:`module_state` is the comparable summary of all of this that the tests compare before and after a call.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import types
from typing import Any, Iterator

import torch

#: the hook dictionaries of a ``torch.nn.Module`` (those that exist in the installed torch version)
_HOOK_DICTS = (
    "_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs", "_backward_hooks", "_backward_pre_hooks", "_state_dict_hooks",
    "_load_state_dict_pre_hooks",
)


def torch_modules(*objs: Any) -> list[torch.nn.Module]:
    """The distinct top-level ``torch.nn.Module`` objects in ``objs``: modules themselves, modules a function reads
    (closure, named globals, bound object, recursively), a pipeline's module attributes (e.g. ``pipe.transformer``)
    and modules held by an adapter-like object's ``model`` / ``transformer`` / ``pipeline`` attributes."""
    found: dict[int, torch.nn.Module] = {}

    def visit(obj: Any, depth: int) -> None:
        if obj is None or depth > 4:
            return
        if isinstance(obj, torch.nn.Module):
            found.setdefault(id(obj), obj)
            return
        if isinstance(obj, (types.FunctionType, types.MethodType)):
            if isinstance(obj, types.MethodType):
                visit(obj.__self__, depth + 1)
                obj = obj.__func__
            for cell in obj.__closure__ or ():
                try:
                    visit(cell.cell_contents, depth + 1)
                except ValueError:  # an empty cell
                    continue
            for name in obj.__code__.co_names:
                value = obj.__globals__.get(name)
                if isinstance(value, (torch.nn.Module, types.FunctionType)):
                    visit(value, depth + 1)
            return
        if isinstance(obj, (list, tuple)):
            for v in obj:
                visit(v, depth + 1)
            return
        if isinstance(obj, (str, bytes, int, float, torch.Tensor)) or depth > 2:
            return
        for name in ("model", "transformer", "pipeline", "unet", "text_encoder", "text_encoder_2", "text_encoder_3",
                     "vae", "forward_func", "attribution_method", "method", "parts", "inner"):
            try:
                value = getattr(obj, name, None)
            except Exception:  # noqa: BLE001 - objects whose attribute access raises
                continue
            if value is not None and value is not obj:
                visit(value, depth + 1)

    for obj in objs:
        visit(obj, 0)
    # a module that is a submodule of another found one is covered by that one
    subs = {id(m) for top in found.values() for m in top.modules() if m is not top}
    return [m for k, m in found.items() if k not in subs]


def _configs(module: torch.nn.Module) -> list[Any]:
    out: dict[int, Any] = {}
    for m in module.modules():
        cfg = getattr(m, "config", None)
        if cfg is not None and hasattr(cfg, "_attn_implementation_internal"):
            out.setdefault(id(cfg), cfg)
            for sub in ("text_config", "vision_config"):
                inner = getattr(cfg, sub, None)
                if inner is not None and hasattr(inner, "_attn_implementation_internal"):
                    out.setdefault(id(inner), inner)
    return list(out.values())


class _Snapshot:
    """What :func:`kept_as_given` restores for one module tree (references to parameter tensors, copies of buffers)."""

    def __init__(self, module: torch.nn.Module):
        self.module = module
        self.params = [(p, p.data, p.requires_grad, p.grad) for p in module.parameters()]
        self.buffers = [(m, name, b, b.detach().clone()) for m in module.modules() for name, b in m._buffers.items()
                        if b is not None]
        self.training = [(m, m.training) for m in module.modules()]
        self.hooks = [(m, name, dict(getattr(m, name))) for m in module.modules() for name in _HOOK_DICTS
                      if isinstance(getattr(m, name, None), dict)]
        self.attn = [(cfg, cfg._attn_implementation_internal) for cfg in _configs(module)]

    def restore(self, tensors: bool = True) -> None:
        with torch.no_grad():
            for p, data, requires_grad, grad in self.params:
                if not tensors:
                    p.requires_grad_(requires_grad)
                    continue
                if p.data.data_ptr() != data.data_ptr() or p.dtype != data.dtype or p.device != data.device:
                    p.data = data
                p.requires_grad_(requires_grad)
                p.grad = grad
            for m, name, b, saved in self.buffers if tensors else ():
                current = m._buffers.get(name)
                if current is not b:
                    m._buffers[name] = b
                if b.dtype != saved.dtype or b.device != saved.device or b.shape != saved.shape:
                    b.data = saved
                elif not torch.equal(b, saved):
                    b.copy_(saved)
        for m, flag in self.training:
            m.training = flag
        for m, name, hooks in self.hooks:
            current = getattr(m, name)
            for key in [k for k in current if k not in hooks]:
                del current[key]
        for cfg, value in self.attn:
            cfg._attn_implementation_internal = value


@contextlib.contextmanager
def kept_as_given(*objs: Any, eval_mode: bool = True, tensors: bool = True) -> Iterator[list[torch.nn.Module]]:
    """Run a block on the modules in ``objs`` (see :func:`torch_modules`) in eval mode, then restore them exactly.

    Nested uses are cheap and safe: the outermost one restores the user's state. ``tensors=False`` keeps the
    parameters and buffers as the block left them (an adapter asked to cast a model with ``dtype=``/``device=``)
    and restores the rest.
    """
    modules = torch_modules(*objs)
    snapshots = [_Snapshot(m) for m in modules]
    try:
        if eval_mode:
            for m in modules:
                m.eval()
        yield modules
    finally:
        for s in snapshots:
            s.restore(tensors)


def keeps_models(init: Any) -> Any:
    """Decorator for an adapter's ``__init__``: the model it is given (first argument or ``model=``) is set up in
    eval mode and left as given (:func:`kept_as_given`) except for a cast the adapter was asked for (``dtype=``,
    ``device=``; the entry points undo that too); the signature is kept for option listing."""

    @functools.wraps(init)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        with kept_as_given(*args[:1], kwargs.get("model"), tensors=False):
            init(self, *args, **kwargs)

    return wrapper


def keeps_model_argument(func: Any) -> Any:
    """Decorator for a public function taking ``model`` (an adapter or game): the modules it holds run in eval mode
    and are left as given (:func:`kept_as_given`); signature and docstring kept."""
    signature = inspect.signature(func)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind_partial(*args, **kwargs)
        with kept_as_given(bound.arguments.get("model"), bound.arguments.get("adapter")):
            return func(*args, **kwargs)

    return wrapper


def module_state(module: torch.nn.Module) -> dict[str, Any]:
    """A comparable summary of everything :func:`kept_as_given` keeps: parameters (digest of values, dtype, device,
    requires_grad, grad), buffers (digest, dtype, device), training flags, hook counts and attention implementations."""

    def digest(t: torch.Tensor) -> str:
        t = t.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            t = t.view(torch.int16)
        return hashlib.sha256(t.numpy().tobytes()).hexdigest()[:16]

    return {
        "parameters": {n: (digest(p), str(p.dtype), str(p.device), p.requires_grad, None if p.grad is None else digest(p.grad))
                       for n, p in module.named_parameters()},
        "buffers": {n: (digest(b), str(b.dtype), str(b.device)) for n, b in module.named_buffers()},
        "training": {n: m.training for n, m in module.named_modules()},
        "hooks": {n: {h: len(getattr(m, h)) for h in _HOOK_DICTS if isinstance(getattr(m, h, None), dict)}
                  for n, m in module.named_modules()},
        "attn_implementation": [cfg._attn_implementation_internal for cfg in _configs(module)],
    }


__all__ = ["kept_as_given", "keeps_model_argument", "keeps_models", "module_state", "torch_modules"]
