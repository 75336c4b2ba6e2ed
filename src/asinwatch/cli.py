"""The `asinwatch` command: run the parts, migrate, and manage tracked products.

Every error a user can cause (a bad ASIN, an unknown marketplace, an unreachable database, a
bad option) ends as one readable line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from pydantic_settings.exceptions import SettingsError

from asinwatch import __version__
from asinwatch.auth.cli import token as _token_command
from asinwatch.config import get_settings, settings_error_line
from asinwatch.ingestion.cli import ingest_app
from asinwatch.simulator.cli import simulate as _simulate_command

try:  # recent typer vendors click under typer._click; older ones use click itself
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as click_exc  # type: ignore[no-redef]

app = typer.Typer(
    name="asinwatch",
    help="Amazon product and competitor monitoring backend.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
products_app = typer.Typer(help="Track, list and untrack products.", no_args_is_help=True)
app.add_typer(products_app, name="products")
app.command("token")(_token_command)
app.command("simulate")(_simulate_command)
app.add_typer(ingest_app, name="ingest")


class CliError(Exception):
    """An error to print as one line; `code` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = 2) -> NoReturn:
    raise CliError(message, code)


# ---------------------------------------------------------------- running the parts


@app.command()
def version() -> None:
    """Print the asinwatch version."""
    typer.echo(__version__)


@app.command()
def up() -> None:
    """Run everything (API, worker, scheduler) on the embedded default or configured URLs."""
    from asinwatch.embedded import run_up

    raise typer.Exit(run_up())


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Uvicorn worker processes")] = 1,
) -> None:
    """Run the HTTP API (uvicorn)."""
    import uvicorn

    s = get_settings()
    _require_database()
    uvicorn.run(
        "asinwatch.app:create_app",
        factory=True,
        host=host or s.api.host,
        port=port or s.api.port,
        workers=workers,
        proxy_headers=True,
        log_config=None,
        access_log=False,
    )


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="Worker processes")] = 2,
    queues: Annotated[str, typer.Option(help="Comma-separated queues")] = "celery",
) -> None:
    """Run a Celery worker."""
    _require_database()
    from asinwatch.worker.celery_app import celery_app

    celery_app.worker_main(
        [*_quiet(), "worker", "--loglevel=INFO", f"--concurrency={concurrency}", "-Q", queues, "-E"]
    )


@app.command()
def beat() -> None:
    """Run the scheduler (Celery beat with a Redis lock: only one is ever active)."""
    _require_redis()
    from asinwatch.worker.celery_app import celery_app

    celery_app.start([*_quiet(), "beat", "--loglevel=INFO"])


def _quiet() -> list[str]:
    """No start-up banner when logs are JSON lines (its lines would not be JSON)."""
    return ["--quiet"] if get_settings().log.json_format else []


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
    down: Annotated[bool, typer.Option("--down", help="Downgrade to REVISION")] = False,
) -> None:
    """Apply database migrations (and create metric partitions ahead)."""
    from asinwatch.migrations import runner

    _require_database()
    if down:
        runner.downgrade(revision=revision)
        typer.echo(f"downgraded to {revision}")
        return
    runner.upgrade(revision=revision)
    created = runner.ensure_metric_partitions(
        months_ahead=get_settings().database.metric_partitions_ahead_months
    )
    typer.echo(f"database at {runner.current_revision()} ({created} new partitions)")


def _require_database() -> None:
    if not get_settings().database.url:
        fail("no database configured: set ASINWATCH_DATABASE__URL or run `asinwatch up`", 2)


def _require_redis() -> None:
    if not get_settings().redis.url:
        fail("no Redis configured: set ASINWATCH_REDIS__URL or run `asinwatch up`", 2)


# ---------------------------------------------------------------- products

MarketplaceOpt = Annotated[
    str | None, typer.Option("--marketplace", "-m", help="e.g. amazon.com (default from settings)")
]


