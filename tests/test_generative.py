"""The generative and classic autoencoders: their maths (KL, Jacobian penalty, PCA), VQ mechanics, the prior,
the trainer on Fashion-MNIST-format data (made here, never ../shared), resume, and the commands' outputs."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pytest
import torch
from PIL import Image

from aetools.data.fashion import DatasetError, load_fashion_mnist, read_idx
from tests.conftest import run, tiny_model

# ------------------------------------------------------------------------------------------- data


def write_idx(path, array: np.ndarray) -> None:
    """The idx format: 0, 0, type 0x08 (uint8), ndim; sizes as big-endian int32; the values."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def synthetic_clothes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n 28x28 light-on-black images of 10 kinds of shape (a box of a width, height and brightness set by
    the class, jittered) and their labels: something an autoencoder and a classifier can learn fast."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = np.zeros((n, 28, 28), np.uint8)
    for i, c in enumerate(labels):
        h, w = 6 + 2 * (c % 5) + rng.integers(0, 3), 6 + 3 * (c // 5) + 2 * (c % 3) + rng.integers(0, 3)
        y, x = rng.integers(2, 28 - h - 1), rng.integers(2, 28 - w - 1)
        images[i, y : y + h, x : x + w] = 120 + 12 * c
    return images, labels


@pytest.fixture(scope="module")
def fashion_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fashion")
    for split, stem, n in (("train", "train", 640), ("test", "t10k", 200)):
        images, labels = synthetic_clothes(n, seed=0 if split == "train" else 1)
        write_idx(folder / f"{stem}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{stem}-labels-idx1-ubyte.gz", labels)
    return folder


def test_idx_files_read_back_exactly_and_bad_ones_are_named(fashion_dir, tmp_path):
    train = load_fashion_mnist("train", fashion_dir)
    images, labels = synthetic_clothes(640, seed=0)
    assert train.images.shape == (640, 28, 28, 1)
    assert np.array_equal(train.images[..., 0], images) and np.array_equal(train.labels, labels)
    (tmp_path / "bad").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x09abc")  # says 9 values, has 3
    with pytest.raises(DatasetError, match="bad"):
        read_idx(tmp_path / "bad")
    with pytest.raises(DatasetError, match="missing"):
        load_fashion_mnist("train", tmp_path)


# ------------------------------------------------------------------------------------------- maths


def test_closed_form_kl_matches_a_monte_carlo_estimate():
    from torch.distributions import Normal

    from aetools.generative.vae import gaussian_kl

    torch.manual_seed(0)
    mu, logvar = torch.tensor([0.7, -1.2, 0.1]), torch.tensor([-0.5, 0.8, -2.0])
    mu_p, logvar_p = torch.tensor([0.2, 0.3, -0.4]), torch.tensor([0.4, -0.3, -1.0])
    q = Normal(mu, (0.5 * logvar).exp())
    z = q.sample((400_000,))
    for prior, closed in (
        (Normal(0.0, 1.0), gaussian_kl(mu, logvar)),
        (Normal(mu_p, (0.5 * logvar_p).exp()), gaussian_kl(mu, logvar, mu_p, logvar_p)),
    ):
        monte_carlo = (q.log_prob(z) - prior.log_prob(z)).mean(0)  # E_q[log q - log p]
        assert torch.allclose(closed, monte_carlo, atol=0.02), (closed, monte_carlo)


@pytest.mark.parametrize("linear", [True, False])
def test_contractive_penalty_is_the_jacobian_frobenius_norm(linear):
    from aetools.generative.classic import jacobian_frobenius_sq, jacobian_frobenius_sq_hutchinson

    model = tiny_model("ae", latent=4, linear=linear, size=8, widths=(4, 8))
    x = torch.rand(3, 1, 8, 8, requires_grad=True)
    code = model.encode(x)
    exact = jacobian_frobenius_sq(code, x)
    for i in range(3):  # reference: the full Jacobian of sample i
        jac = torch.autograd.functional.jacobian(lambda xi: model.encode(xi[None])[0], x[i].detach())
        assert torch.allclose(exact[i], jac.square().sum(), rtol=1e-4)
    torch.manual_seed(0)
    probes = 2000  # one probe each for 2,000 copies of the batch, in one backward pass
    copies = x.detach().repeat(probes, 1, 1, 1).requires_grad_(True)
    estimates = jacobian_frobenius_sq_hutchinson(model.encode(copies), copies).view(probes, 3)
    assert torch.allclose(estimates.mean(0), exact, rtol=0.08)  # unbiased: the mean converges to the norm
    (ones,) = torch.autograd.grad(code, x, grad_outputs=torch.ones_like(code), retain_graph=True)
    assert not torch.allclose(ones.flatten(1).square().sum(1), exact, rtol=0.05)  # J^T 1 is not it
    model.train()
    model.config.reg, model.config.lam = "contractive", 0.5
    out = model(x.detach())
    assert torch.allclose(out.penalty, 0.5 * exact.mean(), rtol=1e-4)
    out.penalty.backward()  # the penalty trains the encoder
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_sparse_and_denoising_regularisers():
    model = tiny_model("ae", latent=4, size=8, widths=(4, 8), reg="sparse", lam=0.1).train()
    x = torch.rand(5, 1, 8, 8)
    out = model(x)
    assert torch.allclose(out.penalty, 0.1 * out.code.abs().sum(1).mean())
    noisy = tiny_model("ae", latent=4, size=8, widths=(4, 8), reg="denoising", corruption="masking", level=0.5)
    torch.manual_seed(1)
    train_code = noisy.train()(x).code
    assert not torch.allclose(train_code, noisy.eval()(x).code)  # corrupted in training only
    assert torch.equal(noisy.eval()(x).code, noisy.encode(x))


@pytest.mark.slow
def test_linear_autoencoder_learns_the_pca_subspace():
    from aetools.bench.generative import PCA, principal_angles_deg
    from aetools.generative.classic import ae_loss

    torch.manual_seed(0)
    d, k = 64, 4
    basis = torch.linalg.qr(torch.randn(d, d))[0]
    scales = torch.tensor([3.0, 2.5, 2.0, 1.5] + [0.2] * (d - 4))  # a clear gap after k components
    data = (torch.randn(4000, d) * scales) @ basis.t() + 0.5
    model = tiny_model("ae", channels=1, size=8, latent=k, linear=True).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    images = data.view(-1, 1, 8, 8)
    for _ in range(800):
        batch = images[torch.randint(0, len(images), (256,))]
        loss = ae_loss(model(batch), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    pca = PCA.fit(data, k)
    angles = principal_angles_deg(model.decoder.weight.detach(), pca.components.t())
    assert angles.max() < 5, angles
    with torch.no_grad():
        ae_mse = float(((model.eval()(images).recon - images) ** 2).mean())
    pca_mse = float(((pca.reconstruct(data) - data) ** 2).mean())
    assert ae_mse <= pca_mse * 1.01


# --------------------------------------------------------------------------------------------- VQ


def test_vq_straight_through_reaches_the_encoder_and_dead_codes_are_revived():
    from aetools.generative.vqvae import vq_loss

    model = tiny_model("vqvae", size=8, widths=(4, 8), codes=16, code_dim=4, prior_layers=0).train()
    model.quantizer.embed.add_(100.0)  # every code far from the data: none is used, all die
    model.quantizer.ema_sum.copy_(model.quantizer.embed)
    model.quantizer.ema_count.fill_(0.5)  # under dead_below = 1
    x = torch.rand(8, 1, 8, 8)
    out = model(x)
    vq_loss(out, x).backward()
    encoder_grad = model.trunk.backbone.stem.weight.grad
    assert encoder_grad is not None and encoder_grad.abs().sum() > 0  # through the argmin, straight-through
    assert int(model.quantizer.revived) == 15  # all but the one code the whole batch was assigned to
    z_e = model.encode(x).permute(0, 2, 3, 1).reshape(-1, 4)
    nearest = torch.cdist(model.quantizer.embed, z_e.detach()).min(1).values
    assert int((nearest < 1e-3).sum()) == 15  # the revived codes are encoder outputs of the batch, not at 100
    # Now used, codes stay put: no code is dead after a second pass with the same data.
    before = int(model.quantizer.revived)
    model(x)
    assert int(model.quantizer.revived) - before < 16


def test_prior_samples_valid_code_grids():
    model = tiny_model(
        "vqvae", size=8, widths=(4, 8), codes=16, code_dim=4, prior_dim=16, prior_layers=1, prior_heads=2
    )
    indices = model.prior.sample(5, generator=torch.Generator().manual_seed(0))
    assert indices.shape == (5, 16) and indices.dtype == torch.long
    assert int(indices.min()) >= 0 and int(indices.max()) < 16
    images = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert images.shape == (3, 1, 8, 8) and float(images.min()) >= 0 and float(images.max()) <= 1


def test_prior_is_causal():
    model = tiny_model(
        "vqvae", size=8, widths=(4, 8), codes=16, code_dim=4, prior_dim=16, prior_layers=2, prior_heads=2
    )
    tokens = torch.randint(0, 16, (1, 16))
    changed = tokens.clone()
    changed[0, 10:] = (changed[0, 10:] + 1) % 16
    a, b = model.prior.logits(tokens), model.prior.logits(changed)
    assert torch.allclose(a[:, :10], b[:, :10], atol=1e-5)  # output i sees inputs 0..i only
    assert not torch.allclose(a[:, 10:], b[:, 10:])


# ------------------------------------------------------------------------ gated PixelCNN prior


def dependence(fn, grid: torch.Tensor, codes: int) -> torch.Tensor:
    """Which outputs move when one input code changes: fn(codes (B, H, W)) -> (B, C, H, W). -> (n, n) bool,
    [i, j]: output position i changed when the code at position j (raster order) was changed."""
    h, w = grid.shape
    perturbed = [grid]
    for j in range(h * w):
        changed = grid.clone().view(-1)
        changed[j] = (changed[j] + 1) % codes
        perturbed.append(changed.view(h, w))
    with torch.no_grad():
        out = fn(torch.stack(perturbed)).flatten(2)  # (1 + n, C, n)
    return ((out[1:] - out[:1]).abs().amax(1) > 1e-6).t()


def test_pixelcnn_is_causal_and_has_no_blind_spot():
    from aetools.generative.pixelcnn import GatedPixelCNN

    torch.manual_seed(0)
    grid = torch.randint(0, 8, (5, 5))
    rows = torch.arange(25) // 5
    cols = torch.arange(25) % 5
    # Four layers reach 1 + 3 = 4 rows up and columns either side: all of a 5 x 5 grid.
    deep = GatedPixelCNN(8, dim=8, layers=4, kernel=3, first_kernel=3).eval()
    assert deep.receptive_reach() == 4
    earlier = torch.ones(25, 25).tril(-1).bool()  # [i, j]: j before i in raster order
    assert torch.equal(dependence(deep, grid, 8), earlier)  # every earlier code, no later one, not itself
    # The vertical stack alone (its last layer's features): whole rows above, never its own row.
    vertical = dependence(lambda c: deep._vertical(deep._embed(c))[-1], grid, 8)
    assert torch.equal(vertical, rows[:, None] > rows[None, :])
    # One layer: the masks' exact shape. Type A sees the row above (columns c-1..c+1) and the code to the
    # left, nothing else; a plain 3x3 masked convolution would see the same, but a second one would not see
    # up-right of that (the blind spot), which the four-layer case above rules out.
    one = GatedPixelCNN(8, dim=8, layers=1, kernel=3, first_kernel=3).eval()
    above = (rows[:, None] - rows[None, :] == 1) & ((cols[:, None] - cols[None, :]).abs() <= 1)
    left = (rows[:, None] == rows[None, :]) & (cols[:, None] - cols[None, :] == 1)
    assert torch.equal(dependence(one, grid, 8), above | left)


def test_pixelcnn_loss_decreases_on_repeated_grids():
    from aetools.generative.pixelcnn import GatedPixelCNN

    torch.manual_seed(0)
    prior = GatedPixelCNN(16, dim=16, layers=4)
    patterns = torch.randint(0, 16, (4, 6, 6))  # four grids, seen over and over
    optimizer = torch.optim.Adam(prior.parameters(), lr=3e-3)
    first = prior.nll(patterns).item()
    for _ in range(150):
        loss = prior.nll(patterns[torch.randint(0, 4, (16,))])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    last = prior.nll(patterns).item()
    # From about log 16 = 2.77 nats: once a grid's first codes are seen, the rest is determined; only the
    # first code (4 equally likely values: log 4 / 36 = 0.04 nats per code) stays uncertain.
    assert first > 2.5 and last < 0.25, (first, last)


@pytest.mark.parametrize("prior", ["pixelcnn", "transformer"])
def test_sampling_is_seeded_and_top_k_1_is_greedy(prior):
    model = tiny_model(
        "vqvae", size=8, widths=(4, 8), codes=16, code_dim=4, prior=prior, prior_dim=16, prior_layers=2, prior_heads=2
    )

    def draw(seed, **options):
        return model.sample_indices(6, torch.Generator().manual_seed(seed), **options)

    assert torch.equal(draw(3), draw(3)) and not torch.equal(draw(3), draw(4))
    with torch.no_grad():
        logits = lambda grids: (  # noqa: E731  the full forward's logits for each position (B, K, H, W)
            model.prior(grids)
            if prior == "pixelcnn"
            else model.prior.logits(model.prior._with_bos(grids.flatten(1))).transpose(1, 2).reshape(-1, 16, 4, 4)
        )
        greedy = draw(5, top_k=1)
        assert torch.equal(greedy, logits(greedy).argmax(1))  # each code the argmax given the codes before it
        assert torch.equal(greedy, draw(6, top_k=1))  # greedy: the seed does not matter
        top2 = draw(7, top_k=2, temperature=2.0)
        ranks = (logits(top2) > logits(top2).gather(1, top2[:, None])).sum(1)  # codes more likely than the drawn
        assert int(ranks.max()) <= 1  # always one of the two likeliest
    images = model.sample(3, torch.Generator().manual_seed(0), temperature=0.5)
    assert images.shape == (3, 1, 8, 8) and float(images.min()) >= 0 and float(images.max()) <= 1


def test_temperature_reshapes_the_distribution():
    from aetools.generative.pixelcnn import draw

    p = torch.tensor([0.6, 0.3, 0.1])
    logits = p.log().expand(40_000, 3)
    for temperature in (0.5, 1.0, 2.0):
        codes = draw(logits, temperature, generator=torch.Generator().manual_seed(0))
        frequency = torch.bincount(codes, minlength=3).float() / len(codes)
        expected = p ** (1 / temperature) / (p ** (1 / temperature)).sum()  # softmax(log p / T)
        assert torch.allclose(frequency, expected, atol=0.01), (temperature, frequency, expected)
    with pytest.raises(ValueError, match="temperature"):
        draw(logits, 0.0)


def test_prior_nll_in_nats_per_code_on_a_known_distribution():
    from aetools.bench.generative import prior_nll

    model = tiny_model("vqvae", size=8, widths=(4, 8), codes=4, code_dim=4, prior="pixelcnn", prior_dim=8)
    p = torch.tensor([0.5, 0.25, 0.125, 0.125])
    last = model.prior.head[-1]
    with torch.no_grad():  # the output ignores its input: every position predicts p
        last.weight.zero_()
        last.bias.copy_(p.log())
    indices = torch.randint(0, 4, (7, 4, 4), generator=torch.Generator().manual_seed(0))
    expected = float(-p.log()[indices].mean())  # nats per code
    assert math.isclose(model.prior_nll(indices).item(), expected, rel_tol=1e-5)
    # in uneven batches (3 + 3 + 1 grids) each batch weighs what it holds
    assert math.isclose(prior_nll(model, indices, batch=3), expected, rel_tol=1e-5)
    codes_only = torch.zeros(2, 4, 4, dtype=torch.long)  # all code 0: -log 0.5 = 0.693 nats = 1 bit each
    assert math.isclose(prior_nll(model, codes_only), math.log(2), rel_tol=1e-5)


def test_precision_and_recall_for_distributions():
    from aetools.generative.frechet import knn_radii, precision_recall

    torch.manual_seed(0)
    real = torch.randn(300, 8)
    assert precision_recall(real, real.clone()) == (1.0, 1.0)  # the same set covers itself
    far = real + 100.0
    assert precision_recall(real, far) == (0.0, 0.0)
    # Mode collapse: every sample near one real image. Realistic (precision 1), but covers little (recall low).
    collapsed = real[:1] + 0.01 * torch.randn(300, 8)
    precision, recall = precision_recall(real, collapsed)
    assert precision == 1.0 and recall < 0.05
    # Hand-checked on a line: reals 0, 1, 2, 3 (3rd-neighbour radii 3, 2, 2, 3).
    line = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    assert knn_radii(line, 3).tolist() == [3.0, 2.0, 2.0, 3.0]
    samples = torch.tensor([[1.5], [5.5], [6.5], [7.0], [100.0]])  # 6.5 and beyond lie outside every ball
    precision, _ = precision_recall(line, samples)
    assert precision == 2 / 5  # 1.5 (inside several) and 5.5 (inside 3's ball of radius 3)


def test_iwae_bound_is_at_least_the_elbo():
    from aetools.bench.generative import vae_bounds

    torch.manual_seed(0)
    x = torch.rand(6, 1, 8, 8)
    for arch in ("vae", "hvae"):
        model = tiny_model(arch, size=8, widths=(4, 8), latent=3, top=2)
        elbo, iwae = vae_bounds(model, x, k=50)
        assert iwae >= elbo
        single = model.log_weights(x, 1)
        assert single.shape == (1, 6)


def test_kl_schedules():
    from aetools.generative.vae import vae_loss

    vae = tiny_model("vae", size=8, widths=(4, 8), latent=2, beta=4.0, kl_warmup=10).train()
    x = torch.rand(2, 1, 8, 8)
    weights = [vae(x).kl_weight for _ in range(12)]
    assert weights[0] == 0 and math.isclose(weights[5], 2.0) and weights[-1] == 4.0
    cap = tiny_model("vae", size=8, widths=(4, 8), latent=2, capacity=20.0, capacity_steps=4).train()
    outputs = [cap(x) for _ in range(6)]
    assert [o.capacity for o in outputs[:3]] == [0.0, 5.0, 10.0] and outputs[-1].capacity == 20.0
    expected = (outputs[0].nll.mean() + 100.0 * outputs[0].kl.mean().abs()) / 64  # |KL - 0|, gamma 100, 8x8
    assert torch.allclose(vae_loss(outputs[0], x), expected)  # the capacity objective from the first step


# ---------------------------------------------------------------------------------- trainer + CLI


TINY = {
    "ae": dict(widths=(4, 8), latent=4),
    "vae": dict(widths=(4, 8), latent=4),
    "vqvae": dict(widths=(8, 16), codes=16, code_dim=4, prior_dim=16, prior_layers=1, prior_heads=2),
    "classifier": dict(widths=(8, 16), features=32),
}


def train_tiny(task, fashion_dir, out, steps=12, on_progress=None, **extra):
    from aetools.train.trainer import TrainConfig, train

    model = TINY[task]
    config = TrainConfig(
        task=task,
        data=["fashion-mnist"],
        fashion_dir=str(fashion_dir),
        out=str(out),
        model=model,
        steps=steps,
        batch_size=32,
        val_images=64,
        val_every=6,
        checkpoint_every=6,
        **extra,
    )
    return config, train(config, on_progress)


@pytest.mark.parametrize("task", ["vae", "vqvae"])
def test_resume_after_a_crash_continues_exactly(task, fashion_dir, tmp_path):
    from aetools.weights import read_weights

    train_tiny(task, fashion_dir, tmp_path / "a.safetensors")

    class Crash(Exception):
        pass

    def crash_at_step_8(p):
        if p.event == "step" and p.step == 8:
            raise Crash  # like kill -9 after the step-6 checkpoint

    with pytest.raises(Crash):
        train_tiny(task, fashion_dir, tmp_path / "b.safetensors", on_progress=crash_at_step_8)
    steps = []
    train_tiny(task, fashion_dir, tmp_path / "b.safetensors", resume=True, on_progress=steps.append)
    assert [p.step for p in steps if p.event == "step"][0] == 7
    a, _ = read_weights(tmp_path / "a.safetensors")
    b, _ = read_weights(tmp_path / "b.safetensors")
    for name in a:  # weights, the codebook's EMA state, the KL schedule's step counter: bit-identical
        assert torch.equal(a[name], b[name]), name


@pytest.mark.slow
def test_training_improves_each_model_and_the_classifier_learns(fashion_dir, tmp_path):
    for task in ("ae", "vae", "vqvae"):
        _, short = train_tiny(task, fashion_dir, tmp_path / f"{task}1.safetensors", steps=2, warmup=1)
        _, longer = train_tiny(task, fashion_dir, tmp_path / f"{task}2.safetensors", steps=60, warmup=5)
        assert longer.val_psnr > short.val_psnr + 1, (task, short.val_psnr, longer.val_psnr)
    _, result = train_tiny("classifier", fashion_dir, tmp_path / "c.safetensors", steps=100, warmup=5)
    assert result.val_psnr > 35  # validation accuracy %; chance is 10%


@pytest.fixture(scope="module")
def tiny_files(fashion_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    files = {}
    for task in ("ae", "vae", "vqvae", "classifier"):
        files[task] = folder / f"{task}.safetensors"
        train_tiny(task, fashion_dir, files[task], steps=20, warmup=5)
    return files


def test_generate_interpolate_reconstruct_traverse_sizes(tiny_files, tmp_path):
    for task in ("ae", "vae", "vqvae"):
        grid = tmp_path / f"{task}-samples.png"
        result = run("generate", tiny_files[task], "-n", 6, "--nrow", 3, "-o", grid)
        assert result.exit_code == 0, result.output
        assert Image.open(grid).size == (3 * 30 + 2, 2 * 30 + 2)  # 28-pixel cells, 2-pixel gaps
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    images, _ = synthetic_clothes(2, seed=3)
    Image.fromarray(images[0]).resize((40, 30)).save(a)
    Image.fromarray(np.stack([images[1]] * 3, axis=-1)).save(b)  # colour: made grey for the model
    strip = tmp_path / "strip.png"
    result = run("interpolate", a, b, "--model", tiny_files["vae"], "--steps", 5, "-o", strip, "--zoom", 2)
    assert result.exit_code == 0, result.output
    assert Image.open(strip).size == (5 * 58 + 2, 58 + 2)
    out = tmp_path / "recon"
    result = run("reconstruct", a, b, "--model", tiny_files["ae"], "-o", out)
    assert result.exit_code == 0, result.output
    assert Image.open(out / "a.png").size == (40, 30) and Image.open(out / "b.png").size == (28, 28)
    trav = tmp_path / "trav.png"
    result = run("traverse", "--model", tiny_files["vae"], "-o", trav, "--steps", 7)
    assert result.exit_code == 0, result.output
    assert Image.open(trav).size == (7 * 30 + 2, 4 * 30 + 2)  # one row per latent dimension (4)
    result = run("traverse", "--model", tiny_files["vqvae"], "-o", tmp_path / "t2.png")
    assert result.exit_code == 2 and "vector code" in result.output
    result = run("generate", tiny_files["vae"], "-o", grid)  # exists: refused, unchanged
    assert result.exit_code == 2 and "exists" in result.output


@pytest.mark.slow
def test_latent_plot_and_eval_tables(tiny_files, fashion_dir, tmp_path):
    plot = tmp_path / "latent.png"
    result = run("latent-plot", "--model", tiny_files["ae"], "--fashion-dir", fashion_dir, "-o", plot)
    assert result.exit_code == 0, result.output
    assert Image.open(plot).size[0] > 300
    result = run(
        "eval", tiny_files["vae"], tiny_files["vqvae"], tiny_files["ae"], "--fashion-dir", fashion_dir,
        "--classifier", tiny_files["classifier"], "--samples", 100, "--iwae-k", 4, "--format", "markdown",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    for title in ("Reconstruction", "VAE bounds", "VQ-VAE codes", "Fréchet distance", "training images (floor)"):
        assert title in result.output
    rows = [line.split("|") for line in result.output.splitlines() if line.startswith("|")]
    vae_rows = [row for row in rows if row[1].strip().endswith("/vae.safetensors")]
    elbo, iwae = (float(v) for v in vae_rows[1][2:4])  # the bounds table's row
    assert iwae >= elbo
    result = run("eval", "no-such-model", "--fashion-dir", fashion_dir)
    assert result.exit_code == 2 and "no-such-model" in result.output


def test_second_stage_trains_the_prior_only(tiny_files, fashion_dir, tmp_path):
    from aetools.weights import read_weights

    out = tmp_path / "prior.safetensors"
    _, result = train_tiny("vqvae", fashion_dir, out, steps=6, init=str(tiny_files["vqvae"]), train_only="prior")
    before, _ = read_weights(tiny_files["vqvae"])
    after, header = read_weights(out)
    assert header["training"]["train_only"] == "prior"
    for name in before:  # the codebook (EMA buffers) and the autoencoder untouched; the prior trained
        assert torch.equal(before[name], after[name]) != name.startswith("prior."), name


def test_a_new_pixelcnn_prior_trains_on_the_frozen_codes(tiny_files, fashion_dir, tmp_path):
    from aetools.generative.vqvae import with_new_prior
    from aetools.weights import load_model, read_weights, save_weights

    source = load_model(tiny_files["vqvae"], "vqvae")
    fresh = with_new_prior(source, prior="pixelcnn", prior_dim=16, prior_layers=1)  # the dims TINY sets
    init = tmp_path / "init.safetensors"
    save_weights(fresh, init, "vqvae", fresh.weights_header["training"])
    out = tmp_path / "pixelcnn.safetensors"
    notes = []
    train_tiny("vqvae", fashion_dir, out, steps=6, init=str(init), train_only="prior", on_progress=notes.append)
    assert any("prior NLL" in p.notes for p in notes if p.event == "val")
    before, source_header = read_weights(tiny_files["vqvae"])
    start, _ = read_weights(init)
    after, header = read_weights(out)
    assert header["config"]["prior"] == "pixelcnn"
    assert header["training"]["init"]["training"] == source_header["training"]  # the autoencoder's history
    assert not any(name.startswith("prior.") and name in before for name in after)  # a new network
    for name in after:  # the autoencoder and codebook as shipped; the new prior trained
        reference = start[name] if name.startswith("prior.") else before[name]
        assert torch.equal(reference, after[name]) != name.startswith("prior."), name
    grid = tmp_path / "samples.png"
    result = run("generate", out, "-n", 4, "--top-k", 3, "--temperature", 0.8, "-o", grid)
    assert result.exit_code == 0, result.output
    assert Image.open(grid).size == (2 * 30 + 2, 2 * 30 + 2)
    result = run("generate", tiny_files["vae"], "--top-k", 3, "-o", tmp_path / "vae.png")
    assert result.exit_code == 2 and "VQ-VAE" in result.output and not (tmp_path / "vae.png").exists()


def test_cached_sampling_step_matches_the_full_forward():
    model = tiny_model(
        "vqvae", size=8, widths=(4, 8), codes=16, code_dim=4, prior_dim=16, prior_layers=2, prior_heads=2
    )
    prior = model.prior
    tokens = torch.cat([torch.full((3, 1), 16), torch.randint(0, 16, (3, 15))], dim=1)  # [BOS, k_1..k_15]
    full = prior.logits(tokens)  # (3, 16, K)
    cache = [[None, None] for _ in prior.blocks.layers]
    with torch.no_grad():
        stepwise = torch.stack([prior.next_logits(tokens[:, i], i, cache) for i in range(16)], dim=1)
    assert torch.allclose(full, stepwise, atol=1e-5)
