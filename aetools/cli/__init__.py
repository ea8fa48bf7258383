"""The `aetools` command. Each command group is a module here; heavy imports (torch) happen inside the
commands, so `aetools --help` and `--version` answer at once."""

from __future__ import annotations

import sys

import typer

from aetools import __version__

app = typer.Typer(
    name="aetools",
    help="Autoencoders that do jobs on images: denoise, upscale, colorize, inpaint; search photos by binary code; "
    "generate, interpolate and study images with (variational, VQ) autoencoders.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"aetools {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Autoencoders that do jobs on images."""


from aetools.cli import evaluate, generative, hashing, images, models, serve, training  # noqa: E402,F401  (registers the commands)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
