import pytest
import torch

from aetools.models import create_model, list_models
from aetools.nn.unet import BackboneConfig, SkipAutoencoder


@pytest.mark.parametrize("arch", list_models())
def test_every_registered_model_builds_and_keeps_size(arch):
    """Odd sizes are padded to the stride and cropped back: each head's output has its promised size."""
    model = create_model(arch).eval()
    if arch == "colorize-unet":  # L in, ab-bin logits out at half resolution (rounded up)
        inputs, expected = (torch.rand(1, 1, 37, 53),), (1, model.config.bins, 19, 27)
    elif arch == "inpaint-unet":  # image + hole mask in
        inputs, expected = (torch.rand(1, 3, 37, 53), torch.rand(1, 1, 37, 53) > 0.7), (1, 3, 37, 53)
    elif arch == "hash-unet":  # any image in; its code and a size x size reconstruction of what it saw out
        channels = 1 if model.config.luma else 3
        inputs, expected = (torch.rand(1, 3, 37, 53),), (1, channels, model.config.size, model.config.size)
    elif arch in ("ae", "vae", "hvae", "vqvae", "fashion-classifier"):  # fixed-size images
        c = model.config
        x = torch.rand(2, c.channels, c.size, c.size)
        inputs, expected = (x,), (2, c.classes) if arch == "fashion-classifier" else tuple(x.shape)
    else:
        scale = model.config.scales[0] if hasattr(model.config, "scales") else 1  # superres: default scale
        inputs, expected = (torch.rand(1, 3, 37, 53),), (1, 3, 37 * scale, 53 * scale)
    with torch.no_grad():
        y = model(*inputs)
    if arch == "hash-unet":
        assert y.logits.shape == (1, model.config.bits)
        y = y.recon
    elif arch in ("ae", "vqvae"):
        y = y.recon
    elif arch in ("vae", "hvae"):
        y = y.logits
    assert y.shape == expected


@pytest.mark.parametrize("size", [(1, 1), (5, 9), (16, 16), (33, 18)])
def test_backbone_accepts_any_size(size):
    net = SkipAutoencoder(BackboneConfig(in_channels=2, widths=(4, 8, 16))).eval()
    with torch.no_grad():
        features = net(torch.rand(2, 2, *size))
    assert features.shape == (2, 4, *size)


def test_encode_shapes_halve_per_level():
    net = SkipAutoencoder(BackboneConfig(in_channels=3, widths=(4, 8, 16)))
    bottleneck, skips = net.encode(torch.rand(1, 3, 32, 48))
    assert bottleneck.shape == (1, 16, 8, 12)
    assert [s.shape[1:] for s in skips] == [(4, 32, 48), (8, 16, 24)]


def test_receptive_radius_bounds_the_true_dependency():
    """Autograd: the centre output pixel depends on no input pixel farther than receptive_radius()."""
    torch.manual_seed(0)
    model = create_model("denoise-unet", widths=(4, 8, 16, 32), blocks=1, bottleneck_blocks=1)
    size = 2 * model.receptive_radius() + 64
    x = torch.rand(1, 3, size, size, requires_grad=True)
    c = size // 2
    model(x)[0, :, c, c].sum().backward()
    ys, xs = torch.nonzero(x.grad.abs().sum(dim=(0, 1)), as_tuple=True)
    reach = max((ys - c).abs().max().item(), (xs - c).abs().max().item())
    assert 0 < reach <= model.receptive_radius()


def test_superres_receptive_radius_bounds_the_true_dependency():
    """The same bound for the SR head, in LR pixels: tail conv and the bicubic skip included."""
    torch.manual_seed(0)
    model = create_model("superres-unet", widths=(4, 8, 16), blocks=1, bottleneck_blocks=1)
    size = 2 * model.receptive_radius() + 32
    x = torch.rand(1, 3, size, size, requires_grad=True)
    c = size // 2
    model(x, 3)[0, :, 3 * c + 1, 3 * c + 1].sum().backward()
    ys, xs = torch.nonzero(x.grad.abs().sum(dim=(0, 1)), as_tuple=True)
    reach = max((ys - c).abs().max().item(), (xs - c).abs().max().item())
    assert 0 < reach <= model.receptive_radius()
