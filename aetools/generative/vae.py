"""Variational autoencoders: the VAE, beta-VAE (a weight, a warm-up or a capacity on the KL) and a two-level
hierarchical VAE with top-down inference.

VAE (Kingma & Welling 2014). A latent-variable model p(x) = int p(x|z) p(z) dz with p(z) = N(0, I_k) and
a decoder p(x|z); an encoder q(z|x) = N(mu(x), diag sigma^2(x)) approximates the posterior. For any q,

    log p(x) >= E_q[log p(x|z)] - KL(q(z|x) || p(z))  =  ELBO(x)                      (Jensen)

and training maximises the ELBO over both networks. Two pieces make that work:
- Reparameterisation: z = mu + sigma * eps, eps ~ N(0, I), so the sample is a differentiable function of
  (mu, sigma) and one Monte-Carlo sample gives an unbiased, low-variance gradient of E_q[log p(x|z)].
- Closed-form KL between diagonal Gaussians, per dimension j (`gaussian_kl`):
      KL(N(mu, s^2) || N(m, t^2)) = log(t / s) + (s^2 + (mu - m)^2) / (2 t^2) - 1/2
  which for the standard-normal prior is 1/2 (mu^2 + s^2 - 1 - log s^2).

Decoders (`likelihood`), giving log p(x|z) summed over pixels, in nats:
- "bernoulli": log p = sum x log p_hat + (1 - x) log(1 - p_hat) with p_hat = sigmoid(logits): binary
  cross-entropy. On grey levels x in [0, 1] this is the usual practice (Keras' and the course's VAE) but not
  a normalised density; the nats it gives compare with papers that do the same, not with dequantised NLLs.
- "gaussian": log p = sum -(x - x_hat)^2 / (2 sigma^2) - log(sigma sqrt(2 pi)), a fixed `sigma`: MSE in disguise.

beta-VAE (Higgins et al. 2017): loss = -E_q[log p(x|z)] + beta * KL. beta > 1 trades reconstruction for a
more factorised, "disentangled" code. Two schedules help the KL not collapse or dominate early:
- KL warm-up (`kl_warmup` steps; Bowman et al. 2016, Sønderby et al. 2016): the weight rises linearly 0 -> beta.
- capacity (`capacity` > 0 nats; Burgess et al. 2018): loss = -E_q[log p(x|z)] + gamma * |KL - C_t| with the
  target C_t rising linearly 0 -> capacity over `capacity_steps`: the code may carry C_t nats, no more.
The model counts its training steps in a buffer (the schedules' clock), so weights and checkpoints keep it.

Hierarchical VAE (two levels, top-down inference as in the Ladder VAE, Sønderby et al. 2016, and NVAE):

    generative:  z2 ~ N(0, I)   z1 ~ p(z1 | z2) = N(mu_p(z2), sigma_p^2(z2))   x ~ p(x | z1, z2)
    inference:   d = bottom-up features of x
                 z2 ~ q(z2 | x) = N(mu(d), sigma^2(d))
                 z1 ~ q(z1 | x, z2) = N(mu(d, t(z2)), sigma^2(d, t(z2)))   (t: the top-down state from z2)
    KL = KL(q(z2|x) || N(0, I)) + E_q(z2|x) KL(q(z1|x,z2) || p(z1|z2))  (both closed form given the z2 sample)

Metrics (`aetools eval`): the ELBO; the importance-weighted bound (Burda et al. 2016)
    log p(x) >= IWAE_k = E[log (1/k) sum_i p(x, z_i) / q(z_i | x)],  z_i ~ q(z | x),
which tightens as k grows (IWAE_1 = ELBO in expectation); KL per dimension; active units (Burda et al.:
dimension j is active when Cov_x(E_q[z_j]) > 0.01).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal

from aetools.generative.nets import ConvTrunk
from aetools.nn.registry import register_model

LIKELIHOODS = ("bernoulli", "gaussian")


@dataclass
class VAEConfig:
    """Args:
    channels, size, widths: the images and the conv trunk (`ConvTrunk`).
    latent: k, the dimension of z (of z1, the lower level, in the hierarchical VAE).
    top: the dimension of z2, the top level (hierarchical VAE only).
    beta: the KL's weight (1: the VAE; > 1: beta-VAE).
    likelihood: the decoder p(x|z): "bernoulli" or "gaussian" with std `sigma`.
    kl_warmup: steps over which the KL weight rises from 0 to beta (0: none).
    capacity, capacity_steps, gamma: the capacity schedule (capacity 0: off; then beta is unused).
    """

    channels: int = 1
    size: int = 28
    widths: tuple[int, ...] = (16, 32, 64)
    latent: int = 16
    top: int = 8
    beta: float = 1.0
    likelihood: str = "bernoulli"
    sigma: float = 0.1
    kl_warmup: int = 0
    capacity: float = 0.0
    capacity_steps: int = 5000
    gamma: float = 100.0


@dataclass
class VAEOutput:
    """logits (B, C, S, S): the decoder's; mean image = sigmoid(logits). nll (B,): -log p(x|z), nats. kl (B,):
    KL(q || p) summed over dimensions, nats. kl_weight, capacity: this step's schedule (see the docstring); capacity
    is None when the capacity objective is off."""

    logits: torch.Tensor
    nll: torch.Tensor
    kl: torch.Tensor
    kl_weight: float
    capacity: float | None

    def float(self) -> VAEOutput:
        return VAEOutput(self.logits.float(), self.nll.float(), self.kl.float(), self.kl_weight, self.capacity)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor, mu_p=None, logvar_p=None) -> torch.Tensor:
    """KL(N(mu, e^logvar) || N(mu_p, e^logvar_p)) per dimension, closed form (prior N(0, 1) when mu_p is None):
    1/2 (logvar_p - logvar + (e^logvar + (mu - mu_p)^2) / e^logvar_p - 1)."""
    if mu_p is None:
        return 0.5 * (mu.square() + logvar.exp() - 1 - logvar)
    return 0.5 * (logvar_p - logvar + (logvar.exp() + (mu - mu_p).square()) / logvar_p.exp() - 1)


def reparameterise(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps, eps ~ N(0, I): a sample of q that gradients flow through."""
    return mu + (0.5 * logvar).exp() * torch.randn_like(mu)


