"""aetools.data.io: what load_image / save_image keep, convert and refuse. Images are made in tmp_path."""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms
from skimage import data as skdata

from aetools.data import io as aio
from aetools.data.io import ImageData, ImageError, image_from_pil, image_to_pil, load_image, save_image

ORIENTATION = 0x0112


def noise(h=12, w=16, c=3, seed=0, dtype=np.uint8):
    top = np.iinfo(dtype).max
    return np.random.default_rng(seed).integers(0, top, (h, w, c), dtype=dtype, endpoint=True)


def photo():  # a smooth natural image, for lossy formats
    return skdata.astronaut()[::8, ::8]  # 64 x 64 x 3


def write(path: Path, img: Image.Image | np.ndarray, **options) -> Path:
    (Image.fromarray(img) if isinstance(img, np.ndarray) else img).save(path, **options)
    return path


def u8(x):
    return np.round(np.asarray(x) * 255).astype(np.uint8)


def u16(x):
    return np.round(np.asarray(x) * 65535).astype(np.uint16)


def rgba_of(d: ImageData, bits=8):  # pixels and alpha back together, as integers
    chans = [d.pixels] + ([] if d.alpha is None else [d.alpha[..., None]])
    return (u16 if bits == 16 else u8)(np.concatenate(chans, axis=2))


def png16(arr: np.ndarray, interlace=False, exif=b"") -> bytes:
    """A 16-bit PNG written by hand (Pillow cannot), rows filtered None/Sub/Up/Average/Paeth in turn."""
    h, w, c = arr.shape
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
    body, bpp = b"", 2 * c
    for x0, y0, dx, dy in passes if interlace else ((0, 0, 1, 1),):
        sub = arr[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        prev = np.zeros(sub.shape[1] * bpp, int)
        for y, row in enumerate(sub.astype(">u2").view(np.uint8).reshape(sub.shape[0], -1).astype(int)):
            a, b = np.r_[np.zeros(bpp, int), row[:-bpp]], prev
            cc = np.r_[np.zeros(bpp, int), prev[:-bpp]]
            p = a + b - cc
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - cc)
            paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, cc))
            kind = y % 5
            body += bytes([kind]) + ((row - [0, a, b, (a + b) // 2, paeth][kind]) % 256).astype(np.uint8).tobytes()
            prev = row
    ihdr = struct.pack(">IIBBBBB", w, h, 16, {1: 0, 2: 4, 3: 2, 4: 6}[c], 0, 0, int(interlace))
    chunks = [(b"IHDR", ihdr), (b"eXIf", exif), (b"IDAT", zlib.compress(body)), (b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(
        struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d)) for k, d in chunks if d or k == b"IEND"
    )


def exif_with(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[0x010F] = "aetools-test"  # Make, to see the rest of the EXIF survive
    return exif


# ------------------------------------------------------------------------------------- 8-bit modes


def test_rgb_png_round_trip_is_bit_exact(tmp_path):
    a = noise()
    d = load_image(write(tmp_path / "in.png", a))
    assert (d.pixels.shape, d.pixels.dtype, d.bit_depth, d.format, d.alpha) == ((12, 16, 3), np.float32, 8, "PNG", None)
    np.testing.assert_array_equal(u8(d.pixels), a)
    save_image(d, tmp_path / "out.png")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), a)
    np.testing.assert_array_equal(load_image(tmp_path / "out.png").pixels, d.pixels)


def test_jpeg_output_keeps_size_and_is_close(tmp_path):
    d = load_image(write(tmp_path / "in.png", photo()))
    save_image(d, tmp_path / "out.jpg")
    with Image.open(tmp_path / "out.jpg") as out:
        assert (out.format, out.mode, out.size) == ("JPEG", "RGB", (64, 64))
    assert np.abs(load_image(tmp_path / "out.jpg").pixels - d.pixels).mean() < 0.02


def test_grey_stays_grey(tmp_path):
    a = noise(c=1)[..., 0]
    d = load_image(write(tmp_path / "in.png", a))
    assert d.pixels.shape == (12, 16, 1) and d.is_grey
    np.testing.assert_array_equal(u8(d.pixels[..., 0]), a)
    save_image(d, tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as out:
        assert out.mode == "L"
        np.testing.assert_array_equal(np.asarray(out), a)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_split_off_and_reattached(tmp_path, mode):
    a = noise(c=len(mode))
    d = load_image(write(tmp_path / "in.png", Image.fromarray(a, mode)))
    assert d.pixels.shape == (12, 16, len(mode) - 1) and d.alpha.shape == (12, 16)
    np.testing.assert_array_equal(u8(d.alpha), a[..., -1])
    np.testing.assert_array_equal(u8(d.pixels), a[..., :-1])
    save_image(d, tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as out:
        assert out.mode == mode
        np.testing.assert_array_equal(np.asarray(out), a)


def test_palette_with_and_without_transparency(tmp_path):
    index = noise(c=1, seed=1)[..., 0] % 4
    img = Image.fromarray(index.astype(np.uint8), "P")
    img.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])
    rgb = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [9, 9, 9]])[index]
    plain = load_image(write(tmp_path / "p.png", img))
    assert plain.alpha is None
    np.testing.assert_array_equal(u8(plain.pixels), rgb)
    clear = load_image(write(tmp_path / "pt.png", img, transparency=2))
    np.testing.assert_array_equal(clear.alpha, (index != 2).astype(np.float32))
    np.testing.assert_array_equal(u8(clear.pixels)[index != 2], rgb[index != 2])


