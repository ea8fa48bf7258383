"""The classic autoencoders: undercomplete (linear = PCA, and convolutional), sparse, denoising, contractive.

An autoencoder is an encoder f and a decoder g trained so that g(f(x)) ~ x:

    h = f(x) in R^k  (k = `latent`, much smaller than the D = C*S*S pixels: "undercomplete")
    x_hat = g(h)
    L = ||x_hat - x||^2 / D  +  lambda * Omega          (Omega: the regulariser, below; MSE per pixel)

Linear AE (`linear=True`): f(x) = W_e x + b_e, g(h) = W_d h + b_d. Minimising the squared error over the
data, the columns of W_d span the same k-dimensional subspace as the top-k principal components (Baldi &
Hornik 1989), and the best reconstruction error *is* PCA's: a linear AE is PCA learned by gradient
descent. It is not PCA's basis (W_d need not be orthonormal, any invertible mix of the components is as
good), which is why they are compared by principal angles between subspaces, not column by column.

Convolutional AE (default): f = the shared backbone's encoder, flattened, then a linear map to R^k; g the
mirror image. Non-linear, so it can beat PCA at the same k; its output goes through a sigmoid (pixels in [0, 1]).

Regularisers (`reg`), for when the code should be more than small:
- sparse:       Omega = mean_batch sum_j |h_j|                      (L1 on the code: few active units)
- contractive:  Omega = mean_batch ||J_f(x)||_F^2, J = dh/dx (k x D)  (Rifai et al. 2011: f is flat along
                directions the data does not vary in). `jacobian="exact"`: k backward passes, one per code unit,
                each giving one row of every sample's J (samples do not interact). `jacobian="hutchinson"`: one
                backward pass with a random probe v ~ N(0, I_k): E_v ||J^T v||^2 = E_v v^T J J^T v = tr(J J^T)
                = ||J||_F^2, an unbiased estimate. Note that a backward pass with grad_outputs = ones gives
                J^T 1 = sum_j grad h_j, whose squared norm has the cross terms grad h_i . grad h_j: it is *not*
                ||J||_F^2.
- denoising:    no Omega; the encoder gets a corrupted x~ ~ C(x~ | x) and the loss compares g(f(x~)) with the clean x
                (Vincent et al. 2008). C: "gaussian" (x + N(0, level^2)) or "masking" (each pixel zeroed with
                probability `level`). Training only; in eval mode the input is used as it is.

Sampling from an AE: nothing makes its codes follow a known distribution, so decoding h ~ N(0, I) gives
junk. The model keeps running estimates of its training codes' mean and covariance (buffers updated in
training, like batch norm's), and `sample` decodes h ~ N(mean, cov): "AE with Gaussian codes", the baseline
the VAE is compared with.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from aetools.generative.nets import ConvTrunk
from aetools.nn.registry import register_model

REGULARISERS = ("none", "sparse", "contractive", "denoising")


@dataclass
class AEConfig:
    """Args:
    channels, size: the images (1 x 28 x 28 for Fashion-MNIST).
    widths: the conv trunk's channels per level (`ConvTrunk`); unused by the linear AE.
    latent: k, the code's dimension.
    linear: a linear encoder and decoder (= PCA; no sigmoid on the output).
    reg: none | sparse | contractive | denoising; lam: its weight lambda.
    corruption, level: the denoising AE's C(x~|x): "gaussian" with std `level`, or "masking" with drop rate `level`.
    jacobian: the contractive penalty's ||J||_F^2: "exact" or "hutchinson" (one random probe).
    stats_momentum: update rate of the running code mean/covariance used by `sample`.
    """

    channels: int = 1
    size: int = 28
    widths: tuple[int, ...] = (16, 32, 64)
    latent: int = 16
    linear: bool = False
    reg: str = "none"
    lam: float = 1e-3
    corruption: str = "gaussian"
    level: float = 0.3
    jacobian: str = "exact"
    stats_momentum: float = 0.01


@dataclass
class AEOutput:
    """recon (B, C, S, S): g(f(x~)); code (B, k): h; penalty: lambda * Omega (0 when there is none)."""

    recon: torch.Tensor
    code: torch.Tensor
    penalty: torch.Tensor

    def float(self) -> AEOutput:
        return AEOutput(self.recon.float(), self.code.float(), self.penalty.float())


def corrupt(x: torch.Tensor, kind: str, level: float) -> torch.Tensor:
    """The denoising AE's corruption process C(x~ | x)."""
    if kind == "gaussian":
        return x + level * torch.randn_like(x)
    if kind == "masking":
        return x * (torch.rand_like(x) >= level).to(x.dtype)
    raise ValueError(f"corruption {kind!r}: expected gaussian or masking")


def jacobian_frobenius_sq(code: torch.Tensor, x: torch.Tensor, create_graph: bool = True) -> torch.Tensor:
    """Exact ||dh/dx||_F^2 per sample: code (B, k) computed from x (B, ...) with requires_grad -> (B,).
    Row j of every sample's Jacobian is the gradient of sum_b h_bj, since sample b's code depends on x_b only."""
    total = code.new_zeros(code.shape[0])
    for j in range(code.shape[1]):
        (row,) = torch.autograd.grad(code[:, j].sum(), x, create_graph=create_graph, retain_graph=True)
        total = total + row.flatten(1).square().sum(1)
    return total


