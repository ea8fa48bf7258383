"""VQ-VAE (van den Oord et al. 2017): a discrete code grid, and a learned autoregressive prior to sample it.

    image (B, C, S, S) -> encoder -> z_e (B, D, H, W)             (the trunk's features, 1x1 conv to D)
    quantise: k(i) = argmin_k ||z_e(i) - e_k||^2 per position i     -> indices (B, H, W) in [0, K)
              z_q(i) = e_k(i)                                       (a codebook e of K vectors in R^D)
    decoder: z_q -> x_hat (B, C, S, S)

Training (`VectorQuantizer`):
- argmin has no gradient; the straight-through estimator copies the decoder's gradient at z_q onto z_e:
      z_q_st = z_e + sg(z_q - z_e)       (forward: z_q; backward: d/dz_e = identity)      sg = stop-gradient
- loss = ||x - x_hat||^2 + beta ||z_e - sg(z_q)||^2      the commitment term pulls the *encoder* to its codes;
  beta (0.25) weighs the encoder term only. The paper's codebook term ||sg(z_e) - e||^2 is replaced by
  exponential moving averages (the paper's appendix; Razavi et al. 2019), which converge faster:
      N_k <- g N_k + (1 - g) n_k,   m_k <- g m_k + (1 - g) sum_{i: k(i)=k} z_e(i),   e_k = m_k / N_k
  (n_k: positions assigned to code k in this batch; g = `decay`; N Laplace-smoothed so that no division is by 0).
- Dead codes: a code whose average count N_k falls below `dead_below` gets no more gradient or EMA pull and
  would stay dead; it is re-initialised to a random encoder output of the current batch (as in Jukebox,
  Dhariwal et al. 2020), where the data is. Usage and perplexity exp(H(code frequencies)) are reported.

Prior: the codes of an image, read in raster order, are a sequence of H*W tokens, modelled autoregressively,
p(k_1..k_n) = prod_i p(k_i | k_<i), by one of two networks (`prior`):
- "pixelcnn": a gated PixelCNN over the code grid (`aetools.generative.pixelcnn`), as the paper did;
- "transformer": a small causal transformer over the sequence (`CodePrior`).
It is trained on the *detached* indices of the encoder: jointly with the autoencoder (its loss, cross-entropy
in nats per position, reaches only its own parameters), or alone on a frozen autoencoder's codes (the
paper's second stage: `aetools train vqvae --init ... --train-only prior`, see `with_new_prior`). `sample`
draws a grid code by code (with temperature and top-k, `pixelcnn.draw`) and decodes it: that is how
`aetools generate` makes images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from aetools.generative.nets import ConvTrunk
from aetools.generative.pixelcnn import GatedPixelCNN, draw
from aetools.nn.registry import register_model


@dataclass
class VQVAEConfig:
    """Args:
    channels, size, widths: the images and the conv trunk (`ConvTrunk`); the code grid is size / stride.
    codes: K, the codebook size; code_dim: D.
    beta: the commitment weight; decay: the codebook EMA's g; dead_below: EMA count under which a code is revived.
    prior: "transformer" (`CodePrior`) or "pixelcnn" (`GatedPixelCNN`).
    prior_dim, prior_layers: the prior's width and depth (prior_layers 0: no prior); prior_heads: the
    transformer's attention heads; prior_kernel: the PixelCNN's kernel after its first (7 x 7) layer.
    prior_batch: the prior trains on the first `prior_batch` images of each batch (its cost dominates a step).
    temperature, top_k: how `sample` draws codes unless told otherwise (top_k 0: from all K).
    """

    channels: int = 1
    size: int = 28
    widths: tuple[int, ...] = (32, 64)
    codes: int = 256
    code_dim: int = 32
    beta: float = 0.25
    decay: float = 0.99
    dead_below: float = 1.0
    prior_dim: int = 64
    prior_layers: int = 3
    prior_heads: int = 4
    prior_batch: int = 64
    prior: str = "transformer"
    prior_kernel: int = 3
    temperature: float = 1.0
    top_k: int = 0

    def __post_init__(self):
        if self.prior not in PRIORS:
            raise ValueError(f"prior {self.prior!r}: expected one of {', '.join(PRIORS)}")
        if not self.temperature > 0:
            raise ValueError(f"temperature {self.temperature}: expected > 0")
        if not 0 <= self.top_k <= self.codes:
            raise ValueError(f"top_k {self.top_k}: expected 0 (all codes) to codes ({self.codes})")


PRIORS = ("transformer", "pixelcnn")


@dataclass
class VQOutput:
    """recon (B, C, S, S); commitment: beta ||z_e - sg(z_q)||^2; prior_nll: the prior's cross-entropy (nats per
    code; 0 without a prior); indices (B, H, W)."""

    recon: torch.Tensor
    commitment: torch.Tensor
    prior_nll: torch.Tensor
    indices: torch.Tensor

    def float(self) -> VQOutput:
        return VQOutput(self.recon.float(), self.commitment.float(), self.prior_nll.float(), self.indices)


class VectorQuantizer(nn.Module):
    """Nearest-code quantisation with EMA codebook updates and dead-code revival.

    forward(z_e (B, D, H, W)) -> (z_q with straight-through gradient (B, D, H, W), commitment loss, indices (B, H, W))
    """

    def __init__(self, codes: int, dim: int, beta: float = 0.25, decay: float = 0.99, dead_below: float = 1.0):
        super().__init__()
        self.codes, self.dim, self.beta, self.decay, self.dead_below = codes, dim, beta, decay, dead_below
        embed = torch.randn(codes, dim) / math.sqrt(dim)
        self.register_buffer("embed", embed)  # e (K, D): not a parameter, the EMA sets it
        self.register_buffer("ema_count", torch.ones(codes))  # N (K,)
        self.register_buffer("ema_sum", embed.clone())  # m (K, D)
        self.register_buffer("revived", torch.zeros((), dtype=torch.long))  # codes re-initialised so far

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """flat (N, D) -> index of the nearest code (N,): argmin ||z||^2 - 2 z.e + ||e||^2."""
        distance = flat.square().sum(1, keepdim=True) - 2 * flat @ self.embed.t() + self.embed.square().sum(1)
        return distance.argmin(1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """indices (B, H, W) -> z_q (B, D, H, W)."""
        return self.embed[indices].permute(0, 3, 1, 2)

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, indices: torch.Tensor) -> None:
        onehot = F.one_hot(indices, self.codes).to(flat.dtype)  # (N, K)
        counts, sums = onehot.sum(0), onehot.t() @ flat  # n_k (K,), sum of z_e per code (K, D)
        distributed = dist.is_available() and dist.is_initialized()
        if distributed:  # every process must keep the same codebook: pool the statistics
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        self.ema_count.lerp_(counts, 1 - self.decay)
        self.ema_sum.lerp_(sums, 1 - self.decay)
        total = self.ema_count.sum()
        smoothed = (self.ema_count + 1e-5) / (total + self.codes * 1e-5) * total  # Laplace smoothing
        self.embed.copy_(self.ema_sum / smoothed[:, None])

        dead = self.ema_count < self.dead_below
        if dead.any():
            picks = flat[torch.randint(len(flat), (int(dead.sum()),), device=flat.device)]
            if distributed:  # one process's picks for all
                replacement = self.embed.clone()
                replacement[dead] = picks
                dist.broadcast(replacement, 0)
                picks = replacement[dead]
            self.embed[dead] = picks
            self.ema_sum[dead] = picks
            self.ema_count[dead] = 1.0
            self.revived += int(dead.sum())

    def forward(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # fp32 even under bf16 autocast: nearest-code distances and the EMA statistics need fp32's mantissa
        with torch.autocast(z_e.device.type, enabled=False):
            b, d, h, w = z_e.shape
            z = z_e.float()
            flat = z.permute(0, 2, 3, 1).reshape(-1, d)  # (B*H*W, D)
            indices = self.nearest(flat)
            if self.training:
                self._update(flat, indices)
            z_q = self.lookup(indices.view(b, h, w))
            commitment = self.beta * F.mse_loss(z, z_q.detach())  # the encoder moves to its code, not the reverse
            z_q_st = z + (z_q - z).detach()  # straight-through: forward z_q, gradient to z_e unchanged
        return z_q_st.to(z_e.dtype), commitment, indices.view(b, h, w)


class CodePrior(nn.Module):
    """p(k_i | k_<i) over the raster-ordered code grid: a causal transformer (`nn.TransformerEncoder`, pre-norm).

    Input position i sees [BOS, k_1, ..., k_{i-1}] (a causal mask hides the rest) and predicts k_i."""

    def __init__(self, codes: int, positions: int, dim: int, layers: int, heads: int):
        super().__init__()
        self.codes, self.positions = codes, positions
        self.token = nn.Embedding(codes + 1, dim)  # index `codes` is BOS
        self.position = nn.Parameter(torch.zeros(positions, dim))
        nn.init.normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, codes)

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, n) = [BOS, k_1..k_{n-1}] -> logits (B, n, K) for k_1..k_n."""
        n = tokens.shape[1]
        x = self.token(tokens) + self.position[:n]
        mask = nn.Transformer.generate_square_subsequent_mask(n, device=tokens.device)
        return self.out(self.norm(self.blocks(x, mask=mask, is_causal=True)))

    def _with_bos(self, indices: torch.Tensor) -> torch.Tensor:
        bos = indices.new_full((indices.shape[0], 1), self.codes)
        return torch.cat([bos, indices[:, :-1]], dim=1)

    def nll(self, indices: torch.Tensor) -> torch.Tensor:
        """indices (B, H, W) -> mean -log p(k_i | k_<i) per position (nats)."""
        flat = indices.flatten(1)
        return F.cross_entropy(self.logits(self._with_bos(flat)).transpose(1, 2), flat)

    def next_logits(self, token: torch.Tensor, position: int, cache: list[list[torch.Tensor]]) -> torch.Tensor:
        """One step of `logits` with a key/value cache: token (B,) at `position` -> logits (B, K) for the next
        code. cache: per layer [keys, values] of the earlier positions, (B, heads, i, dim/heads), appended to.
        Computes what `logits` does for the last position (the same parameters of each pre-norm
        `nn.TransformerEncoderLayer`, dropout 0), without recomputing the earlier positions: sampling n codes
        costs O(n) steps instead of O(n^2)."""
        x = (self.token(token) + self.position[position])[:, None]  # (B, 1, dim)
        for layer, kv in zip(self.blocks.layers, cache):
            attn = layer.self_attn
            heads = attn.num_heads
            q, k, v = F.linear(layer.norm1(x), attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
            q, k, v = (t.view(t.shape[0], 1, heads, -1).transpose(1, 2) for t in (q, k, v))  # (B, h, 1, d/h)
            kv[0] = k if kv[0] is None else torch.cat([kv[0], k], dim=2)
            kv[1] = v if kv[1] is None else torch.cat([kv[1], v], dim=2)
            mixed = F.scaled_dot_product_attention(q, kv[0], kv[1])  # attends to positions <= this one
            x = x + attn.out_proj(mixed.transpose(1, 2).reshape(x.shape))
            x = x + layer.linear2(layer.activation(layer.linear1(layer.norm2(x))))
        return self.out(self.norm(x))[:, 0]

    @torch.no_grad()
    def sample(
        self, n: int, temperature: float = 1.0, top_k: int = 0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """n code sequences, token by token (with a key/value cache) -> (n, positions) long."""
        device = self.position.device
        token = torch.full((n,), self.codes, dtype=torch.long, device=device)  # BOS
        cache: list[list[torch.Tensor]] = [[None, None] for _ in self.blocks.layers]
        codes = []
        for i in range(self.positions):
            token = draw(self.next_logits(token, i, cache), temperature, top_k, generator).to(device)
            codes.append(token)
        return torch.stack(codes, dim=1)


@register_model("vqvae", VQVAEConfig)
class VQVAE(nn.Module):
    def __init__(self, config: VQVAEConfig):
        super().__init__()
        self.config = config
        self.trunk = ConvTrunk(config.channels, config.size, config.widths)
        self.pre_quant = nn.Conv2d(self.trunk.width, config.code_dim, 1)  # z_e = 1x1 conv of the features
        self.quantizer = VectorQuantizer(config.codes, config.code_dim, config.beta, config.decay, config.dead_below)
        self.post_quant = nn.Conv2d(config.code_dim, self.trunk.width, 1)
        self.prior = None
        if config.prior_layers and config.prior == "pixelcnn":
            self.prior = GatedPixelCNN(config.codes, config.prior_dim, config.prior_layers, config.prior_kernel)
        elif config.prior_layers:
            positions = self.trunk.side**2
            self.prior = CodePrior(config.codes, positions, config.prior_dim, config.prior_layers, config.prior_heads)

    @property
    def grid(self) -> int:
        """The code grid's side (H = W)."""
        return self.trunk.side

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """z_e (B, D, H, W): the continuous encoder output, before quantisation."""
        return self.pre_quant(self.trunk.encode(image))

    def indices(self, image: torch.Tensor) -> torch.Tensor:
        """image -> its code grid (B, H, W)."""
        z_e = self.encode(image)
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, z_e.shape[1]).float()
        return self.quantizer.nearest(flat).view(z_e.shape[0], *z_e.shape[2:])

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        """(B, D, H, W) -> image (B, C, S, S) in (0, 1)."""
        return torch.sigmoid(self.trunk.decode(self.post_quant(z_q)))

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        return self.decode(self.quantizer.lookup(indices))

    def decode_image(self, z_e: torch.Tensor) -> torch.Tensor:
        """A continuous encoder output (B, D, H, W), e.g. a blend of two images', quantised and decoded."""
        z_q, _, _ = self.quantizer(z_e)  # (in eval mode the codebook is not updated)
        return self.decode(z_q)

    def forward(self, image: torch.Tensor) -> VQOutput:
        z_q, commitment, indices = self.quantizer(self.encode(image))
        prior_nll = commitment.new_zeros(())
        if self.prior is not None and self.training:
            prior_nll = self.prior_nll(indices[: self.config.prior_batch].detach())
        return VQOutput(self.decode(z_q), commitment, prior_nll, indices)

    def prior_nll(self, indices: torch.Tensor) -> torch.Tensor:
        """indices (B, H, W) -> the prior's mean -log p(k_i | k_<i), nats per code."""
        if self.prior is None:
            raise ValueError("this VQ-VAE has no prior (prior_layers 0)")
        return self.prior.nll(indices)

    @torch.no_grad()
    def sample_indices(
        self,
        n: int,
        generator: torch.Generator | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
    ) -> torch.Tensor:
        """n code grids (n, H, W) drawn from the learned prior; temperature and top_k default to the config's."""
        if self.prior is None:
            raise ValueError("this VQ-VAE has no prior (prior_layers 0): it cannot generate")
        temperature = self.config.temperature if temperature is None else temperature
        top_k = self.config.top_k if top_k is None else top_k
        if isinstance(self.prior, GatedPixelCNN):
            return self.prior.sample(n, self.grid, self.grid, temperature, top_k, generator)
        return self.prior.sample(n, temperature, top_k, generator).view(n, self.grid, self.grid)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
    ) -> torch.Tensor:
        """Code grids drawn from the learned prior, decoded -> (n, C, S, S) in [0, 1]."""
        return self.decode_indices(self.sample_indices(n, generator, temperature, top_k))


