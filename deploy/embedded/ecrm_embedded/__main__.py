"""``ecrm-dev``: the embedded development stack."""

from __future__ import annotations

import typer

from ecrm_embedded.stack import run

cli = typer.Typer(add_completion=False, help="The eCRM development stack.", no_args_is_help=True)


@cli.command("run")
def run_command() -> None:
    """Start the whole pipeline on loopback; Ctrl-C stops it."""
    raise typer.Exit(run())


@cli.command("version")
def version() -> None:
    """Print the version."""
    typer.echo("ecrm 0.1.0")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
