"""The ``nodulekit`` command. Each sub-command is a thin shell over a library function;
library imports happen inside the commands so that ``nodulekit --help`` stays fast."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

app = typer.Typer(
    name="nodulekit",
    help=(
        "Learn, debug and explain pulmonary-nodule detection on LUNA16 chest CT.\n\n"
        "Start with `nodulekit demo` (synthetic data, a few CPU minutes), or "
        "`nodulekit synth OUT_DIR` to make a LUNA16-format data set to explore."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(error: Exception) -> typer.Exit:
    """Print a nodulekit error as one readable line and exit with status 2."""
    typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


def _version(value: bool) -> None:
    if value:
        from nodulekit import __version__

        typer.echo(f"nodulekit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],  # noqa: UP045 - typer needs Optional on 3.10
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = None,
) -> None:
    """nodulekit command line."""


# ---- commands -------------------------------------------------------------------------
# (each imports its library function inside, and turns NodulekitError into `_fail`)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
