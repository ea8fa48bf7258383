"""A timm-style model registry: every trainable network is created by name from a plain config.

The config is a dataclass; `dataclasses.asdict(model.config)` is what the weights file stores, so a
`.safetensors` file alone is enough to rebuild its network (see `aetools.weights`).

A leaf: the model families register into it (`@register_model`) and it imports none of them.
`aetools.models` imports the families and is where callers create models from.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from torch import nn

_MODELS: dict[str, tuple[type[nn.Module], type]] = {}


def register_model(arch: str, config_cls: type) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: `@register_model("denoise-unet", DenoiseConfig)`."""

    def wrap(cls: type[nn.Module]) -> type[nn.Module]:
        if arch in _MODELS:
            raise ValueError(f"model architecture {arch!r} registered twice")
        _MODELS[arch] = (cls, config_cls)
        cls.arch = arch
        return cls

    return wrap


def list_models() -> list[str]:
    return sorted(_MODELS)


def config_from_dict(arch: str, values: dict[str, Any]):
    if arch not in _MODELS:
        raise KeyError(f"unknown model architecture {arch!r}; known: {', '.join(sorted(_MODELS))}")
    config_cls = _MODELS[arch][1]
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = set(values) - set(fields)
    if unknown:
        raise KeyError(f"{arch}: unknown config keys {sorted(unknown)}")
    # JSON turns tuples into lists; give tuple-typed fields their tuples back.
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return config_cls(**fixed)


def config_defaults(arch: str) -> dict[str, Any]:
    """The settings of an architecture's config and their defaults: what `aetools train --set` may change."""
    if arch not in _MODELS:
        raise KeyError(f"unknown model architecture {arch!r}; known: {', '.join(sorted(_MODELS))}")
    return {f.name: getattr(_MODELS[arch][1](), f.name) for f in dataclasses.fields(_MODELS[arch][1])}


def create_model(arch: str, **overrides: Any) -> nn.Module:
    """Build a freshly initialised network: `create_model("denoise-unet", widths=(16, 32))`."""
    config = config_from_dict(arch, overrides)
    return _MODELS[arch][0](config)


def model_config_dict(model: nn.Module) -> dict[str, Any]:
    """The model's config as it reads back from JSON (tuples become lists), for storing and comparing."""
    return json.loads(json.dumps(dataclasses.asdict(model.config)))
