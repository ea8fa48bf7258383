"""Which copy of a group of near-duplicates to keep: the original, the one the others were made from.

A group is a star of verified copies around a lead (`folder.group_pairs`); this only orders its members, so
the groups themselves (and "no false groups") do not depend on it. Each member is compared with the lead on
the pictures (`verify.derivation`: is it a crop of it, does one carry a caption or sticker the other lacks),
and read for what its file says; then the copy kept is the first by

    1. no overlay: it carries no caption, watermark or sticker that another member lacks
    2. not cropped: its picture is not a part of another member's
    3. no added border: no flat frame or padding (trimmed before coding) around the picture
    4. least compressed: lossless formats first, then JPEG by the quality its quantization tables give (in
       steps of QUALITY_STEP, so two encoders' tables for about the same quality tie), then other lossy ones
    5. the most pixels, then the largest file (a padded copy's extra pixels are its border: rule 3)
    6. the oldest: EXIF DateTimeOriginal first (a file with one before a file without), then the file's
       modification time, then the path

The kept copy is checked against every other member (the same test as any pair); a candidate that fails it,
or turns out to be a crop or the overlay's carrier against one of them, gives way to the next. Every member
gets a reason: the keep "original: the others carry an overlay, are more compressed", each other copy the
first of the rules above that put it behind the keep ("carries an overlay", "is more compressed (JPEG
quality 40 vs 95)").
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aetools.index.store import FileRecord, HashIndex
from aetools.index.verify import Alignment, Derivation, Features

LOSSLESS = 101  # compression rank of a lossless file: above any JPEG quality
UNKNOWN_LOSSY = 0  # WebP, HEIF, AVIF: lossy, of a quality their headers do not tell
UNREADABLE = -1  # the file could not be read again for its facts
QUALITY_STEP = 5  # JPEG qualities compared in steps of this (95-100 one step, 90-94 the next, ...)
BORDER_SHARE = 0.02  # a copy whose flat borders take more than this share of its pixels has an added border

# The IJG's example tables (JPEG standard, Annex K), natural order: libjpeg scales them by the quality
_LUMA = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
]  # fmt: skip
_CHROMA = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, *[99] * 32,
]  # fmt: skip


def ijg_table(base: list[int], quality: int) -> np.ndarray:
    """libjpeg's table for `quality` (1-100): the base scaled by 5000 / q below 50, 200 - 2 q from 50."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((np.array(base) * scale + 50) // 100, 1, 255)


_TABLES = {q: (ijg_table(_LUMA, q), ijg_table(_CHROMA, q)) for q in range(1, 101)}


def jpeg_quality(quantization: dict[int, list[int]]) -> int | None:
    """The libjpeg quality (1-100) whose tables are nearest a JPEG's (Pillow's `.quantization`, natural
    order): exact for files libjpeg wrote, the nearest for a camera's own tables. None without tables."""
    tables = [np.asarray(quantization[k]) for k in sorted(quantization)[:2] if len(quantization[k]) == 64]
    if not tables:
        return None

    def misfit(q: int) -> float:
        return sum(float(np.abs(t - ref).sum()) for t, ref in zip(tables, _TABLES[q]))

    return min(range(1, 101), key=lambda q: (misfit(q), -q))


@dataclass
class CopyFacts:
    """What a member's file says about how it was made. grey: its picture as the features saw it (uint8 at
    `verify.SIDE`, flat borders trimmed), None when the file could not be read again."""

    format: str | None = None
    compression: int = UNREADABLE  # LOSSLESS, a JPEG quality, UNKNOWN_LOSSY or UNREADABLE
    taken: str | None = None  # EXIF DateTimeOriginal, "YYYY:MM:DD HH:MM:SS"
    border_share: float = 0.0  # of the pixels, in flat borders
    grey: np.ndarray | None = None


