"""The ``asinwatch token --role ROLE`` command: prints a dev/test JWT (registered by the CLI)."""

from __future__ import annotations

from typing import Annotated

import typer

from asinwatch.auth.jwt import DevTokenRefusedError, issue_dev_token


def token(
    role: Annotated[str, typer.Option("--role", help="viewer, operator or admin")],
    sub: Annotated[str, typer.Option("--sub", help="the token subject")] = "dev-user",
    ttl: Annotated[int, typer.Option("--ttl", help="lifetime in seconds")] = 3600,
) -> None:
    """Print an HS256 access token for local use (only when ASINWATCH_ENV is dev or test)."""
    try:
        value = issue_dev_token(role, sub=sub, ttl_s=ttl)
    except (DevTokenRefusedError, ValueError) as exc:
        typer.echo(f"asinwatch: error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(value)