@pytest.mark.parametrize("mode, key", [("L", 7), ("RGB", (1, 2, 3))])
def test_transparent_colour_becomes_alpha(tmp_path, mode, key):
    a = noise(c=1 if mode == "L" else 3, seed=3) // 2 * 2  # even values, so none is the key by chance
    a[::3, ::2] = key
    d = load_image(write(tmp_path / "t.png", a[..., 0] if mode == "L" else a, transparency=key))
    np.testing.assert_array_equal(d.alpha, (a != key).any(axis=2))
    np.testing.assert_array_equal(u8(d.pixels), a)


def test_bilevel(tmp_path):
    bits = noise(c=1, seed=2)[..., 0] > 127
    d = load_image(write(tmp_path / "b.png", Image.fromarray(bits)))
    assert d.pixels.shape == (12, 16, 1)
    np.testing.assert_array_equal(d.pixels[..., 0], bits.astype(np.float32))


@pytest.mark.parametrize(
    "cmyk, rgb",
    [
        ((0, 255, 255, 0), (1, 0, 0)),
        ((255, 0, 255, 0), (0, 1, 0)),
        ((0, 0, 0, 0), (1, 1, 1)),
        ((0, 0, 0, 255), (0, 0, 0)),
    ],
)
def test_cmyk_jpeg_becomes_rgb(tmp_path, cmyk, rgb):
    d = load_image(write(tmp_path / "c.jpg", Image.new("CMYK", (16, 8), cmyk)))
    assert d.pixels.shape == (8, 16, 3)
    np.testing.assert_allclose(d.pixels.mean(axis=(0, 1)), rgb, atol=0.03)


@pytest.mark.parametrize("ext", ["gif", "webp", "bmp", "tif"])
def test_other_formats_read(tmp_path, ext):
    a = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [40, 80, 120]], np.uint8)[noise(c=1)[..., 0] % 4]
    d = load_image(write(tmp_path / f"in.{ext}", a, **({"lossless": True} if ext == "webp" else {})))
    assert d.format == {"gif": "GIF", "webp": "WEBP", "bmp": "BMP", "tif": "TIFF"}[ext]
    np.testing.assert_array_equal(u8(d.pixels), a)


def test_pil_conversions():
    d = ImageData(np.full((2, 3, 3), np.nan, np.float32), alpha=np.full((2, 3), 0.5, np.float32))
    assert image_to_pil(d, "PNG").mode == "RGBA" and image_to_pil(d, "JPEG").mode == "RGB"
    np.testing.assert_array_equal(np.asarray(image_to_pil(d, "PNG")), [[[0, 0, 0, 128]] * 3] * 2)
    assert image_from_pil(Image.new("LA", (3, 2), (10, 20))).alpha[0, 0] == np.float32(20 / 255)


# ------------------------------------------------------------------------------------------- 16-bit


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_16_bit_grey_keeps_full_precision(tmp_path, ext):
    a = noise(c=1, dtype=np.uint16)[..., 0]
    a[0, 0] = 1000
    img = Image.fromarray(a)
    assert img.mode == "I;16"
    d = load_image(write(tmp_path / f"in.{ext}", img))
    assert d.bit_depth == 16 and d.pixels.shape == (12, 16, 1)
    assert d.pixels[0, 0, 0] == np.float32(1000 / 65535)
    np.testing.assert_array_equal(u16(d.pixels[..., 0]), a)
    save_image(d, tmp_path / f"out.{ext}")
    with Image.open(tmp_path / f"out.{ext}") as out:
        assert out.mode == "I;16"
        np.testing.assert_array_equal(np.asarray(out), a)


