"""Using a trained generative model on images: the pre/post-processing around the networks in this package.

Every model here has the same surface (see classic.py, vae.py, vqvae.py):
    encode(image (B, C, S, S) in [0, 1]) -> code        (a vector, or the VQ-VAE's continuous z_e grid)
    decode_image(code) -> image (B, C, S, S) in [0, 1]
    sample(n, generator) -> n new images                (AE: Gaussian fitted to its codes; VAE: the prior;
                                                          VQ-VAE: the learned prior over code grids)
What this module adds: any photo to the model's input (grey or colour, squared, resized), grids and strips,
traversals, and the latent scatter plot. Library code: it returns arrays and writes files, never prints.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aetools.data.io import ImageData, save_image

GENERATIVE_TASKS = ("ae", "vae", "hvae", "vqvae")


def load_generative(name_or_path: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    """A shipped generative model by name (e.g. "vae-fashion") or any of their .safetensors files."""
    from aetools.weights import load_model

    return load_model(name_or_path, GENERATIVE_TASKS, device)


def device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


# --------------------------------------------------------------------------------------------- images


def image_to_input(image: ImageData, model: nn.Module, invert: bool = False) -> torch.Tensor:
    """Any image -> the model's input (1, C, S, S) in [0, 1].

    Colour becomes grey (luminance, `skimage.color.rgb2gray`) for a grey model and grey becomes three equal
    channels for a colour one; transparent pixels become black. invert: 1 - x, for dark things on a light
    background (Fashion-MNIST is light on black). The image is then padded with black to a square (the
    shape is kept, as Fashion-MNIST's are) and resized to S x S with antialiasing."""
    from skimage.color import rgb2gray

    pixels = image.pixels
    if model.config.channels == 1 and pixels.shape[2] == 3:
        pixels = rgb2gray(pixels)[..., None]
    elif model.config.channels == 3 and pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    if invert:
        pixels = 1.0 - pixels
    if image.alpha is not None:
        pixels = pixels * image.alpha[..., None]
    x = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).permute(2, 0, 1)[None]
    h, w = x.shape[-2:]
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    x = F.pad(x, (left, side - w - left, top, side - h - top))
    size = model.config.size
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0, 1).to(device_of(model))


def tensor_to_image(x: torch.Tensor, invert: bool = False) -> ImageData:
    """(C, H, W) in [0, 1] -> ImageData (grey when C = 1)."""
    x = x.detach().float().clamp(0, 1).cpu()
    if invert:
        x = 1 - x
    return ImageData(np.ascontiguousarray(x.permute(1, 2, 0).numpy()))


def save_grid(images: torch.Tensor, path: str | Path, nrow: int, zoom: int = 1, overwrite: bool = False) -> None:
    """images (N, C, S, S) in [0, 1] -> one grid image (`torchvision.utils.make_grid`, 2-pixel gaps), each
    cell enlarged `zoom` times (nearest neighbour), written atomically."""
    from torchvision.utils import make_grid

    images = images.detach().float().clamp(0, 1).cpu()
    if zoom > 1:
        images = F.interpolate(images, scale_factor=zoom, mode="nearest")
    grid = make_grid(images, nrow=nrow, padding=2, pad_value=1.0)  # (3, H, W): grey is repeated
    if images.shape[1] == 1:
        grid = grid[:1]
    save_image(tensor_to_image(grid), path, overwrite=overwrite)


# ---------------------------------------------------------------------------------------------- tasks


@torch.no_grad()
def sample_images(
    model: nn.Module, n: int, seed: int = 0, temperature: float | None = None, top_k: int | None = None
) -> torch.Tensor:
    """n new images -> (n, C, S, S) in [0, 1], reproducible by seed. temperature, top_k: how a VQ-VAE's prior
    draws its codes (None: the model's own settings); other models have no such choice (ValueError)."""
    generator = torch.Generator().manual_seed(seed)
    if temperature is None and top_k is None:
        return model.eval().sample(n, generator=generator).clamp(0, 1).cpu()
    if model.arch != "vqvae":
        raise ValueError("temperature and top-k apply to a VQ-VAE's prior only")
    return model.eval().sample(n, generator, temperature, top_k).clamp(0, 1).cpu()