def jacobian_frobenius_sq_hutchinson(code: torch.Tensor, x: torch.Tensor, create_graph: bool = True) -> torch.Tensor:
    """Unbiased one-probe estimate of ||dh/dx||_F^2 per sample: ||J^T v||^2 with v ~ N(0, I_k) -> (B,)."""
    probe = torch.randn_like(code)
    (jtv,) = torch.autograd.grad(code, x, grad_outputs=probe, create_graph=create_graph, retain_graph=True)
    return jtv.flatten(1).square().sum(1)


@register_model("ae", AEConfig)
class Autoencoder(nn.Module):
    def __init__(self, config: AEConfig):
        super().__init__()
        if config.reg not in REGULARISERS:
            raise ValueError(f"reg {config.reg!r}: expected one of {', '.join(REGULARISERS)}")
        self.config = config
        k, pixels = config.latent, config.channels * config.size * config.size
        if config.linear:
            self.encoder = nn.Linear(pixels, k)  # h = W_e x + b_e
            self.decoder = nn.Linear(k, pixels)  # x_hat = W_d h + b_d
        else:
            self.trunk = ConvTrunk(config.channels, config.size, config.widths)
            self.to_code = nn.Linear(self.trunk.flat, k)
            self.from_code = nn.Linear(k, self.trunk.flat)
        # Running moments of the training codes, for `sample` (the "AE with Gaussian codes" generator).
        self.register_buffer("code_mean", torch.zeros(k))
        self.register_buffer("code_moment", torch.eye(k))  # E[h h^T]

    @property
    def code_dim(self) -> int:
        return self.config.latent

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """f: (B, C, S, S) in [0, 1] -> h (B, k)."""
        if self.config.linear:
            return self.encoder(image.flatten(1))
        return self.to_code(self.trunk.encode(image).flatten(1))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """g: h (B, k) -> x_hat (B, C, S, S)."""
        c = self.config
        if c.linear:
            return self.decoder(code).view(-1, c.channels, c.size, c.size)
        features = self.from_code(code).view(-1, self.trunk.width, self.trunk.side, self.trunk.side)
        return torch.sigmoid(self.trunk.decode(features))

    def decode_image(self, code: torch.Tensor) -> torch.Tensor:
        """h (B, k) -> image (B, C, S, S) in [0, 1] (the linear AE's output clamped)."""
        return self.decode(code).clamp(0, 1)

    def penalty(self, image: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """lambda * Omega for the sparse and contractive AEs; `image` must be what `code` was computed from."""
        c = self.config
        if c.reg == "sparse":
            return c.lam * code.abs().sum(1).mean()
        if c.reg == "contractive":
            norm_sq = jacobian_frobenius_sq if c.jacobian == "exact" else jacobian_frobenius_sq_hutchinson
            return c.lam * norm_sq(code, image).mean()
        return code.new_zeros(())

    @torch.no_grad()
    def _track_codes(self, code: torch.Tensor) -> None:
        m = self.config.stats_momentum
        with torch.autocast(code.device.type, enabled=False):  # running moments in fp32 under bf16 autocast
            code = code.float()
            self.code_mean.lerp_(code.mean(0), m)
            self.code_moment.lerp_(code.t() @ code / code.shape[0], m)

    def forward(self, image: torch.Tensor) -> AEOutput:
        c = self.config
        x = image
        if self.training and c.reg == "denoising":
            x = corrupt(image, c.corruption, c.level)  # the target stays the clean image
        if self.training and c.reg == "contractive":
            x = x.detach().requires_grad_(True)  # the penalty differentiates h with respect to x
        code = self.encode(x)
        if self.training:
            self._track_codes(code.detach().float())
        penalty = self.penalty(x, code) if self.training else code.new_zeros(())
        return AEOutput(self.decode(code), code, penalty)

    def code_covariance(self) -> torch.Tensor:
        """Cov[h] = E[h h^T] - E[h] E[h]^T of the training codes (running estimate)."""
        mean = self.code_mean
        return self.code_moment - torch.outer(mean, mean)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images decoded from h ~ N(mean, cov) of the training codes -> (n, C, S, S) in [0, 1]."""
        k = self.config.latent
        cov = self.code_covariance() + 1e-5 * torch.eye(k, device=self.code_mean.device)
        z = torch.randn(n, k, generator=generator).to(self.code_mean.device)
        code = self.code_mean + z @ torch.linalg.cholesky(cov).t()  # L z ~ N(0, L L^T = cov)
        return self.decode(code).clamp(0, 1)


def ae_loss(output: AEOutput, target: torch.Tensor) -> torch.Tensor:
    """MSE per pixel against the clean image, plus lambda * Omega."""
    return F.mse_loss(output.recon, target) + output.penalty
