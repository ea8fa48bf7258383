"""Task heads: small modules on top of the shared backbone. Importing this package registers them."""

from aetools.heads.colorize import ColorizeConfig, ColorizeNet
from aetools.heads.denoise import DenoiseConfig, DenoiseNet
from aetools.heads.hash import HashConfig, HashNet
from aetools.heads.inpaint import InpaintConfig, InpaintNet
from aetools.heads.superres import SuperResConfig, SuperResNet

__all__ = [
    "ColorizeConfig",
    "ColorizeNet",
    "DenoiseConfig",
    "DenoiseNet",
    "HashConfig",
    "HashNet",
    "InpaintConfig",
    "InpaintNet",
    "SuperResConfig",
    "SuperResNet",
]
