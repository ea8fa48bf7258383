"""Semantic hashing: how a training pair is made and the loss that shapes the binary code.

A training pair is a photo and an edited copy of it (`data.augment.random_edit`: crops, pads, small
rotations, flips, colour, grey, blur, text, rescaling, JPEG). Both go through the same network in one batch:

    image (2B, 3, S, S) = [photos; edited copies]  ->  HashOutput(recon, logits, units)
    z = 2 * units - 1 in (-1, 1)                     (saturated units: z = +-1, cosine = 1 - 2 Hamming / bits)

    loss = RECON_WEIGHT * MSE(decode(code of photo), photo)                  the autoencoder objective
         + mean_p NT-Xent(z_photo[:p], z_copy[:p]; TAU), p in PREFIXES + bits  pull copies, push the rest
         + mean_j (mean_i z_ij)^2                                             each bit set half the time
         + mean_{j != k} (mean_i z_ij z_ik)^2                                  bits uncorrelated

The contrastive term (NT-Xent, Chen et al. 2020 "SimCLR") pulls each copy's code to its photo's and pushes
it away from the other 2B - 2 codes in the batch; with the noise before the sigmoid pushing z to +-1, it
acts on Hamming distances. Pulling alone would be met by a constant code; the reconstruction, the push and
the balance term all rule that out.

Nested codes: the contrastive term is also applied to the first 16 and 32 bits (as Matryoshka
representations do, Kusupati et al. 2022), so a 64-bit code's prefixes are usable shorter codes.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from aetools.data.augment import random_edit
from aetools.heads.hash import HashOutput
from aetools.tasks.base import Batch, Task, TrainDefaults, register_task

RECON_WEIGHT = 10.0
TAU = 0.3
PREFIXES = (16, 32)  # shorter codes trained inside the long one
VIEW_SIZE = 128  # pairs are stored at most this big; the network resizes them to its own size


def _to_pil(image: torch.Tensor) -> Image.Image:
    return Image.fromarray((image.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))


def _to_tensor(image: Image.Image, size: int) -> torch.Tensor:
    image = image.resize((size, size), Image.BILINEAR, reducing_gap=None)
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)


def degrade_for_hash(clean: torch.Tensor, generator: torch.Generator) -> Batch:
    """clean (B, 3, H, W) crops -> Batch(inputs={image: [photos; edited copies] (2B, 3, s, s)}, target=photos).

    Each "photo" is a random window of its crop (60-100% of each side, so its aspect ratio varies as real
    photos' do, all squeezed to a square as at inference); its copy is a random edit of that window."""
    rng = np.random.default_rng(int(torch.randint(2**62, (1,), generator=generator)))
    size = min(VIEW_SIZE, clean.shape[-1])
    photos, copies = [], []
    for crop in clean:
        window = _to_pil(crop)
        w, h = window.size
        cw, ch = round(w * rng.uniform(0.6, 1.0)), round(h * rng.uniform(0.6, 1.0))
        left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        photo = window.crop((left, top, left + cw, top + ch))
        photos.append(_to_tensor(photo, size))
        copies.append(_to_tensor(random_edit(photo, rng), size))
    photos_t = torch.stack(photos)
    return Batch({"image": torch.cat([photos_t, torch.stack(copies)])}, photos_t, reference=photos_t)


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """a, b (B, D): row i of a and row i of b are a positive pair, every other row of either a negative."""
    z = F.normalize(torch.cat([a, b]), dim=1)
    logits = z @ z.t() / temperature
    logits.fill_diagonal_(float("-inf"))  # a code is not its own positive
    n = a.shape[0]
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(a.device)
    return F.cross_entropy(logits, positives)


def bit_balance(z: torch.Tensor) -> torch.Tensor:
    """z (N, bits) in (-1, 1) -> mean squared per-bit mean: 0 when each bit is +1 half the time."""
    return z.mean(dim=0).square().mean()


def bit_decorrelation(z: torch.Tensor) -> torch.Tensor:
    """z (N, bits) -> mean squared off-diagonal entry of the bits' second-moment matrix z^T z / N."""
    bits = z.shape[1]
    moment = z.t() @ z / z.shape[0]
    off = moment - torch.diag(torch.diagonal(moment))
    return off.square().sum() / (bits * (bits - 1))


def code_lengths(bits: int) -> list[int]:
    """The code lengths trained: the nested prefixes shorter than `bits`, and `bits`."""
    return [p for p in PREFIXES if p < bits] + [bits]


def hash_loss_terms(output: HashOutput, photos: torch.Tensor) -> dict[str, torch.Tensor]:
    n = photos.shape[0]
    z = 2 * output.units - 1
    return {
        "recon": F.mse_loss(output.recon[:n], output.target[:n]),  # the photos, as the encoder saw them
        "contrast": torch.stack([nt_xent(z[:n, :p], z[n:, :p], TAU) for p in code_lengths(z.shape[1])]).mean(),
        "balance": bit_balance(z),
        "decorrelation": bit_decorrelation(z),
    }


def hash_loss(output: HashOutput, photos: torch.Tensor) -> torch.Tensor:
    terms = hash_loss_terms(output, photos)
    return RECON_WEIGHT * terms["recon"] + terms["contrast"] + terms["balance"] + terms["decorrelation"]


def hash_objective(output: HashOutput, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The task loss: `hash_loss` on the batch's photos, each term logged."""
    terms = hash_loss_terms(output, batch.target)
    return RECON_WEIGHT * terms["recon"] + terms["contrast"] + terms["balance"] + terms["decorrelation"], terms


def hash_validation_pair(output: HashOutput, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """For the trainer's validation PSNR: the photo rebuilt from its binary code, and the photo as the encoder
    saw it (`HashNet.seen`)."""
    n = batch.target.shape[0]
    return output.recon[:n].float().cpu(), output.target[:n].float().cpu()


TASK = register_task(
    Task(
        name="hash",
        arch="hash-unet",
        degrade=degrade_for_hash,
        loss=hash_objective,
        train=TrainDefaults(crop=256, batch_size=64, steps=4000, lr=1e-3, val_every=250, val_images=16, val_crop=256),
        validation_pair=hash_validation_pair,
        description="binary codes for near-duplicate and similar-image search (sigmoid units + noise)",
    )
)
