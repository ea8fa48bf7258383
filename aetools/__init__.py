"""aetools: convolutional autoencoders with skip connections that do jobs on images.

    import aetools
    clean = aetools.denoise(pil_image)   # or a numpy array, or a path

The API functions import torch on first use, so `import aetools` (and `aetools --help`) stay fast.
"""

__version__ = "0.1.0"

_API = ("colorize", "denoise", "find_duplicates", "hash_code", "hash_index", "hash_search", "inpaint", "upscale")


def __getattr__(name: str):
    if name in _API:
        from aetools import api

        return getattr(api, name)
    raise AttributeError(f"module 'aetools' has no attribute {name!r}")


__all__ = ["__version__", *_API]
