"""Task heads: small modules on top of the shared backbone. Importing this package registers them."""

from aetools.heads.denoise import DenoiseConfig, DenoiseNet

__all__ = ["DenoiseConfig", "DenoiseNet"]