@products_app.command("add")
def products_add(
    asins: Annotated[list[str] | None, typer.Argument(help="ASINs to track")] = None,
    csv_file: Annotated[
        Path | None, typer.Option("--csv", help="CSV with an 'asin' column (and 'marketplace')")
    ] = None,
    marketplace: MarketplaceOpt = None,
    competitor: Annotated[bool, typer.Option(help="Track as a competitor's product")] = False,
) -> None:
    """Track products (from arguments or a CSV file)."""
    from asinwatch.catalog import service

    market = marketplace or get_settings().default_marketplace
    if not asins and not csv_file:
        fail("give ASINs as arguments or --csv FILE")
    items = service.products_from_asins(asins or [], market, is_own=not competitor)
    if csv_file:
        items += service.read_products_csv(csv_file, market)
    _require_database()

    async def _run() -> int:
        from asinwatch.kit.db import async_session_scope

        async with async_session_scope() as session:
            return await service.track(session, market, items)

    written = asyncio.run(_run())
    typer.echo(f"tracking {written} product(s)")


@products_app.command("list")
def products_list(marketplace: MarketplaceOpt = None) -> None:
    """List tracked products."""
    from asinwatch.catalog import service

    _require_database()

    async def _run() -> list[tuple[str, str, bool, str]]:
        from asinwatch.kit.db import async_session_scope

        async with async_session_scope() as session:
            rows = await service.tracked(session, marketplace)
            return [(p.marketplace, p.asin, p.is_own, p.tracking_state) for p in rows]

    for market, asin, own, state in asyncio.run(_run()):
        typer.echo(f"{market}\t{asin}\t{'own' if own else 'competitor'}\t{state}")


@products_app.command("remove")
def products_remove(
    asins: Annotated[list[str], typer.Argument(help="ASINs to stop tracking")],
    marketplace: MarketplaceOpt = None,
) -> None:
    """Stop tracking products (their history is kept)."""
    from asinwatch.catalog import service

    market = marketplace or get_settings().default_marketplace
    service.products_from_asins(asins, market)  # validates before touching the database
    _require_database()

    async def _run() -> int:
        from asinwatch.kit.db import async_session_scope

        async with async_session_scope() as session:
            return await service.untrack(session, market, asins)

    typer.echo(f"untracked {asyncio.run(_run())} product(s)")


# ---------------------------------------------------------------- entry point


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; turn every expected failure into one line and an exit status."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    from asinwatch.catalog.marketplaces import InvalidAsinError, UnknownMarketplaceError
    from asinwatch.catalog.service import CsvFormatError
    from asinwatch.kit.db import DatabaseNotConfiguredError
    from asinwatch.kit.redis_client import RedisNotConfiguredError

    try:
        _configure_logging()
        result = app(args=argv, standalone_mode=False)
        if isinstance(result, int) and result:
            sys.exit(result)
    except CliError as exc:
        _exit(str(exc), exc.code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        _exit("aborted", 130)
    except click_exc.UsageError as exc:
        _exit(exc.format_message().replace("\n", " "), 2)
    except click_exc.ClickException as exc:
        _exit(exc.format_message(), exc.exit_code or 1)
    except (ValidationError, SettingsError) as exc:
        _exit(settings_error_line(exc) or _one_line(exc), 2)
    except (InvalidAsinError, UnknownMarketplaceError, CsvFormatError) as exc:
        _exit(_one_line(exc), 2)
    except (DatabaseNotConfiguredError, RedisNotConfiguredError) as exc:
        _exit(_one_line(exc), 2)
    except (OperationalError, DBAPIError) as exc:
        reason = _one_line(exc.orig) if exc.orig is not None else _one_line(exc)
        _exit(f"cannot reach the database: {reason[:300]}", 1)
    except OSError as exc:
        _exit(_one_line(exc), 1)
    except KeyboardInterrupt:
        _exit("interrupted", 130)
    except Exception as exc:  # a bug: its traceback as one masked JSON log line, no locals
        import structlog

        structlog.get_logger("asinwatch.cli").exception("command failed")
        _exit(f"internal error ({type(exc).__name__}); see the log line above", 1)


def _configure_logging() -> None:
    """JSON log lines with secrets masked, like the API (raises on invalid settings)."""
    from asinwatch.observability.logging import configure_logging

    s = get_settings()
    configure_logging(f"{s.service_name}-cli", s.log.level, s.log.json_format)


def _exit(message: str, code: int) -> NoReturn:
    from asinwatch.observability.logging import mask_text

    print(f"asinwatch: error: {mask_text(message)}", file=sys.stderr)
    sys.exit(code)
