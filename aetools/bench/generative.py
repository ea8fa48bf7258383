"""The generative models' benchmark on a test set (Fashion-MNIST's or CIFAR-10's 10,000 images), baselines in the
same run.

- Reconstruction: test MSE per pixel (and mean per-image PSNR, float, data range 1) beside PCA fitted on
  the training images with as many components as the model's code has dimensions. For a linear AE
  also the principal angles between its decoder's column space and PCA's subspace
  (`scipy.linalg.subspace_angles`).
- VAEs: per test image, k samples z_i ~ q(z|x) and log w_i = log p(x, z_i) - log q(z_i|x). The ELBO is their
  mean (an unbiased estimate), the IWAE bound log (1/k) sum_i w_i (Burda et al. 2016), from the same samples,
  so IWAE >= ELBO holds image by image; both in nats per image (higher is better). KL per dimension (closed
  form, averaged over the test set) and active units (Cov_x E_q[z_j] > 0.01).
- VQ-VAE: PSNR, codes in use on the test set (% of K), perplexity exp(H) of code frequencies, the prior's
  negative log-likelihood of the test images' code grids (`prior_nll`: nats per code, and bits per code),
  and the code's bits per image dimension: -log2 p(codes) / (S * S * C), what the prior needs to describe an
  image's code, spread over its pixel values. That is a rate, not a likelihood of the pixels: the decoder is
  deterministic, so it gives pixels no density, and bits per dimension in the log p(x) sense are undefined.
- Sample quality, in the features of a small classifier trained on the same dataset (`generative.frechet`; not
  Inception FID): the Fréchet distance between n samples and the test set, and precision and recall (Kynkäänniemi et al.
  2019, k = 3) of the n samples against n test images; beside n training images in their place (the floor).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from aetools.bench.report import Report, Table
from aetools.data.fashion import ArrayData


@dataclass
class PCA:
    """Principal components of flattened images: mean (D,), components (k, D) orthonormal rows."""

    mean: torch.Tensor
    components: torch.Tensor

    @classmethod
    def fit(cls, flat: torch.Tensor, k: int) -> PCA:
        """flat (N, D): eigenvectors of the covariance with the k largest eigenvalues (`torch.linalg.eigh`)."""
        x = flat.double()
        mean = x.mean(0)
        centred = x - mean
        _, vectors = torch.linalg.eigh(centred.t() @ centred / (len(x) - 1))  # ascending eigenvalues
        return cls(mean.float(), vectors[:, -k:].flip(1).t().float())

    def reconstruct(self, flat: torch.Tensor) -> torch.Tensor:
        coords = (flat - self.mean) @ self.components.t()
        return coords @ self.components + self.mean


def mse_and_psnr(recon: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """Mean squared error per pixel over the set, and the mean of per-image PSNRs (data range 1)."""
    from skimage.metrics import peak_signal_noise_ratio

    r, t = recon.double().clamp(0, 1).numpy(), target.double().numpy()
    psnrs = [peak_signal_noise_ratio(a, b, data_range=1.0) for a, b in zip(t, r)]
    return float(np.mean((r - t) ** 2)), float(np.mean(psnrs))


def principal_angles_deg(basis_a: torch.Tensor, basis_b: torch.Tensor) -> np.ndarray:
    """Angles (degrees, largest first) between the column spaces of two (D, k) matrices."""
    from scipy.linalg import subspace_angles

    return np.degrees(subspace_angles(basis_a.double().numpy(), basis_b.double().numpy()))


@torch.no_grad()
def batched(fn, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
    return torch.cat([fn(images[i : i + batch]) for i in range(0, len(images), batch)])


@dataclass
class ModelScores:
    name: str
    kind: str  # ae | linear | vae | hvae | vqvae
    code: str  # what the code is, e.g. "16" or "14x14 of 256"
    params: int
    seconds: float | None
    mse: float
    psnr: float
    pca_mse: float | None = None
    angles: np.ndarray | None = None
    elbo: float | None = None
    iwae: float | None = None
    kl: float | None = None
    kl_per_dim: list[float] = field(default_factory=list)
    active: int | None = None
    codes_used: float | None = None
    perplexity: float | None = None
    prior_nll: float | None = None
    prior: str = ""  # the VQ-VAE's prior and how it was sampled, e.g. "pixelcnn, T 1, top-k all"
    frechet: float | None = None
    precision: float | None = None
    recall: float | None = None

    def metrics(self, prefix: str = "fashion_test") -> dict:
        """What `--record` stores in the weights' metadata, each key `<prefix>_<measure>`."""
        keys = ("mse", "psnr", "pca_mse", "elbo", "iwae", "kl", "active", "codes_used", "perplexity", "prior_nll")
        found = {k: getattr(self, k) for k in keys if getattr(self, k) is not None}
        if self.angles is not None:
            found["max_principal_angle_deg"] = float(self.angles.max())
        if self.frechet is not None:
            found["frechet_classifier"] = self.frechet
        if self.precision is not None:
            found["precision_k3"], found["recall_k3"] = self.precision, self.recall
        return {f"{prefix}_{k}": (round(v, 6) if isinstance(v, float) else v) for k, v in found.items()}