def check_16_bit_saves(tmp_path, d: ImageData, expected: np.ndarray):
    """d round-trips through 16-bit PNG and TIFF exactly, with its ICC profile and dpi."""
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    d = replace(d, icc_profile=icc, dpi=(300.0, 300.0))
    for ext in ("png", "tif"):
        save_image(d, tmp_path / f"out.{ext}")
        back = load_image(tmp_path / f"out.{ext}")
        assert back.bit_depth == 16 and back.icc_profile == icc
        np.testing.assert_allclose(back.dpi, (300, 300), atol=0.01)
        np.testing.assert_array_equal(rgba_of(back, 16), expected)
        if ext == "png" or expected.shape[2] > 2:  # Pillow reads the top 8 bits (cannot open a grey+alpha TIFF)
            top = (expected >> 8)[..., [0, 0, 0, 1] if expected.shape[2] == 2 else slice(None)]  # that one: RGBA
            with Image.open(tmp_path / f"out.{ext}") as pil:
                np.testing.assert_array_equal(np.asarray(pil), top)


@pytest.mark.parametrize(
    "channels, interlace, shape",
    [
        (3, False, (11, 13)),
        (4, False, (11, 13)),
        (2, False, (11, 13)),
        (3, True, (11, 13)),
        (4, True, (3, 1)),
    ],
)
def test_16_bit_colour_png_keeps_full_precision(tmp_path, channels, interlace, shape):
    a = noise(*shape, c=channels, dtype=np.uint16)
    a[0, 0, 0] = 1000
    (tmp_path / "in.png").write_bytes(png16(a, interlace))
    d = load_image(tmp_path / "in.png")
    assert d.bit_depth == 16 and d.pixels.shape == shape + (1 if channels == 2 else 3,)
    assert d.pixels[0, 0, 0] == np.float32(1000 / 65535) and (d.alpha is None) == (channels == 3)
    np.testing.assert_array_equal(rgba_of(d, 16), a)
    check_16_bit_saves(tmp_path, d, a)


@pytest.mark.parametrize("layout", ["rgb", "rgba", "rgb-planar", "grey-alpha"])
def test_16_bit_tiff_keeps_full_precision(tmp_path, layout):
    a = noise(c={"rgb": 3, "rgba": 4, "rgb-planar": 3, "grey-alpha": 2}[layout], dtype=np.uint16)
    kw = {"photometric": "minisblack" if layout == "grey-alpha" else "rgb", "planarconfig": "contig"}
    if layout in ("rgba", "grey-alpha"):
        kw["extrasamples"] = ["unassalpha"]
    if layout == "rgb-planar":
        tifffile.imwrite(tmp_path / "in.tif", np.moveaxis(a, -1, 0), photometric="rgb", planarconfig="separate")
    else:
        tifffile.imwrite(tmp_path / "in.tif", a, **kw)
    d = load_image(tmp_path / "in.tif")
    assert d.bit_depth == 16 and d.format == "TIFF"
    np.testing.assert_array_equal(rgba_of(d, 16), a)
    check_16_bit_saves(tmp_path, d, a)


def test_16_bit_tiff_tifffile_cannot_decode_falls_back_to_pillow(tmp_path, monkeypatch):
    a = noise(dtype=np.uint16)
    tifffile.imwrite(tmp_path / "in.tif", a, photometric="rgb")
    monkeypatch.setattr(tifffile.TIFF, "DECOMPRESSORS", {})  # as for LZW without imagecodecs
    d = load_image(tmp_path / "in.tif")
    assert d.bit_depth == 8
    np.testing.assert_array_equal(u8(d.pixels), a >> 8)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_16_bit_png_orientation_matches_pillow(tmp_path, orientation):
    a = noise(5, 7, dtype=np.uint16)
    exif = exif_with(orientation)
    (tmp_path / "deep.png").write_bytes(png16(a, exif=exif.tobytes()[6:]))  # eXIf holds no 'Exif\0\0'
    deep = load_image(tmp_path / "deep.png")
    shallow = load_image(write(tmp_path / "shallow.png", (a >> 8).astype(np.uint8), exif=exif))
    np.testing.assert_array_equal(u16(deep.pixels) >> 8, u8(shallow.pixels))


# ---------------------------------------------------------------------------------------- metadata


def test_exif_orientation_applied_and_reset(tmp_path):
    a = np.zeros((8, 16, 3), np.uint8)
    a[:, :8] = (255, 0, 0)  # left half red: after a 90 degree clockwise turn, the top half
    d = load_image(write(tmp_path / "in.jpg", a, exif=exif_with(6), quality=95))
    assert d.pixels.shape == (16, 8, 3)
    assert np.abs(d.pixels - np.rot90(a, -1) / 255).mean() < 0.02
    save_image(d, tmp_path / "out.jpg")
    with Image.open(tmp_path / "out.jpg") as out:
        assert out.getexif().get(ORIENTATION, 1) == 1 and out.getexif()[0x010F] == "aetools-test"
    assert load_image(tmp_path / "out.jpg").pixels.shape == (16, 8, 3)


