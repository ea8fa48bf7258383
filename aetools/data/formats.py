"""Which files are images and which formats are lossy: plain sets, importable without numpy or Pillow (the
CLI checks paths with them before loading anything heavy)."""

from __future__ import annotations

IMAGE_EXTENSIONS = frozenset(
    {
        ".png",
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".bmp",
        ".dib",
        ".tif",
        ".tiff",
        ".webp",
        ".gif",
        ".ppm",
        ".pgm",
        ".pbm",
        ".pnm",
        ".tga",
        ".jp2",
        ".j2k",
        ".ico",
        ".pcx",
        ".sgi",
        ".im",
        ".qoi",
        ".heic",
        ".heif",
        ".hif",
        ".avif",
    }
)
LOSSY_FORMATS = frozenset({"JPEG", "MPO", "WEBP", "HEIF", "AVIF"})  # Pillow's names of lossy formats