def kind_of(model: nn.Module) -> str:
    arch = model.arch
    return "linear" if arch == "ae" and model.config.linear else arch


@torch.no_grad()
def vae_bounds(model: nn.Module, images: torch.Tensor, k: int, batch: int = 100) -> tuple[float, float]:
    """-> (ELBO, IWAE_k), nats per image, averaged over `images`."""
    elbo, iwae = [], []
    for i in range(0, len(images), batch):
        log_w = model.log_weights(images[i : i + batch], k).double()  # (k, B)
        elbo.append(log_w.mean(0))
        iwae.append(torch.logsumexp(log_w, 0) - math.log(k))
    return float(torch.cat(elbo).mean()), float(torch.cat(iwae).mean())


@torch.no_grad()
def vae_posterior_stats(model: nn.Module, images: torch.Tensor) -> tuple[list[float], int, float]:
    """-> (KL per dimension averaged over images, active units, total KL) for the code [z (, z2)]."""
    from aetools.generative.vae import VAE, gaussian_kl

    if isinstance(model, VAE):
        mu, logvar = zip(*(model.posterior(images[i : i + 500]) for i in range(0, len(images), 500)))
        mu, logvar = torch.cat(mu), torch.cat(logvar)
        per_dim = gaussian_kl(mu, logvar).mean(0)
    else:  # hierarchical: the top level's KL to N(0, I) and the lower level's to p(z1 | z2), at the means
        parts = [model.infer(images[i : i + 500], sample=False) for i in range(0, len(images), 500)]
        s = {key: torch.cat([p[key] for p in parts]) for key in parts[0]}
        kl1 = gaussian_kl(s["mu1"], s["logvar1"], s["mu_p"], s["logvar_p"]).mean(0)
        per_dim = torch.cat([kl1, gaussian_kl(s["mu2"], s["logvar2"]).mean(0)])
        mu = torch.cat([s["mu1"], s["mu2"]], dim=1)
    active = int((mu.var(0) > 0.01).sum())
    return per_dim.tolist(), active, float(per_dim.sum())


def training_seconds(training: dict) -> float | None:
    """A model's training time, its earlier stages included (a run with --init records the one before it)."""
    if training.get("seconds") is None:
        return None
    total = training["seconds"]
    while training.get("init"):
        training = training["init"].get("training", {})
        total += training.get("seconds") or 0
    return total


@torch.no_grad()
def evaluate_model(
    name: str,
    model: nn.Module,
    test: ArrayData,
    train_flat: torch.Tensor,
    iwae_k: int,
    on_step=lambda: None,
    iwae_images: int = 0,
) -> ModelScores:
    """Everything the benchmark measures of one model; the VAE bounds on the first `iwae_images` test images
    (0: all), since each costs `iwae_k` decoder passes."""
    model.eval()
    images = test.tensors()
    kind = kind_of(model)
    seconds = training_seconds(getattr(model, "weights_header", {}).get("training", {}))
    from aetools.generative.pipeline import reconstruct
    from aetools.generative.vqvae import code_usage

    recon = batched(lambda x: reconstruct(model, x), images)
    mse, psnr = mse_and_psnr(recon, images)
    on_step()
    code = str(getattr(model, "code_dim", ""))
    result = ModelScores(name, kind, code, sum(p.numel() for p in model.parameters()), seconds, mse, psnr)
    if kind in ("ae", "linear", "vae", "hvae"):
        pca = PCA.fit(train_flat, model.code_dim)
        result.pca_mse, _ = mse_and_psnr(pca.reconstruct(images.flatten(1)).view_as(images), images)
        if kind == "linear":
            result.angles = principal_angles_deg(model.decoder.weight.detach().cpu(), pca.components.t())
    if kind in ("vae", "hvae"):
        result.elbo, result.iwae = vae_bounds(model, images[: iwae_images or None], iwae_k)
        result.kl_per_dim, result.active, result.kl = vae_posterior_stats(model, images)
    if kind == "vqvae":
        indices = batched(model.indices, images)
        result.code = f"{model.grid}x{model.grid} of {model.config.codes}"
        result.codes_used, result.perplexity = code_usage(indices, model.config.codes)
        if model.prior is not None:
            result.prior_nll = prior_nll(model, indices)
    on_step()
    return result