@torch.no_grad()
def reconstruct(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """x (B, C, S, S) -> decode(encode(x)): the code's means, no sampling."""
    return model.eval().decode_image(model.encode(x)).clamp(0, 1)


@torch.no_grad()
def reconstruct_image(model: nn.Module, image: ImageData, invert: bool = False) -> ImageData:
    """An image file's reconstruction through the model's code, at the input's own size (and orientation of
    its content): the model works at S x S on the squared image; the result is resized back and un-padded."""
    x = image_to_input(image, model, invert)
    y = reconstruct(model, x).cpu()
    w, h = image.size
    side = max(h, w)
    y = F.interpolate(y, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    top, left = (side - h) // 2, (side - w) // 2
    out = tensor_to_image(y[0, :, top : top + h, left : left + w], invert)
    return ImageData(out.pixels, image.alpha, format=image.format)


@torch.no_grad()
def interpolate(model: nn.Module, a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
    """Decoded points on the straight line between two images' codes, a and b (1, C, S, S) included as the
    two ends -> (steps, C, S, S). The VQ-VAE blends its continuous z_e, each point then snapped to its codes."""
    model.eval()
    code_a, code_b = model.encode(a), model.encode(b)
    t = torch.linspace(0, 1, steps, device=code_a.device).view(-1, *([1] * (code_a.dim() - 1)))
    return model.decode_image((1 - t) * code_a + t * code_b).clamp(0, 1).cpu()


@torch.no_grad()
def traverse(model: nn.Module, steps: int = 9, span: float = 3.0, dims: list[int] | None = None) -> torch.Tensor:
    """One row per code dimension: that dimension swept over [-span, +span] standard deviations around the
    centre of the code distribution, the others held there -> (len(dims) * steps, C, S, S).

    VAE: the prior's centre 0 and unit scale. AE: the mean and standard deviations of its training codes."""
    from aetools.generative.classic import Autoencoder

    model.eval()
    if not hasattr(model, "code_dim"):
        raise ValueError("traverse needs a model with a vector code (ae, vae, hvae), not a VQ-VAE's code grid")
    k = model.code_dim
    device = device_of(model)
    centre, scale = torch.zeros(k, device=device), torch.ones(k, device=device)
    if isinstance(model, Autoencoder):
        centre, scale = model.code_mean, model.code_covariance().diagonal().clamp_min(0).sqrt()
    dims = list(range(k)) if dims is None else dims
    offsets = torch.linspace(-span, span, steps, device=device)
    codes = centre.repeat(len(dims) * steps, 1)
    for row, j in enumerate(dims):
        codes[row * steps : (row + 1) * steps, j] += offsets * scale[j]
    return model.decode_image(codes).clamp(0, 1).cpu()


@torch.no_grad()
def encode_all(model: nn.Module, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """images (N, C, S, S) -> codes (N, ...) on the CPU."""
    model.eval()
    device = device_of(model)
    return torch.cat([model.encode(images[i : i + batch].to(device)).cpu() for i in range(0, len(images), batch)])


def latent_plot(
    codes: torch.Tensor, labels: np.ndarray, classes: tuple[str, ...], path: str | Path, title: str = ""
) -> str:
    """Codes (N, k) as points coloured by class: 2-D or 3-D as they are; longer codes projected on their first
    two principal components (`torch.pca_lowrank`). Written atomically as PNG. -> a note on what was plotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    codes = codes.flatten(1).float()
    k = codes.shape[1]
    note = f"{k}-D codes"
    if k > 3:
        _, _, v = torch.pca_lowrank(codes, q=2)
        codes = (codes - codes.mean(0)) @ v[:, :2]
        note = f"{k}-D codes projected on their first 2 principal components"
    fig = plt.figure(figsize=(7, 6), dpi=110)
    ax = fig.add_subplot(projection="3d" if codes.shape[1] == 3 else None)
    cmap = plt.get_cmap("tab10")
    for c, name in enumerate(classes):
        pts = codes[labels == c].numpy()
        ax.scatter(*pts.T, s=2, alpha=0.5, color=cmap(c % 10), label=name)
    ax.legend(markerscale=5, fontsize=7, loc="best")
    ax.set_title(title or note, fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    from aetools.weights import atomic_write_bytes

    atomic_write_bytes(Path(path), buf.getvalue())
    return note
