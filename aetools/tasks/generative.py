"""The generative and classic autoencoders as tasks: what a training pair is, the loss, what validation measures.

    ae          undercomplete / linear / sparse / denoising / contractive AE (`aetools.generative.classic`)
    vae, hvae   VAE, beta-VAE, two-level hierarchical VAE (`aetools.generative.vae`)
    vqvae       VQ-VAE with its learned prior (`aetools.generative.vqvae`)
    classifier  the small CNN whose features measure sample quality (`aetools.generative.frechet`)

The pair is the image and itself: the model's bottleneck (and, for the denoising AE, its own corruption of
its input in training mode) is what makes reconstruction a task. Data: `--data fashion-mnist` (the idx files,
`aetools.data.fashion`: 28 x 28 grey), `--data cifar10` (its tar files, `aetools.data.cifar`: 32 x 32 colour,
flipped left-right at random in training) or image folders, from which square crops of the model's `size`
are taken.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from aetools.data.cifar import CIFAR10
from aetools.data.datasets import DataError
from aetools.generative.classic import AEOutput, ae_loss
from aetools.generative.frechet import classifier_loss
from aetools.generative.vae import VAEOutput, vae_loss
from aetools.generative.vqvae import VQOutput, code_usage, vq_loss
from aetools.tasks.base import (
    FASHION_MNIST,
    Batch,
    DataRequest,
    Task,
    TrainDefaults,
    TrainingData,
    fashion_mnist_or_folders,
    register_task,
)

# Fashion-MNIST: 60,000 training images, 1,000 of them held out for validation; 4,000 steps of 128 = 8.6 epochs.
FASHION_DEFAULTS = dict(crop=28, batch_size=128, steps=4000, lr=2e-3, val_every=500, val_images=1000, val_crop=28)


def reconstruction_pair(clean: torch.Tensor, generator: torch.Generator) -> Batch:
    """The autoencoder's training pair: the image is both input and target."""
    return Batch({"image": clean}, clean)


def shifted_with_labels(clean: torch.Tensor, generator: torch.Generator, labels: torch.Tensor) -> Batch:
    """Classifier pairs: each image moved by up to 2 pixels each way (zero fill), and its label."""
    b, _, h, w = clean.shape
    padded = F.pad(clean, (2, 2, 2, 2))
    offsets = torch.randint(0, 5, (b, 2), generator=generator)
    moved = torch.stack([padded[i, :, y : y + h, x : x + w] for i, (y, x) in enumerate(offsets.tolist())])
    return Batch({"image": moved}, labels)


def labelled(clean: torch.Tensor, generator: torch.Generator, labels: torch.Tensor) -> Batch:
    return Batch({"image": clean}, labels)


def shape_from_data(model: dict, options: dict, data: list[str]) -> None:
    """The model's image shape from --data unless set: Fashion-MNIST grey 28 x 28 (the configs' defaults),
    CIFAR-10 colour 32 x 32, image folders colour (unless `--set channels=1`) at the config's size."""
    if data == [CIFAR10]:
        model.setdefault("size", 32)
    if data != [FASHION_MNIST]:
        model.setdefault("channels", 3)


def flipped(degrade):
    """A degrade that first mirrors each image left-right with probability 1/2 (from the step's generator):
    a mirrored photo is as likely as the photo, which doubles what 9,000 CIFAR-10 images teach."""

    def flip_then(clean: torch.Tensor, generator: torch.Generator, *labels):
        flip = torch.rand(len(clean), generator=generator) < 0.5
        clean = torch.where(flip[:, None, None, None], clean.flip(-1), clean)
        return degrade(clean, generator, *labels)

    return flip_then


def arrays_or_folders(task: Task, model, request: DataRequest, degrade, val_degrade) -> TrainingData:
    """`--data cifar10`: epochs of shuffled, randomly mirrored batches of CIFAR-10's train.tar (val_count held
    out, not mirrored); `--data fashion-mnist` or image folders: `fashion_mnist_or_folders`."""
    from aetools.data.cifar import load_cifar10
    from aetools.data.fashion import ArrayBatches, DatasetError, array_validation_batches, split_arrays

    if request.sources != [CIFAR10]:
        if request.cifar_dir:
            raise DataError("--cifar-dir applies to --data cifar10 only")
        return fashion_mnist_or_folders(task, model, request, degrade, val_degrade)
    try:
        arrays = load_cifar10("train", request.cifar_dir)
    except DatasetError as e:
        raise DataError(str(e)) from None
    side, channels = arrays.images.shape[1], arrays.images.shape[3]
    if (model.config.size, model.config.channels) != (side, channels):
        raise DataError(
            f"CIFAR-10 images are {side}x{side} colour; the model is set for size {model.config.size} with "
            f"{model.config.channels} channels"
        )
    train_arrays, val_arrays = split_arrays(arrays, request.val_count, seed=request.seed)
    train = ArrayBatches(
        train_arrays,
        request.batch_size,
        flipped(degrade),
        request.seed,
        request.rank,
        request.steps,
        labels=task.labels,
    )
    val = array_validation_batches(val_arrays, val_degrade, task.labels) if request.validate else []
    return TrainingData(train, val, len(train_arrays), side)