@pytest.mark.parametrize("ext", ["png", "jpg", "tif", "webp"])
def test_icc_profile_kept(tmp_path, ext):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    d = load_image(write(tmp_path / "in.png", photo(), icc_profile=icc))
    assert d.icc_profile == icc
    save_image(d, tmp_path / f"out.{ext}")
    with Image.open(tmp_path / f"out.{ext}") as out:
        assert out.info.get("icc_profile") == icc


# ------------------------------------------------------------------------------------------- errors


def truncated(tmp_path, ext):
    full = write(tmp_path / f"full.{ext}", photo()).read_bytes()
    return write_bytes(tmp_path / f"cut.{ext}", full[: len(full) // 2])


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda t: t / "missing.png", "no such file"),
        (lambda t: t, "folder"),
        (lambda t: write_bytes(t / "text.png", b"hello, not a picture\n"), "not an image"),
        (lambda t: write_bytes(t / "empty.png", b""), "empty"),
        (lambda t: truncated(t, "jpg"), "truncated"),
        (lambda t: truncated(t, "png"), "truncated"),
    ],
)
def test_load_errors(tmp_path, make, reason):
    path = make(tmp_path)
    with pytest.raises(ImageError) as err:
        load_image(path)
    assert str(err.value).startswith(f"{path}: ") and reason in err.value.reason and "\n" not in str(err.value)


@pytest.mark.parametrize("pillow_limit", [100, None])  # None: our own guard alone
def test_decompression_bomb_refused(tmp_path, monkeypatch, pillow_limit):
    path = write(tmp_path / "big.png", noise(20, 20))
    monkeypatch.setattr(aio, "MAX_PIXELS", 100)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pillow_limit)
    with pytest.raises(ImageError, match="safety limit"):
        load_image(path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads everything")
def test_permission_denied(tmp_path):
    path = write(tmp_path / "locked.png", noise())
    path.chmod(0)
    with pytest.raises(ImageError, match="permission denied"):
        load_image(path)


# ------------------------------------------------------------------------------------------- saving


def test_save_refuses_existing_unless_overwrite(tmp_path):
    out = write(tmp_path / "out.png", noise(seed=1))
    before = out.read_bytes()
    d = load_image(write(tmp_path / "in.png", noise(seed=2)))
    with pytest.raises(ImageError, match="output exists"):
        save_image(d, out)
    assert out.read_bytes() == before
    save_image(d, out, overwrite=True)
    np.testing.assert_array_equal(np.asarray(Image.open(out)), noise(seed=2))
    assert sorted(os.listdir(tmp_path)) == ["in.png", "out.png"]  # no temp file left


def test_failed_save_leaves_original_and_no_temp(tmp_path, monkeypatch):
    out = write(tmp_path / "out.png", noise(seed=1))
    before = out.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"half a PNG")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(ImageError, match=r"out\.png: cannot write \(No space left on device\)$"):
        save_image(ImageData(np.zeros((4, 4, 3), np.float32)), out, overwrite=True)
    assert out.read_bytes() == before and os.listdir(tmp_path) == ["out.png"]


@pytest.mark.parametrize(
    "name, expected", [("out.png", "PNG"), ("out.tif", "TIFF"), ("out.xyz", "JPEG"), ("out", "JPEG")]
)
def test_output_format_follows_extension_else_input(tmp_path, name, expected):
    d = load_image(write(tmp_path / "in.jpg", photo()))
    save_image(d, tmp_path / name)
    with Image.open(tmp_path / name) as out:
        assert out.format == expected


def test_output_format_without_input_format_or_writer(tmp_path):
    d = ImageData(np.zeros((4, 4, 3), np.float32))
    save_image(d, tmp_path / "out.xyz")
    assert Image.open(tmp_path / "out.xyz").format == "PNG"
    with pytest.raises(ImageError, match="cannot write PSD"):
        save_image(d, tmp_path / "out.psd")