def with_new_prior(model: VQVAE, **settings) -> VQVAE:
    """The same autoencoder (encoder, codebook, decoder: weights and buffers) with a freshly initialised prior
    built from `settings` (config fields, e.g. prior="pixelcnn", prior_dim=96): the starting point of a second
    stage that trains a different prior on the frozen codes (`aetools train vqvae --init FILE --train-only
    prior`, whose --init needs every tensor of the new network). The result carries, as `weights_header`
    ("training"), the record of the run that trained the autoencoder (the source's own, or, when the source's
    last stage trained only its prior, the one before), so the new model's history is its autoencoder's."""
    from dataclasses import asdict, replace

    config = replace(model.config, **settings)
    fresh = VQVAE(config)
    kept = {k: v for k, v in model.state_dict().items() if not k.startswith("prior.")}
    missing, unexpected = fresh.load_state_dict(kept, strict=False)
    misfits = unexpected + [k for k in missing if not k.startswith("prior.")]
    if misfits:
        raise ValueError(f"{asdict(config)}: the autoencoder's tensors do not fit ({misfits[0]})")
    training = getattr(model, "weights_header", {}).get("training", {})
    if training.get("train_only") == "prior" and training.get("init"):
        training = training["init"].get("training", {})
    fresh.weights_header = {"training": training}
    return fresh.eval()


def code_usage(indices: torch.Tensor, codes: int) -> tuple[float, float]:
    """Code indices (any shape) -> (% of the K codes used, perplexity exp(H) of the code frequencies)."""
    counts = torch.bincount(indices.flatten(), minlength=codes).double()
    p = counts[counts > 0] / counts.sum()
    return float((counts > 0).double().mean() * 100), float(torch.exp(-(p * p.log()).sum()))


PRIOR_WEIGHT = 0.1  # the prior's gradient reaches only its own parameters, where Adam undoes any scale; the
# weight only keeps its (larger) gradient from dominating the trainer's global gradient-norm clipping


def vq_loss(output: VQOutput, target: torch.Tensor) -> torch.Tensor:
    """||x - x_hat||^2 (per pixel) + beta ||z_e - sg(z_q)||^2 + the prior's cross-entropy (its own parameters only)."""
    return F.mse_loss(output.recon, target) + output.commitment + PRIOR_WEIGHT * output.prior_nll
