"""Generative and classic autoencoders. Importing this package registers their architectures.

classic.py   undercomplete (linear = PCA, conv), sparse, denoising, contractive autoencoders
vae.py       VAE, beta-VAE (weight, warm-up, capacity), two-level hierarchical VAE
vqvae.py     VQ-VAE (EMA codebook, dead-code revival) and its autoregressive prior
frechet.py   the small classifier whose features score samples (a Fréchet distance; not Inception FID)
nets.py      the conv trunk they share: the backbone with its skips cut
"""

from aetools.generative.classic import AEConfig, Autoencoder
from aetools.generative.frechet import ClassifierConfig, FashionClassifier
from aetools.generative.vae import VAE, HierarchicalVAE, VAEConfig
from aetools.generative.vqvae import VQVAE, VQVAEConfig

__all__ = [
    "VAE",
    "VQVAE",
    "AEConfig",
    "Autoencoder",
    "ClassifierConfig",
    "FashionClassifier",
    "HierarchicalVAE",
    "VAEConfig",
    "VQVAEConfig",
]
