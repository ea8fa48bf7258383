"""The `aetools` command. Each command group is a module here; heavy imports (torch) happen inside the
commands, so `aetools --help` and `--version` answer at once."""

from __future__ import annotations

import os
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
    """The command's entry point. Errors a command expects are its own one-line messages; anything else that
    escapes (a bug, or a failure no command foresaw) is still one line and exit code 1, never a traceback,
    unless AETOOLS_DEBUG=1 asks for it."""
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except Exception as e:  # noqa: BLE001  (the last line of defence; the commands catch what they expect)
        if os.environ.get("AETOOLS_DEBUG") == "1":
            raise
        from aetools.outputs import display_name

        reason = (str(e).strip().splitlines() or [""])[0]
        sys.stderr.write(
            display_name(f"error: {type(e).__name__}: {reason}" if reason else f"error: {type(e).__name__}")
            + " (unexpected; AETOOLS_DEBUG=1 shows where)\n"
        )
        sys.exit(1)
