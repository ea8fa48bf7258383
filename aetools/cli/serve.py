"""`aetools serve`: the local web page and HTTP API (aetools.serve), run by uvicorn.

aetools serve [--host 127.0.0.1] [--port 8000] [--dedup FOLDER] [--index DIR] [--dedup-trash DIR] [--device D]
              [--max-upload-mb N] [--allow-host NAME]... [--max-queue N] [--read-timeout S] [--upload-timeout S]
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
    dedup_trash: Annotated[
        Path | None,
        typer.Option(
            "--dedup-trash",
            metavar="DIR",
            help="A folder the duplicates page may move copies to (created if missing; each keeps its path"
            " relative to FOLDER; nothing is deleted, every move can be undone). Without it, nothing is moved.",
        ),
    ] = None,
    device: DeviceOpt = "auto",
    max_upload_mb: Annotated[
        float, typer.Option("--max-upload-mb", min=0.001, help="Largest upload taken, in MB (10^6 bytes).")
    ] = 100.0,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            metavar="NAME",
            help="Another name this server may be reached by (e.g. a LAN name; repeatable). Always allowed:"
            " localhost, 127.0.0.1, [::1] and the address a request comes in on.",
        ),
    ] = None,
    max_queue: Annotated[
        int, typer.Option("--max-queue", min=0, max=64, help="Jobs that may wait behind the running one; more: 503.")
    ] = 8,
    read_timeout: Annotated[
        float, typer.Option("--read-timeout", min=0.1, help="Seconds an upload may pause before it is dropped (408).")
    ] = 30.0,
    upload_timeout: Annotated[
        float, typer.Option("--upload-timeout", min=0.1, help="Seconds an upload may take in all (408).")
    ] = 600.0,
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
    from aetools.serve.duplicates import TrashError
    from aetools.serve.guard import split_host

    names = []
    for name in allow_host or []:
        parsed = split_host(name)
        if parsed is None or parsed[1] is not None or "/" in name:
            raise fail(f"--allow-host {name!r}: give a host name or address, without a port or scheme")
        names.append(parsed[0])
    index_dir = index if index is not None else (default_index_dir(dedup) if dedup is not None else None)
    if dedup_trash is not None and index_dir is None:
        raise fail("--dedup-trash: give the folder whose duplicates may be moved: --dedup FOLDER")
    dev = prepare(device)
    try:
        web = create_app(
            dev,
            index_dir,
            int(max_upload_mb * 1_000_000),
            root=dedup,  # the folder named here bounds the files served, whatever the index records
            allow_hosts=names,
            max_waiting=max_queue,
            read_timeout=read_timeout,
            upload_timeout=upload_timeout,
            trash=dedup_trash,
        )
    except HashIndexError as e:
        raise fail(f"--dedup: {e}") from None
    except TrashError as e:
        raise fail(f"--dedup-trash {dedup_trash}: {e}") from None
    if not _is_loopback(host):
        console.print(
            f"[yellow]warning[/] listening on {host}: anyone who can reach this machine can use the page and the API,"
            " and see the paths of the indexed files (by this machine's address; a name needs --allow-host NAME)",
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
