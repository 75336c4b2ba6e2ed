"""Dev tokens: issued only in dev/test mode, verified by the normal verifier, CLI errors."""

from __future__ import annotations

import jwt
import pytest
import typer
from typer.testing import CliRunner

from asinwatch.auth.cli import token as token_command
from asinwatch.auth.dependencies import get_verifier
from asinwatch.auth.jwt import DevTokenRefusedError, issue_dev_token
from asinwatch.auth.roles import UnknownRoleError
from asinwatch.config import get_settings, reset_settings_cache


def _production_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASINWATCH_ENV", "production")
    monkeypatch.setenv("ASINWATCH_AUTH__JWT_SECRET", "p" * 40)
    monkeypatch.setenv("ASINWATCH_ALERTS__WEBHOOK_SECRET", "w" * 40)
    monkeypatch.setenv("ASINWATCH_APIFY__TOKEN", "apify-token")
    reset_settings_cache()


async def test_dev_token_verifies_with_the_configured_settings() -> None:
    token = issue_dev_token("operator", sub="alice", ttl_s=120)
    verifier = await get_verifier()
    claims = await verifier.verify(token)
    principal = verifier.principal(claims)
    assert (principal.sub, principal.role) == ("alice", "operator")
    assert claims["iss"] == get_settings().auth.issuer
    assert claims["aud"] == get_settings().auth.audience
    assert claims["exp"] - claims["iat"] == 120
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_dev_token_refuses_unknown_role_and_bad_ttl() -> None:
    with pytest.raises(UnknownRoleError):
        issue_dev_token("root")
    with pytest.raises(ValueError, match="ttl"):
        issue_dev_token("viewer", ttl_s=0)


def test_dev_token_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    _production_env(monkeypatch)
    with pytest.raises(DevTokenRefusedError, match="dev or test"):
        issue_dev_token("admin")


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(token_command)

    @app.command()
    def other() -> None:  # a second command keeps typer from collapsing the group
        pass

    return app


def test_cli_prints_a_token() -> None:
    result = CliRunner().invoke(_cli(), ["token", "--role", "admin", "--sub", "ops", "--ttl", "60"])
    assert result.exit_code == 0, result.output
    claims = jwt.decode(result.stdout.strip(), options={"verify_signature": False})
    assert claims["sub"] == "ops" and claims["app_metadata"] == {"role": "admin"}


def test_cli_bad_role_is_one_line_and_exit_2() -> None:
    result = CliRunner().invoke(_cli(), ["token", "--role", "boss"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("asinwatch: error: unknown role 'boss'")


def test_cli_refuses_outside_dev(monkeypatch: pytest.MonkeyPatch) -> None:
    _production_env(monkeypatch)
    result = CliRunner().invoke(_cli(), ["token", "--role", "viewer"])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("asinwatch: error: dev tokens are only issued")
    assert result.stdout == ""
