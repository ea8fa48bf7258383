"""Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders") over a grid
of discrete codes: the VQ-VAE's prior p(k) = prod_i p(k_i | k_<i), positions i in raster order.

    codes (B, H, W) -> embedding (B, d, H, W) -> L gated layers, two stacks -> 1x1 convs -> logits (B, K, H, W)

The original PixelCNN's masked 3x3 convolutions never see a growing triangle up and to the right of each
position (the blind spot). Two stacks avoid it:
- the vertical stack v: at row r it has seen whole rows above r only, as far left and right as its kernels
  reach. Its first convolution (type A) covers rows r-k/2 .. r-1 of the input, the later ones (type B) rows
  r-k/2 .. r of the stack below, which at row r itself saw only above r;
- the horizontal stack h: at (r, c) the row r left of c. Type A covers columns c-k/2 .. c-1, type B
  c-k/2 .. c; each layer adds the vertical stack at (r, c) through a 1x1 convolution (v -> h), which brings
  in every row above.
Only the first layer is type A: its input at (r, c) is the code it must predict. Every later layer may see
its own position, where the layer below holds only what came before.

Each layer is gated: y = tanh(W_f * x) . sigmoid(W_g * x) (both halves of one convolution's 2d channels).
The horizontal stack is residual (the paper); so is the vertical one here from the second layer on (the
paper's is not), which keeps a 15-layer stack trainable. The masks are built into the kernels' shapes and
one-sided padding, e.g. a vertical type-B kernel is (k/2 + 1) x k and padded above only, so no multiply is
spent on weights that a mask would zero.

Receptive field with a first kernel k_1 and later kernels k: L layers reach k_1/2 + (L-1) k/2 rows up and
columns left and right; with 7, 3 and 12 layers that is the whole 14 x 14 grid. Sampling (`sample`) goes
row by row: the vertical stack for row r is computed once the rows above are drawn, then each position of
row r needs only the horizontal stack on that row left of it (about 7.5 full passes per grid instead of 196).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def draw(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, generator=None) -> torch.Tensor:
    """One code per row of logits (B, K) -> (B,) long: softmax(logits / temperature) restricted to the
    `top_k` most likely codes (0: all), sampled on the CPU with `generator` (so a seed gives the same codes
    on every device). top_k 1 is greedy (argmax); temperature below 1 sharpens, above 1 flattens."""
    if temperature <= 0:
        raise ValueError(f"temperature {temperature}: expected > 0")
    logits = logits.detach().float().cpu() / temperature
    if 0 < top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]  # (B, 1): the k-th largest
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)[:, 0]


def gate(x: torch.Tensor) -> torch.Tensor:
    """(B, 2d, ...) -> tanh(first half) * sigmoid(second half) (B, d, ...)."""
    f, g = x.chunk(2, dim=1)
    return torch.tanh(f) * torch.sigmoid(g)


class GatedLayer(nn.Module):
    """One layer of both stacks. first: mask type A (the first layer), else type B.

    forward(v (B, d, H, W), h (B, d, H, W)) -> (v', h'); `vertical` and `horizontal` are its two halves,
    apart so that sampling can compute them at different times."""

    def __init__(self, dim: int, kernel: int, first: bool):
        super().__init__()
        if kernel < 3 or kernel % 2 == 0:
            raise ValueError(f"kernel {kernel}: expected an odd size of at least 3")
        half, self.first = kernel // 2, first
        reach = half if first else half + 1  # type A stops before the current row / column, type B includes it
        self.v_conv = nn.Conv2d(dim, 2 * dim, (reach, kernel))
        self.v_pad = (half, half, half, -1 if first else 0)  # left, right, top, bottom (-1: drop the last row)
        self.h_conv = nn.Conv2d(dim, 2 * dim, (1, reach))
        self.h_pad = (half, -1 if first else 0, 0, 0)
        self.v_to_h = nn.Conv2d(2 * dim, 2 * dim, 1)
        self.h_out = nn.Conv2d(dim, dim, 1)

    def vertical(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """v (B, d, H, W) -> (pre-gate features (B, 2d, H, W), the next layer's v). Row r of both depends on
        rows < r of the input only."""
        pre = self.v_conv(F.pad(v, self.v_pad))
        out = gate(pre)
        return pre, out if self.first else v + out

    def horizontal(self, h: torch.Tensor, v_pre: torch.Tensor) -> torch.Tensor:
        """h (B, d, H, W), v_pre from `vertical` -> the next layer's h. Within a row: any trailing columns may be
        cut off both inputs without changing the columns kept."""
        out = self.h_out(gate(self.h_conv(F.pad(h, self.h_pad)) + self.v_to_h(v_pre)))
        return out if self.first else h + out


class GatedPixelCNN(nn.Module):
    """Args:
    codes: K, the number of codes (the logits' classes).
    dim: d, channels of each stack.
    layers: gated layers (the first with kernel `first_kernel`, type A; the rest `kernel`, type B).
    """

    def __init__(self, codes: int, dim: int = 64, layers: int = 12, kernel: int = 3, first_kernel: int = 7):
        super().__init__()
        self.codes = codes
        self.embed = nn.Embedding(codes, dim)
        self.layers = nn.ModuleList(
            GatedLayer(dim, first_kernel if i == 0 else kernel, first=i == 0) for i in range(layers)
        )
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(dim, dim, 1), nn.ReLU(), nn.Conv2d(dim, codes, 1))

    def receptive_reach(self) -> int:
        """How many rows up (and columns either side) the vertical stack reaches, and columns left the
        horizontal one: sum of the layers' kernel halves."""
        return sum(layer.v_pad[0] for layer in self.layers)

    def _embed(self, codes: torch.Tensor) -> torch.Tensor:
        return self.embed(codes).permute(0, 3, 1, 2)  # (B, H, W) -> (B, d, H, W)

    def _vertical(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The vertical stack's pre-gate features of every layer, each (B, 2d, H, W)."""
        pres, v = [], x
        for layer in self.layers:
            pre, v = layer.vertical(v)
            pres.append(pre)
        return pres

    def _horizontal(self, x: torch.Tensor, pres: list[torch.Tensor]) -> torch.Tensor:
        """The horizontal stack and the output convolutions -> logits (B, K, H, W)."""
        h = x
        for layer, pre in zip(self.layers, pres):
            h = layer.horizontal(h, pre)
        return self.head(h)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, H, W) long -> logits (B, K, H, W); position (r, c) predicts codes[:, r, c] from the codes
        before it in raster order."""
        x = self._embed(codes)
        return self._horizontal(x, self._vertical(x))

    def nll(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, H, W) -> mean -log p(k_i | k_<i) per position (nats)."""
        return F.cross_entropy(self(codes).float(), codes)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        height: int,
        width: int,
        temperature: float = 1.0,
        top_k: int = 0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """n code grids (n, height, width), drawn position by position (`draw`), row by row: the vertical
        stack once per row, then the horizontal stack on the row's columns up to the one being drawn."""
        device = self.embed.weight.device
        codes = torch.zeros(n, height, width, dtype=torch.long, device=device)
        for r in range(height):
            # row r of the vertical stack depends on rows < r only: the zeros still in row r are not read
            pres = [pre[:, :, r : r + 1] for pre in self._vertical(self._embed(codes[:, : r + 1]))]
            for c in range(width):
                row = self._embed(codes[:, r : r + 1, : c + 1])  # (n, d, 1, c + 1)
                logits = self._horizontal(row, [pre[..., : c + 1] for pre in pres])[:, :, 0, c]
                codes[:, r, c] = draw(logits, temperature, top_k, generator).to(device)
        return codes