def read_facts(record: FileRecord) -> CopyFacts:
    """A member's facts, read only if the file is still the one indexed (size and mtime), is a regular file,
    and decodes; else CopyFacts() (ranked last on compression, no date)."""
    from PIL import ExifTags, Image

    from aetools.data.formats import LOSSY_FORMATS
    from aetools.data.io import ImageError, load_image
    from aetools.index.encode import trim_borders
    from aetools.index.verify import SIDE, grey_at_side

    path = Path(record.path)
    try:
        info = path.stat()
    except OSError:
        return CopyFacts()
    if not stat.S_ISREG(info.st_mode) or (info.st_size, info.st_mtime_ns) != (record.size, record.mtime_ns):
        return CopyFacts()
    try:
        image = load_image(path, draft=SIDE)
        with Image.open(path) as header:  # the header only: tables and EXIF, no pixels
            fmt = header.format
            quality = jpeg_quality(getattr(header, "quantization", None) or {}) if fmt in ("JPEG", "MPO") else None
            taken = header.getexif().get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.DateTimeOriginal)
    except (ImageError, OSError, ValueError, SyntaxError):
        return CopyFacts()
    if quality is not None:
        compression = quality
    else:
        compression = UNKNOWN_LOSSY if fmt in LOSSY_FORMATS else LOSSLESS
    pixels = image.pixels
    picture = trim_borders(pixels)
    kept = picture.shape[0] * picture.shape[1] / max(1, pixels.shape[0] * pixels.shape[1])
    return CopyFacts(
        fmt,
        compression,
        taken.strip("\x00 ") if isinstance(taken, str) and taken.strip("\x00 ") else None,
        1 - kept,
        grey_at_side(picture),
    )


@dataclass
class Flags:
    """What the comparisons found a member to be: derived copies rank behind."""

    overlay: bool = False
    crop: bool = False


def rank(record: FileRecord, facts: CopyFacts, flags: Flags) -> tuple:
    """The keep order (smallest first): rules 1-6 of the module docstring."""
    return (
        flags.overlay,
        flags.crop,
        facts.border_share > BORDER_SHARE,
        -_compression_step(facts.compression),
        -record.width * record.height,
        -record.size,
        facts.taken is None,
        facts.taken or "",
        record.mtime_ns,
        record.path,
    )


def _compression_step(compression: int) -> int:
    if compression in (LOSSLESS, UNKNOWN_LOSSY, UNREADABLE):
        return compression
    return min(compression, 99) // QUALITY_STEP + 1  # 1..20: above UNKNOWN_LOSSY, below LOSSLESS


def why_behind(keep: tuple, other: tuple, facts: CopyFacts, keep_facts: CopyFacts, record, keep_record) -> str:
    """The first rule that puts `other` behind `keep` (their `rank`s), as a phrase about `other`."""
    if other[0] and not keep[0]:
        return "carries an overlay"
    if other[1] and not keep[1]:
        return "is a crop"
    if other[2] and not keep[2]:
        return "has an added border"
    if other[3] != keep[3]:
        words, keep_words = _compression_words(facts), _compression_words(keep_facts)
        if words.startswith("JPEG") and keep_words.startswith("JPEG"):
            keep_words = str(keep_facts.compression)
        return f"is more compressed ({words} vs {keep_words})"
    if other[4] != keep[4]:
        return f"is smaller ({record.width} x {record.height} vs {keep_record.width} x {keep_record.height})"
    if other[5] != keep[5]:
        return f"is a smaller file ({format_size(record.size)} vs {format_size(keep_record.size)})"
    if other[6:8] != keep[6:8]:
        return "was taken later" if facts.taken else "has no EXIF date"
    if other[8] != keep[8]:
        return "is newer"
    return "ties in every respect (kept by path)"


def _compression_words(facts: CopyFacts) -> str:
    if facts.compression == LOSSLESS:
        return f"lossless {facts.format or ''}".strip()
    if facts.compression == UNKNOWN_LOSSY:
        return f"lossy {facts.format}"
    if facts.compression == UNREADABLE:
        return "unreadable now"
    return f"JPEG quality {facts.compression}"


def format_size(size: int) -> str:
    """Bytes as people read them: '512 bytes', '84 KB', '3.1 MB', '2.4 GB' (powers of 1000, as file
    managers show them)."""
    if size < 1000:
        return f"{size} bytes"
    if size < 1_000_000:
        return f"{size / 1000:.0f} KB" if size < 999_500 else "1.0 MB"
    if size < 1_000_000_000:
        return f"{size / 1e6:.1f} MB"
    return f"{size / 1e9:.1f} GB"


