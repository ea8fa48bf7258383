"""Sample quality in the features of a small Fashion-MNIST classifier: a Fréchet distance, and precision and
recall for distributions (Kynkäänniemi et al. 2019).

This is *not* the Inception FID (Heusel et al. 2017): there is no Inception network here (nothing is
downloaded) and Inception features are a poor fit for 28x28 grey clothes anyway. The recipe is the same,
in the 128-d penultimate layer of `FashionClassifier`, a small CNN trained with `aetools train classifier`
and shipped for this evaluation only:

    features of the samples ~ N(mu_1, S_1),  features of the real images ~ N(mu_2, S_2)   (fitted)
    FD = ||mu_1 - mu_2||^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))        (the Fréchet / 2-Wasserstein distance)

Numbers are comparable only with other numbers from the same classifier and sample counts; the floor is
the distance between two sets of real images (the training set vs the test set).

The Fréchet distance mixes two failures into one number. Precision and recall (`precision_recall`) separate
them, with each set's manifold estimated as the union of balls around its points, each ball's radius the
distance to the point's k-th nearest neighbour in its own set (k = 3):
    precision = share of the samples inside the real images' manifold     (are the samples realistic?)
    recall    = share of the real images inside the samples' manifold     (do the samples cover the data?)
Both depend on the set sizes: compare sets of equal size (the benchmark uses as many real images as samples).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aetools.nn.registry import register_model


@dataclass
class ClassifierConfig:
    """Args: channels, size: the images; widths: the two conv stages; features: the penultimate layer's width;
    classes: the number of labels."""

    channels: int = 1
    size: int = 28
    widths: tuple[int, ...] = (32, 64)
    features: int = 128
    classes: int = 10


@register_model("fashion-classifier", ClassifierConfig)
class FashionClassifier(nn.Module):
    """(conv3x3-BN-ReLU x2, max-pool) x 2 -> flatten -> linear -> ReLU (the features) -> dropout -> linear."""

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        layers, channels = [], config.channels
        for width in config.widths:
            for _ in range(2):
                layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
                channels = width
            layers.append(nn.MaxPool2d(2))
        self.convs = nn.Sequential(*layers)
        side = config.size // 2 ** len(config.widths)
        self.to_features = nn.Sequential(nn.Linear(channels * side * side, config.features), nn.ReLU(inplace=True))
        self.classify = nn.Sequential(nn.Dropout(0.3), nn.Linear(config.features, config.classes))

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) in [0, 1] -> (B, features)."""
        return self.to_features(self.convs(image - 0.5).flatten(1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """-> class logits (B, classes)."""
        return self.classify(self.features(image))


def classifier_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, labels)


@torch.no_grad()
def features(classifier: FashionClassifier, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """images (N, C, S, S) in [0, 1] -> the classifier's features (N, F), float64 on the CPU."""
    classifier.eval()
    device = next(classifier.parameters()).device
    parts = [classifier.features(images[i : i + batch].to(device)).cpu() for i in range(0, len(images), batch)]
    return torch.cat(parts).double()


def statistics(feats: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """features (N, F) -> (mean (F,), covariance (F, F)), float64."""
    x = feats.double().numpy()
    return x.mean(0), np.cov(x, rowvar=False)


def feature_statistics(
    classifier: FashionClassifier, images: torch.Tensor, batch: int = 500
) -> tuple[np.ndarray, np.ndarray]:
    """images (N, C, S, S) in [0, 1] -> (mean (F,), covariance (F, F)) of their features, float64."""
    return statistics(features(classifier, images, batch))


def knn_radii(points: torch.Tensor, k: int, chunk: int = 1000) -> torch.Tensor:
    """points (N, F) -> (N,) the distance from each point to its k-th nearest other point of the set."""
    if len(points) <= k:
        raise ValueError(f"{len(points)} points: the k-th nearest neighbour needs more than k = {k}")
    radii = []
    for i in range(0, len(points), chunk):
        d = torch.cdist(points[i : i + chunk], points)  # (c, N); each point's own distance 0 is the smallest
        radii.append(d.kthvalue(k + 1, dim=1).values)
    return torch.cat(radii)


def inside_any_ball(queries: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int = 1000):
    """-> (Q,) bool: whether each query lies within radii[j] of some centre j (the ball's edge included)."""
    inside = []
    for i in range(0, len(queries), chunk):
        inside.append((torch.cdist(queries[i : i + chunk], centres) <= radii).any(dim=1))
    return torch.cat(inside)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of `fake` features against `real` ones (N, F),
    each set's manifold the union of its k-NN balls -> (precision, recall), each in [0, 1]."""
    real, fake = real.double(), fake.double()
    precision = inside_any_ball(fake, real, knn_radii(real, k)).double().mean()
    recall = inside_any_ball(real, fake, knn_radii(fake, k)).double().mean()
    return float(precision), float(recall)


def frechet_distance(stats_a: tuple[np.ndarray, np.ndarray], stats_b: tuple[np.ndarray, np.ndarray]) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 sqrtm(S_a S_b)) between two fitted Gaussians."""
    from scipy import linalg

    (mu_a, cov_a), (mu_b, cov_b) = stats_a, stats_b
    with warnings.catch_warnings():  # a singular product (dead ReLU features) is handled below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(cov_a @ cov_b)
        if not np.isfinite(root).all():  # regularise, as the reference FID code does
            eps = 1e-6 * np.eye(len(cov_a))
            root = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    root = root.real  # the imaginary part is numerical noise
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root))