def decoder_nll(logits: torch.Tensor, x: torch.Tensor, likelihood: str, sigma: float) -> torch.Tensor:
    """-log p(x | z) per sample, summed over pixels (nats). logits (..., C, S, S), x broadcastable to it."""
    x = x.expand_as(logits)
    if likelihood == "bernoulli":
        per_pixel = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    else:
        per_pixel = (torch.sigmoid(logits) - x).square() / (2 * sigma**2) + math.log(sigma * math.sqrt(2 * math.pi))
    return per_pixel.flatten(-3).sum(-1)


class _VAEBase(nn.Module):
    """What both VAEs share: the conv trunk, the step counter and the loss schedule."""

    def __init__(self, config: VAEConfig, code_dim: int):
        super().__init__()
        if config.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood {config.likelihood!r}: expected bernoulli or gaussian")
        self.config = config
        self.code_dim = code_dim  # what `decode` takes: z, or [z1, z2]
        self.trunk = ConvTrunk(config.channels, config.size, config.widths)
        self.from_code = nn.Linear(code_dim, self.trunk.flat)
        self.register_buffer("trained_steps", torch.zeros((), dtype=torch.long))

    def schedule(self) -> tuple[float, float | None]:
        """This step's (KL weight, capacity C_t in nats); capacity None when the capacity objective is off."""
        c, step = self.config, int(self.trained_steps)
        if c.capacity > 0:
            return c.gamma, c.capacity * min(1.0, step / max(1, c.capacity_steps))
        return c.beta * (min(1.0, step / c.kl_warmup) if c.kl_warmup else 1.0), None

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """code (..., code_dim) -> logits (..., C, S, S)."""
        lead = code.shape[:-1]
        features = self.from_code(code.reshape(-1, code.shape[-1]))
        logits = self.trunk.decode(features.view(-1, self.trunk.width, self.trunk.side, self.trunk.side))
        return logits.view(*lead, *logits.shape[1:])

    def decode_image(self, code: torch.Tensor) -> torch.Tensor:
        """code (B, code_dim) -> the decoder's mean image (B, C, S, S) in [0, 1]."""
        return torch.sigmoid(self.decode(code))

    def nll(self, logits: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return decoder_nll(logits, image, self.config.likelihood, self.config.sigma)

    def output(self, logits: torch.Tensor, image: torch.Tensor, kl: torch.Tensor) -> VAEOutput:
        weight, capacity = self.schedule()
        if self.training:
            self.trained_steps += 1
        return VAEOutput(logits, self.nll(logits, image), kl, weight, capacity)


@register_model("vae", VAEConfig)
class VAE(_VAEBase):
    def __init__(self, config: VAEConfig):
        super().__init__(config, config.latent)
        self.to_posterior = nn.Linear(self.trunk.flat, 2 * config.latent)  # -> (mu, log sigma^2)

    def posterior(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x): image (B, C, S, S) -> (mu, logvar), each (B, k)."""
        mu, logvar = self.to_posterior(self.trunk.encode(image).flatten(1)).chunk(2, dim=1)
        return mu, logvar.clamp(-30, 20)

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """The posterior mean, the code used to reconstruct and interpolate."""
        return self.posterior(image)[0]

    def forward(self, image: torch.Tensor) -> VAEOutput:
        mu, logvar = self.posterior(image)
        z = reparameterise(mu, logvar) if self.training else mu
        return self.output(self.decode(z), image, gaussian_kl(mu, logvar).sum(1))

    def log_weights(self, image: torch.Tensor, k: int) -> torch.Tensor:
        """log p(x, z_i) - log q(z_i | x) for k samples z_i ~ q(z|x) -> (k, B)."""
        mu, logvar = self.posterior(image)
        q = Normal(mu, (0.5 * logvar).exp())
        z = q.sample((k,))  # (k, B, latent)
        log_prior = Normal(0.0, 1.0).log_prob(z).sum(-1)
        return -self.nll(self.decode(z), image) + log_prior - q.log_prob(z).sum(-1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ p(z) = N(0, I), decoded -> (n, C, S, S) in [0, 1] (the decoder's mean, not a pixel-noise sample)."""
        device = self.from_code.weight.device
        z = torch.randn(n, self.config.latent, generator=generator).to(device)
        return torch.sigmoid(self.decode(z))


@register_model("hvae", VAEConfig)
class HierarchicalVAE(_VAEBase):
    def __init__(self, config: VAEConfig):
        super().__init__(config, config.latent + config.top)
        k1, k2, hidden = config.latent, config.top, 256
        self.bottom_up = nn.Sequential(nn.Linear(self.trunk.flat, hidden), nn.SiLU())  # d
        self.to_top = nn.Linear(hidden, 2 * k2)  # q(z2 | x)
        self.top_down = nn.Sequential(nn.Linear(k2, hidden), nn.SiLU())  # t(z2)
        self.to_prior1 = nn.Linear(hidden, 2 * k1)  # p(z1 | z2)
        self.to_posterior1 = nn.Linear(2 * hidden, 2 * k1)  # q(z1 | x, z2), from [d, t(z2)]

    @staticmethod
    def _gaussian(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = params.chunk(2, dim=-1)
        return mu, logvar.clamp(-30, 20)

    def infer(self, image: torch.Tensor, k: int | None = None, sample: bool = True) -> dict[str, torch.Tensor]:
        """The top-down pass: q(z2|x), z2, p(z1|z2), q(z1|x,z2), z1. k: draw k samples per image (leading dim)."""
        d = self.bottom_up(self.trunk.encode(image).flatten(1))  # (B, hidden)
        mu2, logvar2 = self._gaussian(self.to_top(d))
        if k is not None:
            d, mu2, logvar2 = (t.expand(k, *t.shape) for t in (d, mu2, logvar2))
        z2 = reparameterise(mu2, logvar2) if sample else mu2
        t = self.top_down(z2)
        mu_p, logvar_p = self._gaussian(self.to_prior1(t))
        mu1, logvar1 = self._gaussian(self.to_posterior1(torch.cat([d, t], dim=-1)))
        z1 = reparameterise(mu1, logvar1) if sample else mu1
        return dict(mu2=mu2, logvar2=logvar2, z2=z2, mu_p=mu_p, logvar_p=logvar_p, mu1=mu1, logvar1=logvar1, z1=z1)

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """The code [z1, z2] of the posterior means, taken top-down."""
        s = self.infer(image, sample=False)
        return torch.cat([s["z1"], s["z2"]], dim=-1)

    def forward(self, image: torch.Tensor) -> VAEOutput:
        s = self.infer(image, sample=self.training)
        kl = gaussian_kl(s["mu2"], s["logvar2"]).sum(-1) + gaussian_kl(
            s["mu1"], s["logvar1"], s["mu_p"], s["logvar_p"]
        ).sum(-1)
        return self.output(self.decode(torch.cat([s["z1"], s["z2"]], dim=-1)), image, kl)

    def log_weights(self, image: torch.Tensor, k: int) -> torch.Tensor:
        """log p(x, z1, z2) - log q(z1, z2 | x) for k samples -> (k, B)."""
        s = self.infer(image, k=k)

        def log_normal(z, mu, logvar):
            return Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)

        log_p = Normal(0.0, 1.0).log_prob(s["z2"]).sum(-1) + log_normal(s["z1"], s["mu_p"], s["logvar_p"])
        log_q = log_normal(s["z2"], s["mu2"], s["logvar2"]) + log_normal(s["z1"], s["mu1"], s["logvar1"])
        logits = self.decode(torch.cat([s["z1"], s["z2"]], dim=-1))
        return -self.nll(logits, image) + log_p - log_q

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z2 ~ N(0, I), z1 ~ p(z1 | z2), decoded -> (n, C, S, S) in [0, 1]."""
        device = self.from_code.weight.device
        z2 = torch.randn(n, self.config.top, generator=generator).to(device)
        mu_p, logvar_p = self._gaussian(self.to_prior1(self.top_down(z2)))
        eps = torch.randn(mu_p.shape, generator=generator).to(device)
        z1 = mu_p + (0.5 * logvar_p).exp() * eps
        return torch.sigmoid(self.decode(torch.cat([z1, z2], dim=-1)))


def vae_loss(output: VAEOutput, target: torch.Tensor) -> torch.Tensor:
    """Per image: -log p(x|z) + weight * KL, or with a capacity C: -log p(x|z) + gamma * |KL - C| (batch means).
    Reported per pixel (divided by the pixel count) so its scale matches the other tasks' losses."""
    pixels = target[0].numel()
    if output.capacity is not None:
        return (output.nll.mean() + output.kl_weight * (output.kl.mean() - output.capacity).abs()) / pixels
    return (output.nll + output.kl_weight * output.kl).mean() / pixels
