"""dedup's outputs: the groups as JSON, and as one self-contained HTML page (thumbnails inlined as data URIs,
each linking to its file), both with the copy to keep first and a list of the copies suggested for removal.
dedup never deletes anything itself."""

from __future__ import annotations

import base64
import html
import io
import json
import time
from pathlib import Path

from PIL import Image

from aetools.data.io import ImageError, load_image, to_uint8
from aetools.index.folder import Duplicates, Member
from aetools.index.keep import format_size

THUMBNAIL = 160  # pixels, long side


def member_dict(m: Member, keep: bool) -> dict:
    return {
        "path": m.path,
        "keep": keep,
        "distance": m.distance,
        "matches": m.matches,
        "exact": m.exact,
        "width": m.width,
        "height": m.height,
        "bytes": m.size,
        "modified": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(m.mtime_ns / 1e9)),
        "reason": m.reason,
    }


def duplicates_json(found: Duplicates) -> str:
    """{"groups": [[member, ...], ...], "suggested_to_remove": [path, ...], "failures": [{path, reason}]};
    a member is {"path", "keep" (the group's first: the copy to keep), "distance" (code bits to the first),
    "matches" (keypoints agreeing with the first), "exact" (its bytes are another member's), "width",
    "height", "bytes", "modified", "reason" (the keep: why it is the original, "original: the others carry an
    overlay, are more compressed"; another member: what put it behind, "is a crop")}."""
    return json.dumps(
        {
            "groups": [[member_dict(m, m is group[0]) for m in group] for group in found.groups],
            "suggested_to_remove": found.suggested_removals(),
            "failures": [{"path": p, "reason": r} for p, r in found.failures],
        },
        indent=1,
    )


def thumbnail_uri(path: str) -> str | None:
    """A small JPEG of the image as a data: URI; None if it cannot be read."""
    try:
        image = load_image(path, draft=THUMBNAIL)
    except ImageError:
        return None
    pixels = to_uint8(image.pixels)
    pil = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    pil.thumbnail((THUMBNAIL, THUMBNAIL))
    buffer = io.BytesIO()
    pil.save(buffer, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def describe(m: Member) -> str:
    """'4032 x 3024, 3.1 MB, 2026-05-04 10:31' (or '84 KB') for a caption or a line of output."""
    pixels = f"{m.width} x {m.height}" if m.width else "size unknown"
    modified = time.strftime("%Y-%m-%d %H:%M", time.localtime(m.mtime_ns / 1e9))
    return f"{pixels}, {format_size(m.size)}, {modified}"


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>aetools dedup: {n} groups</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
section {{ border-top: 1px solid #ccc; padding: 1em 0; }}
figure {{ display: inline-block; margin: 0 1em 1em 0; width: {w}px; vertical-align: top; }}
figure.keep img {{ outline: 3px solid #2a7; }}
img {{ max-width: {w}px; max-height: {w}px; display: block; }}
figcaption {{ font-size: 12px; word-break: break-all; }}
.d {{ font-weight: bold; }}
pre {{ background: #f4f4f4; padding: 1em; white-space: pre-wrap; }}
</style></head><body>
<h1>{n} groups of near-duplicates</h1>
<p>{copies} copies among {members} images in groups. Each group starts with the copy to keep, the original
the others were made from: no caption or overlay, not cropped, no added border, least compressed, then the
most pixels, the largest file, the oldest (EXIF date, then file date); each caption says why. Every other
member was checked against it: codes at most {radius} bits apart, and at least {min_matches} keypoints
agreeing on one transform. Click a thumbnail to open the file. Nothing has been deleted.</p>
{sections}
<h2>Suggested to remove ({removals} files)</h2>
<pre>{removal_list}</pre>
</body></html>
"""


def duplicates_html(found: Duplicates, radius: int) -> str:
    from aetools.index.verify import MIN_INLIERS

    sections = []
    for n, group in enumerate(found.groups, 1):
        figures = []
        for m in group:
            uri = thumbnail_uri(m.path)
            link = html.escape(Path(m.path).resolve().as_uri(), quote=True)
            img = f'<a href="{link}"><img src="{uri}" alt=""></a>' if uri else "<p>(unreadable)</p>"
            label = "keep" if m is group[0] else f"{m.distance} bits, {m.matches} matches"
            label += ", exact copy" if m.exact else ""
            why = f"<br><i>{html.escape(m.reason)}</i>" if m.reason else ""
            caption = f'<span class="d">{label}</span>{why}<br>{html.escape(describe(m))}<br>{html.escape(m.path)}'
            cls = ' class="keep"' if m is group[0] else ""
            figures.append(f"<figure{cls}>{img}<figcaption>{caption}</figcaption></figure>")
        sections.append(f"<section><h2>group {n} ({len(group)} images)</h2>{''.join(figures)}</section>")
    members = sum(len(g) for g in found.groups)
    removals = found.suggested_removals()
    return _PAGE.format(
        n=len(found.groups),
        copies=members - len(found.groups),
        members=members,
        radius=radius,
        min_matches=MIN_INLIERS,
        w=THUMBNAIL,
        sections="\n".join(sections),
        removals=len(removals),
        removal_list=html.escape("\n".join(removals)),
    )