def test_16_bit_png_whose_data_inflates_past_its_header_is_refused(tmp_path):
    """A zlib bomb behind a small declared size: 8x8 pixels declared, 64 MB of zeros compressed to ~64 KB.
    The reader inflates at most what the header implies and refuses the rest."""
    import struct
    import zlib

    from aetools.data.io import ImageError, load_image
    from aetools.data.png16 import PNG_SIGNATURE, expected_bytes

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    bomb = zlib.compress(b"\0" * (64 << 20), 9)
    assert len(bomb) < 100_000 and expected_bytes(8, 8, 3, 0) == 8 * (1 + 8 * 6)
    ihdr = struct.pack(">IIBBBBB", 8, 8, 16, 2, 0, 0, 0)  # 8x8, 16-bit RGB
    path = tmp_path / "bomb.png"
    path.write_bytes(PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", bomb) + chunk(b"IEND", b""))
    with pytest.raises(ImageError, match="inflates past the 392 bytes"):
        load_image(path)


def test_the_image_loader_loads_no_model_code():
    """Dependencies point one way: `aetools.data` is a leaf (no task, head, model or torch behind io)."""
    import subprocess
    import sys

    code = "import sys, aetools.data.io, aetools.data.datasets; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    ours = [m for m in loaded if m.startswith("aetools.")]
    assert all(m == "aetools.data" or m.startswith("aetools.data.") for m in ours), ours
    io_only = "import sys, aetools.data.io; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", io_only], capture_output=True, text=True).stdout.strip() == "False"


# ------------------------------------------------------------------------------ phone formats: HEIC, AVIF


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse))


@pytest.mark.parametrize("ext, fmt", [("heic", "HEIF"), ("avif", "AVIF")])
def test_heic_and_avif_read_upright_and_written_back(tmp_path, ext, fmt):
    """A phone photo turned by EXIF (orientation 6) with an ICC profile: read upright, written back in its
    own format with the profile, close to the original (lossy codecs, quality 90)."""
    a = skdata.astronaut()[::6, ::4][:64, :96]  # 64 x 96: a wrong turn would show in the shape
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = exif_with(6).tobytes()  # as bytes: pillow-heif then stores the turn as HEIF's own rotation
    d = load_image(write(tmp_path / f"in.{ext}", a, format=fmt, exif=exif, icc_profile=icc, quality=95))
    assert d.format == fmt and d.pixels.shape == (96, 64, 3) and d.icc_profile == icc
    upright = np.rot90(a, -1)
    assert psnr(u8(d.pixels), upright) > 30
    save_image(d, tmp_path / f"out.{ext}")
    back = load_image(tmp_path / f"out.{ext}")
    assert back.format == fmt and back.pixels.shape == (96, 64, 3) and back.icc_profile == icc
    assert psnr(u8(back.pixels), upright) > 30
    with Image.open(tmp_path / f"out.{ext}") as out:
        assert out.getexif().get(ORIENTATION, 1) == 1  # turned once, never twice


@pytest.mark.parametrize("ext, fmt", [("heic", "HEIF"), ("avif", "AVIF")])
def test_heic_and_avif_alpha_is_kept(tmp_path, ext, fmt):
    alpha = np.tile(np.linspace(0, 255, 32).astype(np.uint8), (32, 1))
    d = load_image(write(tmp_path / f"in.{ext}", np.dstack([photo()[:32, :32], alpha]), format=fmt, quality=95))
    assert d.alpha is not None and np.abs(u8(d.alpha).astype(int) - alpha).max() <= 8
    save_image(d, tmp_path / f"out.{ext}")
    assert np.abs(u8(load_image(tmp_path / f"out.{ext}").alpha).astype(int) - alpha).max() <= 12


def test_phone_formats_are_listed_in_folders_and_errors_name_them(tmp_path, monkeypatch):
    from aetools.data.datasets import list_images

    for name in ("a.HEIC", "b.heif", "c.avif", "d.txt"):
        (tmp_path / name).write_bytes(b"not really an image")
    assert [p.name for p in list_images([tmp_path])] == ["a.HEIC", "b.heif", "c.avif"]
    with pytest.raises(ImageError, match=r"a\.HEIC: not an image file"):
        load_image(tmp_path / "a.HEIC")
    monkeypatch.setattr(aio, "pillow_heif", None)  # an installation without it says what is missing
    with pytest.raises(ImageError, match="need the pillow-heif package"):
        load_image(tmp_path / "a.HEIC")


def test_a_format_that_cannot_be_written_falls_back_to_png(monkeypatch):
    assert aio.output_suffix(".heic") == (".heic", None) and aio.output_suffix(".avif") == (".avif", None)
    assert aio.output_suffix(".psd")[0] == ".png"  # Pillow reads PSD, never writes it
    monkeypatch.setattr(aio, "can_write", lambda fmt: fmt != "HEIF")  # a pillow-heif without an encoder
    suffix, note = aio.output_suffix(".HEIC")
    assert suffix == ".png" and "HEIF files cannot be written" in note