# Phrases for the keep's summary, in rule order: what the others are, against it
_SUMMARY = (
    ("carries an overlay", "carry an overlay"),
    ("is a crop", "are a crop"),
    ("has an added border", "have an added border"),
    ("is more compressed", "are more compressed"),
    ("is smaller", "are smaller"),
    ("is a smaller file", "are smaller files"),
    ("was taken later", "were taken later"),
    ("has no EXIF date", "have no EXIF date"),
    ("is newer", "are newer"),
    ("ties in every respect", "tie in every respect (first by path)"),
)


def summary(reasons: list[str]) -> str:
    """Each other member's reason -> the keep's: 'original: the others carry an overlay, are a crop'."""
    parts = [plural for single, plural in _SUMMARY if any(r.startswith(single) for r in reasons)]
    return "original: the others " + ", ".join(parts)


@dataclass
class Ordered:
    """A group in keep order: ids, the keep first; each member's reason (the keep's is its summary); and
    each other member's keypoints agreeing with the keep."""

    ids: list[int]
    reasons: list[str]
    matches: dict[int, int]


def order_group(
    index: HashIndex,
    lead: int,
    members: list[int],
    lead_matches: dict[int, int],
    features: dict[int, Features],
    facts_of: Callable[[FileRecord], CopyFacts] = read_facts,
) -> Ordered:
    """A verified star (`lead` and its `members`, each verified against it with `lead_matches[j]`
    keypoints) -> its members in keep order, with reasons (module docstring)."""
    from aetools.index.verify import align, derivation, features_of_grey

    ids = [lead, *members]
    records = {i: index.records[i] for i in ids}
    facts = {i: facts_of(records[i]) for i in ids}
    feats = {
        i: features[i] if i in features else features_of_grey(facts[i].grey) if facts[i].grey is not None else None
        for i in ids
    }
    flags = {i: Flags() for i in ids}
    relations: dict[tuple[int, int], tuple[Alignment, Derivation] | None] = {}

    def relate(a: int, b: int) -> tuple[Alignment, Derivation] | None:
        """How a lies on b and which is derived; None when they are not verified copies (or unreadable)."""
        if (a, b) not in relations:
            alignment = align(feats[a], feats[b]) if feats[a] is not None and feats[b] is not None else None
            if alignment is None:
                relations[(a, b)] = None
            elif facts[a].grey is None or facts[b].grey is None:
                relations[(a, b)] = (alignment, Derivation())
            else:
                relations[(a, b)] = (alignment, derivation(facts[a].grey, facts[b].grey, alignment))
        return relations[(a, b)]

    def mark(a: int, b: int) -> None:
        found = relate(a, b)
        if found is not None:
            d = found[1]
            flags[a].crop |= d.a_is_crop
            flags[b].crop |= d.b_is_crop
            flags[a].overlay |= d.overlay == "a"
            flags[b].overlay |= d.overlay == "b"

    for j in members:
        mark(lead, j)
    ranked = sorted(ids, key=lambda i: rank(records[i], facts[i], flags[i]))
    keep = lead
    for candidate in ranked:
        if candidate == lead:
            break
        others = [j for j in ids if j != candidate]
        if all(relate(candidate, j) is not None for j in others):
            for j in others:
                mark(candidate, j)
            if not flags[candidate].overlay and not flags[candidate].crop:
                keep = candidate
                break
    ranks = {i: rank(records[i], facts[i], flags[i]) for i in ids}
    rest = sorted((i for i in ids if i != keep), key=lambda i: ranks[i])
    reasons = [why_behind(ranks[keep], ranks[j], facts[j], facts[keep], records[j], records[keep]) for j in rest]
    matches = {}
    for j in rest:
        if keep == lead:
            matches[j] = lead_matches[j]
        else:
            matches[j] = relate(keep, j)[0].matches
    return Ordered([keep, *rest], [summary(reasons), *reasons], matches)
