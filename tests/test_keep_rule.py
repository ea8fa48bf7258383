"""dedup keeps the original: a captioned, a re-compressed and a cropped copy each lose to the photo they were
made from, even as larger files; the reasons; which edits the picture comparison calls a crop or an overlay;
JPEG quality from the quantization tables; sizes in KB and MB."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageDraw, ImageFont

from aetools.index.keep import format_size, jpeg_quality, order_group
from aetools.index.store import FileRecord, HashIndex
from tests.conftest import photo, run
from tests.test_hash_index import tiny_hash_weights

PADDING = b"x" * 65000  # a JPEG comment: bytes that change nothing in the picture but the file's size


def captioned(image: Image.Image) -> Image.Image:
    out = image.copy()
    font = ImageFont.load_default(round(image.height * 0.09))
    ImageDraw.Draw(out).text(
        (round(image.width * 0.05), round(image.height * 0.82)),
        "Holiday 2026",
        fill=(255, 255, 255),
        font=font,
        stroke_width=3,
        stroke_fill=(0, 0, 0),
    )
    return out


def cropped(image: Image.Image) -> Image.Image:
    """A 20% crop (80% of each side kept), enlarged to more pixels than the original has."""
    w, h = image.size
    part = image.crop((round(0.1 * w), round(0.1 * h), round(0.9 * w), round(0.9 * h)))
    return part.resize((round(1.25 * w), round(1.25 * h)), Image.LANCZOS)


def copies(folder: Path) -> dict[str, Path]:
    """original.jpg (quality 95) and three copies made from it, each a larger file than it."""
    folder.mkdir(parents=True, exist_ok=True)
    original = Image.fromarray(photo(384, "astronaut"))
    paths = {name: folder / f"{name}.jpg" for name in ("original", "captioned", "recompressed", "cropped")}
    original.save(paths["original"], quality=95)
    captioned(original).save(paths["captioned"], quality=95, comment=PADDING)
    original.save(paths["recompressed"], quality=40, comment=PADDING)
    cropped(original).save(paths["cropped"], quality=95)
    later = paths["original"].stat().st_mtime_ns
    for name in ("captioned", "recompressed", "cropped"):
        os.utime(paths[name], ns=(later - 10**10, later - 10**10))  # the copies look older: age cannot decide
        assert paths[name].stat().st_size > paths["original"].stat().st_size
    return paths


def index_of(paths: list[Path]) -> HashIndex:
    index = HashIndex(64, "test")
    records = []
    for path in paths:
        with Image.open(path) as im:
            size = im.size
        info = path.stat()
        records.append(FileRecord(str(path), info.st_size, info.st_mtime_ns, path.name, *size))
    index.add(records, np.zeros((len(records), 8), np.uint8))
    return index


SUMMARY = {"captioned": "carry an overlay", "recompressed": "are more compressed", "cropped": "are a crop"}


@pytest.mark.parametrize(
    "copy, reason",
    [
        ("captioned", "carries an overlay"),
        ("recompressed", "is more compressed (JPEG quality 40 vs 95)"),
        ("cropped", "is a crop"),
    ],
)
def test_each_edited_copy_loses_to_the_original_though_a_larger_file(tmp_path, copy, reason):
    paths = copies(tmp_path)
    index = index_of([paths[copy], paths["original"]])  # the copy leads the group: larger, and older
    ordered = order_group(index, 0, [1], {1: 40}, {})
    assert [Path(index.records[i].path).name for i in ordered.ids] == ["original.jpg", f"{copy}.jpg"]
    assert ordered.reasons[1] == reason
    assert ordered.reasons[0] == "original: the others " + SUMMARY[copy]
    assert ordered.matches[0] >= 16  # the copy (id 0), checked against the keep itself


def test_dedup_keeps_the_original_and_says_why(tmp_path):
    copies(tmp_path / "photos")
    Image.fromarray(photo(384, "coffee")).save(tmp_path / "photos" / "coffee.jpg", quality=95)  # no copy of it
    weights = tiny_hash_weights(tmp_path / "tiny.safetensors")  # 32-bit codes: radius 32 makes every pair a candidate
    out_json, out_html = tmp_path / "dups.json", tmp_path / "dups.html"
    r = run("dedup", tmp_path / "photos", "--radius", "32", "-m", weights, "--json", out_json, "--html", out_html)
    assert r.exit_code == 0, r.output
    (group,) = json.loads(out_json.read_text())["groups"]
    assert [(Path(m["path"]).name, m["keep"]) for m in group][0] == ("original.jpg", True)
    reasons = {Path(m["path"]).name: m["reason"] for m in group}
    assert reasons == {
        "original.jpg": "original: the others carry an overlay, are a crop, are more compressed",
        "captioned.jpg": "carries an overlay",
        "recompressed.jpg": "is more compressed (JPEG quality 40 vs 95)",
        "cropped.jpg": "is a crop",
    }
    assert all(m["matches"] >= 16 for m in group[1:])
    assert "original: the others carry an overlay" in r.stdout and "is a crop" in r.stdout
    assert "original: the others carry an overlay" in out_html.read_text()


def test_lossless_beats_jpeg_and_the_oldest_exif_date_beats_the_file_date(tmp_path):
    image = Image.fromarray(photo(192, "chelsea"))
    image.save(tmp_path / "scan.png")
    image.save(tmp_path / "export.jpg", quality=98, comment=PADDING)  # larger than the PNG
    assert (tmp_path / "export.jpg").stat().st_size > (tmp_path / "scan.png").stat().st_size
    index = index_of([tmp_path / "export.jpg", tmp_path / "scan.png"])
    ordered = order_group(index, 0, [1], {1: 40}, {})
    assert Path(index.records[ordered.ids[0]].path).name == "scan.png"
    assert ordered.reasons[1] == "is more compressed (JPEG quality 98 vs lossless PNG)"

    for name, taken in (("first.jpg", "2019:06:01 12:00:00"), ("second.jpg", "2021:06:01 12:00:00")):
        exif = Image.Exif()
        exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = taken
        image.save(tmp_path / name, quality=90, exif=exif)
    stat = (tmp_path / "second.jpg").stat()
    os.utime(tmp_path / "first.jpg", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**10))  # the file date says otherwise
    index = index_of([tmp_path / "second.jpg", tmp_path / "first.jpg"])
    ordered = order_group(index, 0, [1], {1: 40}, {})
    assert Path(index.records[ordered.ids[0]].path).name == "first.jpg"
    assert ordered.reasons == ["original: the others were taken later", "was taken later"]


def test_only_captions_and_crops_are_called_derived():
    """Blur, a colour change, JPEG, a turn, a mirror image: neither copy is a crop or carries an overlay."""
    from aetools.data.augment import adjust, blur, crop, hflip, jpeg, overlay_text, rotate90
    from aetools.index.encode import trim_borders
    from aetools.index.verify import align, derivation, features_of, grey_at_side

    def seen(image: Image.Image):
        pixels = trim_borders(np.asarray(image, dtype=np.float32) / 255)
        return grey_at_side(pixels), features_of(pixels)

    original = Image.fromarray(photo(384, "astronaut"))
    plain = seen(original)
    edits = {
        "blur": (blur(original, 2.0), (False, False, None)),
        "colour": (adjust(original, 1.25, 0.75, 1.3), (False, False, None)),
        "jpeg": (jpeg(original, 30), (False, False, None)),
        "turned": (rotate90(original), (False, False, None)),
        "mirrored": (hflip(original), (False, False, None)),
        "caption": (overlay_text(original, "Holiday 2026 (c) aetools"), (False, False, "a")),
        "crop": (crop(original, 0.75), (True, False, None)),
    }
    for name, (image, expected) in edits.items():
        copy = seen(image)
        alignment = align(copy[1], plain[1])
        assert alignment is not None, name
        d = derivation(copy[0], plain[0], alignment)
        assert (d.a_is_crop, d.b_is_crop, d.overlay) == expected, name
        back = derivation(plain[0], copy[0], align(plain[1], copy[1]))  # the other way round, the same verdict
        assert (back.b_is_crop, back.a_is_crop, {"a": "b", "b": "a"}.get(back.overlay)) == expected, name


def test_jpeg_quality_is_read_from_the_quantization_tables(tmp_path):
    image = Image.fromarray(photo(64))
    for quality in (10, 40, 75, 90, 95, 100):
        image.save(tmp_path / "q.jpg", quality=quality)
        with Image.open(tmp_path / "q.jpg") as im:
            assert jpeg_quality(im.quantization) == quality
    image.convert("L").save(tmp_path / "grey.jpg", quality=60)  # one table only
    with Image.open(tmp_path / "grey.jpg") as im:
        assert jpeg_quality(im.quantization) == 60
    assert jpeg_quality({}) is None


def test_sizes_print_in_kb_and_mb():
    from aetools.index.folder import Member
    from aetools.index.report import describe

    assert [format_size(n) for n in (0, 999, 1000, 84_000, 999_000, 999_600, 3_100_000, 2_400_000_000)] == [
        "0 bytes",
        "999 bytes",
        "1 KB",
        "84 KB",
        "999 KB",
        "1.0 MB",
        "3.1 MB",
        "2.4 GB",
    ]
    member = Member("a.jpg", 0, 0, False, 640, 480, 84_000, 0)
    assert describe(member).startswith("640 x 480, 84 KB, ")


def test_keep_benchmark_counts_the_original_kept(tmp_path):
    """`eval hash --part dedup`'s keep table: on planted pairs the keep rule keeps the captioned copy's and the
    crops' originals, which the rule before it (most pixels, largest file) did not for the caption."""
    from aetools.bench.dedup import keep_rule_shares

    for name in ("astronaut", "chelsea"):
        Image.fromarray(photo(256, name)).save(tmp_path / f"{name}.png")
    shares, pairs = keep_rule_shares(sorted(tmp_path.glob("*.png")))
    new, old = shares["keep rule (index.keep)"], shares["before: most pixels, largest file, oldest"]
    assert pairs["text overlay"] == 2 and pairs["crop 25%"] == 2
    assert new["text overlay"] == 1.0 and new["crop 10%"] == 1.0 and new["JPEG q30"] == 1.0
    assert old["text overlay"] == 0.0  # the caption's edges make the larger file
    assert np.mean(list(new.values())) > np.mean(list(old.values()))
