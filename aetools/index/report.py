"""dedup's outputs: the groups as JSON, and as one self-contained HTML page (thumbnails inlined as data URIs,
so the page can be mailed or moved without the photos)."""

from __future__ import annotations

import base64
import html
import io
import json

from PIL import Image

from aetools.data.io import ImageError, load_image, to_uint8
from aetools.index.folder import Member

THUMBNAIL = 160  # pixels, long side


def duplicates_json(groups: list[list[Member]]) -> str:
    """A list of groups; a group is a list of {"path", "distance" (bits, to the group's first), "exact" (its
    bytes are another member's)}."""
    return json.dumps(
        [[{"path": m.path, "distance": m.distance, "exact": m.exact} for m in group] for group in groups], indent=1
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


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>aetools dedup: {n} groups</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
section {{ border-top: 1px solid #ccc; padding: 1em 0; }}
figure {{ display: inline-block; margin: 0 1em 1em 0; width: {w}px; vertical-align: top; }}
img {{ max-width: {w}px; max-height: {w}px; display: block; }}
figcaption {{ font-size: 12px; word-break: break-all; }}
.d {{ font-weight: bold; }}
</style></head><body>
<h1>{n} groups of near-duplicates</h1>
<p>{copies} copies among {members} images in groups; codes at most {radius} bits apart. Distances are to each
group's first image; "exact copy" marks files whose bytes another file in the group has.</p>
{sections}
</body></html>
"""


def duplicates_html(groups: list[list[Member]], radius: int) -> str:
    sections = []
    for n, group in enumerate(groups, 1):
        figures = []
        for m in group:
            uri = thumbnail_uri(m.path)
            img = f'<img src="{uri}" alt="">' if uri else "<p>(unreadable)</p>"
            label = ("first" if m is group[0] else f"{m.distance} bits") + (", exact copy" if m.exact else "")
            caption = f'<span class="d">{label}</span><br>{html.escape(m.path)}'
            figures.append(f"<figure>{img}<figcaption>{caption}</figcaption></figure>")
        sections.append(f"<section><h2>group {n} ({len(group)} images)</h2>{''.join(figures)}</section>")
    members = sum(len(g) for g in groups)
    return _PAGE.format(
        n=len(groups),
        copies=members - len(groups),
        members=members,
        radius=radius,
        w=THUMBNAIL,
        sections="\n".join(sections),
    )
