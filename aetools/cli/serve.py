"""`aetools serve`: the local web page and HTTP API (aetools.serve), run by uvicorn.

aetools serve [--host 127.0.0.1] [--port 8000] [--dedup FOLDER] [--index DIR] [--device D] [--max-upload-mb N]
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

import typer

from aetools.cli import app
from aetools.cli.console import console, fail, prepare
from aetools.cli.images import DeviceOpt


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on; 0.0.0.0 opens it to the network.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", "-p", min=1, max=65535, help="Port to listen on.")] = 8000,
    dedup: Annotated[
        Path | None,
        typer.Option("--dedup", help="A folder indexed with `aetools hash-index`: browse its near-duplicates."),
    ] = None,
    index: Annotated[
        Path | None, typer.Option("--index", help="The index folder, if not FOLDER/.aetools-index.")
    ] = None,
    device: DeviceOpt = "auto",
    max_upload_mb: Annotated[
        float, typer.Option("--max-upload-mb", min=0.001, help="Largest upload taken, in MB (10^6 bytes).")
    ] = 100.0,
) -> None:
    """A web page for every image task (denoise, upscale, colorize, inpaint with a mask brush) and for
    browsing near-duplicates, with an HTTP API beside it (docs/serve.md). Needs `pip install "aetools\\[serve]"`."""
    try:
        import uvicorn

        from aetools.serve import create_app
    except ImportError as e:
        raise fail(f'aetools serve needs its extra ({e.name} is missing): pip install "aetools\\[serve]"') from None
    from aetools.index.folder import default_index_dir
    from aetools.index.store import HashIndexError

    index_dir = index if index is not None else (default_index_dir(dedup) if dedup is not None else None)
    dev = prepare(device)
    try:
        web = create_app(dev, index_dir, int(max_upload_mb * 1_000_000))
    except HashIndexError as e:
        raise fail(f"--dedup: {e}") from None
    if not _is_loopback(host):
        console.print(
            f"[yellow]warning[/] listening on {host}: anyone who can reach this machine can use the page and the API,"
            " and see the paths of the indexed files",
            soft_wrap=True,
        )
    shown = f"[{host}]" if ":" in host else host
    console.print(f"aetools serve: http://{shown}:{port}/  (device {dev}; Ctrl-C stops)", soft_wrap=True)
    uvicorn.run(web, host=host, port=port, log_level="warning")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