@torch.no_grad()
def prior_nll(model: nn.Module, indices: torch.Tensor, batch: int = 500) -> float:
    """A VQ-VAE prior's mean -log p(k_i | k_<i) over every code of `indices` (N, H, W), nats per code: each
    batch's mean weighted by its size (a last, smaller batch counts for what it holds)."""
    total = 0.0
    for i in range(0, len(indices), batch):
        part = indices[i : i + batch]
        total += float(model.prior_nll(part)) * len(part)
    return total / len(indices)


@dataclass
class SampleScores:
    """One set of images judged against the test set: Fréchet distance, precision and recall (k = 3)."""

    frechet: float
    precision: float
    recall: float


def sample_scores(
    classifier: nn.Module,
    models: dict[str, nn.Module],
    train: ArrayData,
    test: ArrayData,
    n: int,
    seed: int = 0,
    sampling: dict | None = None,
    on_model: Callable[[str], None] = lambda _: None,
) -> tuple[SampleScores, dict[str, SampleScores]]:
    """-> (the floor: n training images in the samples' place, {name: its n samples}). The Fréchet distance
    is to the whole test set, precision and recall against n test images (the same n for every row: the
    k-NN balls depend on the set size). sampling: temperature / top_k for the VQ-VAEs (None: their own)."""
    from aetools.generative.frechet import features, frechet_distance, precision_recall, statistics
    from aetools.generative.pipeline import sample_images

    test_feats = features(classifier, test.tensors())
    test_stats = statistics(test_feats)
    pick_test = np.random.default_rng(seed + 1).permutation(len(test))[: min(n, len(test))]
    real = test_feats[torch.from_numpy(np.sort(pick_test))]

    def judge(images: torch.Tensor) -> SampleScores:
        feats = features(classifier, images)
        return SampleScores(frechet_distance(statistics(feats), test_stats), *precision_recall(real, feats))

    floor = judge(train.subset(np.sort(np.random.default_rng(seed).permutation(len(train))[:n])).tensors())
    scores = {}
    for name, model in models.items():
        on_model(name)
        options = (sampling or {}) if model.arch == "vqvae" else {}
        parts = [sample_images(model, min(500, n - i), seed + i, **options) for i in range(0, n, 500)]
        scores[name] = judge(torch.cat(parts))
    return floor, scores


SAMPLED_FROM = {  # how each kind of model is sampled for the Fréchet distance (`generative.pipeline.sample_images`)
    "ae": "Gaussian fitted to its codes",
    "linear": "Gaussian fitted to its codes",
    "vae": "prior N(0, I)",
    "hvae": "prior: z2 ~ N(0, I), then z1 given z2",
}


def vq_sampling(model: nn.Module, sampling: dict) -> str:
    """How a VQ-VAE's codes are drawn, e.g. "pixelcnn prior, T 1, top-k all"."""
    temperature = sampling.get("temperature") or model.config.temperature
    top_k = sampling.get("top_k") if sampling.get("top_k") is not None else model.config.top_k
    return f"{model.config.prior} prior, T {temperature:g}, top-k {top_k or 'all'}"


