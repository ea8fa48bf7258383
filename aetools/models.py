"""Every network of the project, by name (timm's layout: the families register into `nn.registry`,
this module imports them all and is where models are created from).

    from aetools.models import create_model, list_models
    net = create_model("denoise-unet", widths=(16, 32))
"""

from __future__ import annotations

import aetools.generative  # noqa: F401  (registers ae, vae, hvae, vqvae, classifier)
import aetools.heads  # noqa: F401  (registers the task heads)
from aetools.nn.registry import (
    config_defaults,
    config_from_dict,
    create_model,
    list_models,
    model_config_dict,
    register_model,
)

__all__ = ["config_defaults", "config_from_dict", "create_model", "list_models", "model_config_dict", "register_model"]