def autoencoder_loss(output: AEOutput, batch: Batch):
    """ae: MSE + lambda * Omega (`ae_loss`), the penalty logged."""
    return ae_loss(output, batch.target), {"penalty": output.penalty}


def variational_loss(output: VAEOutput, batch: Batch):
    """vae, hvae: the negative ELBO per pixel (`vae_loss`), KL per image logged."""
    return vae_loss(output, batch.target), {"kl": output.kl.mean()}


def quantised_loss(output: VQOutput, batch: Batch):
    """vqvae: reconstruction + commitment + the prior's cross-entropy (`vq_loss`), the last two logged."""
    return vq_loss(output, batch.target), {"commitment": output.commitment, "prior nll": output.prior_nll}


def vq_notes(model, outputs: list[VQOutput]) -> str:
    """Codebook usage on the validation images, perplexity exp(H) of the code frequencies, codes revived so far,
    and the prior's NLL of the validation images' codes (nats per code): what a prior-only stage improves."""
    used, perplexity = code_usage(torch.cat([o.indices.flatten() for o in outputs]), model.config.codes)
    notes = f"codes in use {used:.1f}%, perplexity {perplexity:.1f}, revived {int(model.quantizer.revived)}"
    if model.prior is not None:
        total = sum(float(model.prior_nll(o.indices)) * len(o.indices) for o in outputs)
        notes += f", prior NLL {total / sum(len(o.indices) for o in outputs):.3f} nats/code"
    return notes


def vae_notes(model, outputs: list[VAEOutput]) -> str:
    """Mean KL (nats per image) on the validation images, and this step's KL weight (or capacity)."""
    kl = float(torch.cat([o.kl for o in outputs]).mean())
    weight, capacity = model.schedule()
    schedule = f"KL weight {weight:.2f}" if capacity is None else f"capacity {capacity:.1f} nats"
    return f"KL {kl:.2f} nats, {schedule}"


def accuracy(logits: torch.Tensor, batch: Batch) -> float:
    return float((logits.argmax(1).cpu() == batch.target.cpu()).float().mean()) * 100


def autoencoder_task(name: str, loss, reconstruction, description: str, val_notes=None) -> Task:
    """What the four autoencoder tasks share: the image is its own target, grey 28x28 by default (Fashion-MNIST),
    whole images at the model's size from folders. reconstruction: the model's output -> the rebuilt image."""
    return register_task(
        Task(
            name=name,
            arch=name,
            degrade=reconstruction_pair,
            loss=loss,
            data=arrays_or_folders,
            configure=shape_from_data,
            val_notes=val_notes,
            channels=1,
            sized=True,
            train=TrainDefaults(**FASHION_DEFAULTS),
            validation_pair=lambda out, batch: (reconstruction(out), batch.target),
            description=description,
        )
    )


def vae_mean(out: VAEOutput) -> torch.Tensor:
    return torch.sigmoid(out.logits)


autoencoder_task(
    "ae",
    autoencoder_loss,
    lambda out: out.recon,
    "undercomplete autoencoder: conv or linear (= PCA); sparse, denoising, contractive",
)
autoencoder_task(
    "vae",
    variational_loss,
    vae_mean,
    "variational autoencoder; beta-VAE with --beta, KL warm-up or capacity",
    vae_notes,
)
autoencoder_task("hvae", variational_loss, vae_mean, "two-level hierarchical VAE with top-down inference", vae_notes)
autoencoder_task(
    "vqvae",
    quantised_loss,
    lambda out: out.recon,
    "VQ-VAE (EMA codebook) with a learned autoregressive prior over its codes (transformer or gated PixelCNN)",
    vq_notes,
)
register_task(
    Task(
        name="classifier",
        arch="fashion-classifier",
        degrade=shifted_with_labels,
        val_degrade=labelled,
        loss=lambda logits, batch: (classifier_loss(logits, batch.target), {}),
        data=arrays_or_folders,
        configure=shape_from_data,
        channels=1,
        labels=True,
        train=TrainDefaults(**{**FASHION_DEFAULTS, "steps": 3000}),
        score=accuracy,
        score_name="accuracy",
        score_unit="%",
        description="the small Fashion-MNIST or CIFAR-10 classifier whose features measure sample quality (eval only)",
    )
)

__all__ = ["AEOutput", "VAEOutput", "VQOutput", "reconstruction_pair"]