def generative_report(
    models: dict[str, nn.Module],
    train: ArrayData,
    test: ArrayData,
    iwae_k: int,
    iwae_images: int = 0,
    judge: nn.Module | None = None,
    judge_name: str = "",
    samples: int = 0,
    sampling: dict | None = None,
    on_stage: Callable[[str], None] = lambda _: None,
    on_step: Callable[[], None] = lambda: None,
    data_name: str = "Fashion-MNIST",
    metric_prefix: str = "fashion_test",
) -> Report:
    """`aetools eval generative`: reconstruction beside PCA, linear AEs against PCA, VAE bounds, VQ code use
    and prior NLL, and (with a `judge` classifier and `samples`) the Fréchet distance, precision and recall
    of samples beside the training images' floor. data_name: the dataset, as titles name it; each model's
    metrics are `<metric_prefix>_<measure>` (`ModelScores.metrics`), e.g. `fashion_test_psnr`. sampling:
    temperature / top_k for the VQ-VAEs' priors (None: each model's own).
    on_stage: told what is being measured (a model's name, then the sampling); on_step: called twice per
    model."""
    sampling = {k: v for k, v in (sampling or {}).items() if v is not None}
    train_flat = train.tensors().flatten(1)
    scores = []
    for name, model in models.items():
        on_stage(name)
        scores.append(evaluate_model(name, model, test, train_flat, iwae_k, on_step, iwae_images))
        if model.arch == "vqvae" and model.prior is not None:
            scores[-1].prior = vq_sampling(model, sampling)
    floor = None
    if judge is not None:
        floor, judged = sample_scores(
            judge, models, train, test, samples, sampling=sampling, on_model=lambda name: on_stage(f"sampling {name}")
        )
        for r in scores:
            j = judged[r.name]
            r.frechet, r.precision, r.recall = j.frechet, j.precision, j.recall

    n_test = len(test)
    rows = []
    for r in scores:
        ratio = "-" if r.pca_mse is None else f"{r.mse / r.pca_mse:.3f}"
        pca = "-" if r.pca_mse is None else f"{r.pca_mse:.5f}"
        minutes = "-" if r.seconds is None else f"{r.seconds / 60:.1f} min"
        rows.append([r.name, r.kind, r.code, f"{r.mse:.5f}", pca, ratio, f"{r.psnr:.2f}", f"{r.params:,}", minutes])
    tables = [
        Table(
            f"Reconstruction, {data_name} test ({n_test:,} images); PCA fitted on the {len(train):,} training images",
            ["model", "kind", "code", "MSE", "PCA MSE (same k)", "MSE / PCA", "PSNR dB", "params", "training time"],
            rows,
        )
    ]
    if linear := [r for r in scores if r.angles is not None]:
        rows = [
            [r.name, f"{r.mse:.5f}", f"{r.pca_mse:.5f}", f"{(r.mse / r.pca_mse - 1) * 100:+.2f}%"]
            + [f"{r.angles.max():.2f}°", f"{r.angles.mean():.2f}°"]
            for r in linear
        ]
        columns = ["model", "MSE", "PCA MSE", "difference", "largest principal angle", "mean angle"]
        tables.append(Table("Linear AE vs PCA (same k)", columns, rows))
    if vaes := [r for r in scores if r.elbo is not None]:
        title = (
            f"VAE bounds on log p(x), nats per image (higher is tighter); k = {iwae_k} samples per image, "
            f"{min(iwae_images or n_test, n_test):,} test images"
        )
        pixels = test.tensors(0, 1)[0].numel()  # -log p(x) / (pixels ln 2): bits per dimension, from the IWAE bound
        columns = ["model", "ELBO", f"IWAE (k={iwae_k})", "IWAE - ELBO", "IWAE bits/dim", "KL", "active units"]
        columns.append("KL per dimension")
        rows = [
            [
                r.name,
                f"{r.elbo:.2f}",
                f"{r.iwae:.2f}",
                f"{r.iwae - r.elbo:.2f}",
                f"{-r.iwae / pixels / math.log(2):.4f}",
            ]
            + [f"{r.kl:.2f}"]
            + [f"{r.active}/{len(r.kl_per_dim)}", " ".join(f"{v:.1f}" for v in sorted(r.kl_per_dim, reverse=True))]
            for r in vaes
        ]
        tables.append(Table(title, columns, rows))
    if vqs := [r for r in scores if r.codes_used is not None]:
        columns = ["model", "code grid", "PSNR dB", "codes in use", "perplexity", "prior"]
        columns += ["prior NLL (nats/code)", "bits/code", "code bits/dim"]
        dims = {r.name: models[r.name].config.channels * models[r.name].config.size ** 2 for r in vqs}
        rows = [
            [r.name, r.code, f"{r.psnr:.2f}", f"{r.codes_used:.1f}%", f"{r.perplexity:.1f}", r.prior.split(",")[0]]
            + (["-", "-", "-"] if r.prior_nll is None else vq_bits(r.prior_nll, models[r.name].grid ** 2, dims[r.name]))
            for r in vqs
        ]
        tables.append(Table(f"VQ-VAE codes; prior NLL on the {n_test:,} test images' code grids", columns, rows))
    if floor is not None:
        real = min(samples, n_test)
        rows = [
            ["training images (floor)", "-", f"{floor.frechet:.2f}", f"{floor.precision:.3f}", f"{floor.recall:.3f}"]
        ]
        rows += [
            [r.name, r.prior or SAMPLED_FROM[r.kind], f"{r.frechet:.2f}", f"{r.precision:.3f}", f"{r.recall:.3f}"]
            for r in scores
        ]
        tables.append(
            Table(
                f"Sample quality in {judge_name}'s features (not Inception FID), {samples:,} samples each: Fréchet "
                f"distance to the {n_test:,} test images; precision and recall (k = 3) against {real:,} of them",
                ["generator", "sampled from", "Fréchet distance", "precision", "recall"],
                rows,
            )
        )
    return Report(tables, {models[r.name].weights_path: r.metrics(metric_prefix) for r in scores})


def vq_bits(nats_per_code: float, codes: int, dims: int) -> list[str]:
    """The prior's NLL as table cells: nats per code, bits per code, and the code's bits per image dimension
    (`codes` codes per image, `dims` = S * S * C values per image)."""
    bits = nats_per_code / math.log(2)
    return [f"{nats_per_code:.3f}", f"{bits:.3f}", f"{bits * codes / dims:.4f}"]
