"""`asinwatch ingest ...`: start runs (with a progress bar), list, resume, replay, dead letters.

Every expected failure is raised as `kit.cli_errors.CliError` (one line, non-zero exit). The
top-level `asinwatch` command registers `ingest_app`; this module never imports it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import typer

from asinwatch.config import get_settings
from asinwatch.kit.cli_errors import CliError

if TYPE_CHECKING:
    from asinwatch.auth.roles import Role

if TYPE_CHECKING:  # imported lazily at run time, so `--help` needs no database driver
    from asinwatch.ingestion.models import IngestRun
    from asinwatch.ingestion.repository import RunActivity

ingest_app = typer.Typer(help="Ingestion runs: start, watch, list, replay.", no_args_is_help=True)

FINAL = ("succeeded", "partial", "failed", "cancelled")


def _cli_error(message: str, code: int = 2) -> Exception:
    return CliError(message, code)


def _run_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise _cli_error(f"invalid run id {value!r}: expected a UUID") from None


@contextmanager
def _service_errors() -> Iterator[None]:
    """Turn the service's and the broker's errors into one readable line."""
    from kombu.exceptions import OperationalError as BrokerError
    from redis.exceptions import RedisError

    from asinwatch.ingestion.service import NothingToIngestError, RunNotFoundError
    from asinwatch.ingestion.spend import (
        AdminRequiredError,
        SpendCapReachedError,
        raise_cap_alert,
    )

    try:
        yield
    except (NothingToIngestError, RunNotFoundError) as exc:
        raise _cli_error(str(exc)) from None
    except AdminRequiredError as exc:
        raise _cli_error(f"{exc} (pass an admin --token)") from None
    except SpendCapReachedError as exc:
        raise_cap_alert(exc)
        raise _cli_error(str(exc), 1) from None
    except (BrokerError, RedisError) as exc:
        raise _cli_error(f"cannot reach Redis / the broker: {exc}", 1) from None


def _parse_asins(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [a.strip() for v in values for a in v.split(",") if a.strip()]


@ingest_app.command("run")
def run_cmd(
    asins: Annotated[
        list[str] | None,
        typer.Option("--asins", help="ASINs (repeat the option or separate with commas)"),
    ] = None,
    all_tracked: Annotated[
        bool, typer.Option("--all", help="Every active tracked product of the marketplace")
    ] = False,
    marketplace: Annotated[
        str | None, typer.Option("--marketplace", "-m", help="e.g. amazon.com")
    ] = None,
    kind: Annotated[str, typer.Option(help="product_details or reviews")] = "product_details",
    job_id: Annotated[
        str | None,
        typer.Option(
            "--job-id",
            help="Idempotency id: the same id never runs twice; an unfinished run is resumed",
        ),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the run with a progress bar")
    ] = False,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="ASINWATCH_TOKEN",
            help="Your access token (JWT); without one you act as an operator. Runs over"
            " untracked ASINs or more than ingest.admin_run_size ASINs need an admin token",
        ),
    ] = None,
) -> None:
    """Start an ingestion run (product details of the given or all tracked ASINs)."""
    _require_database()
    role = _caller_role(token)
    from asinwatch.ingestion import service
    from asinwatch.kit.db import session_scope

    wanted = _parse_asins(asins)
    if bool(wanted) == all_tracked:
        raise _cli_error("give --asins A,B,... or --all (exactly one)")
    if kind not in service.BATCH_TASKS:
        raise _cli_error(f"unknown --kind {kind!r}: use product_details or reviews")
    with _service_errors():
        with session_scope() as session:
            run, created = service.prepare_run(
                session,
                marketplace=marketplace,
                asins=wanted,
                all_tracked=all_tracked,
                trigger="manual",
                job_id=job_id,
                kind=kind,  # type: ignore[arg-type]
                role=role,
            )
        resumed = None
        if created:
            service.enqueue_run_sync(run.id)
        elif run.status in ("queued", "running"):
            from asinwatch.ingestion.reconcile import resume_run

            resumed = resume_run(run.id)
    verb = "started" if created else ("resumed:" if resumed else "already exists:")
    typer.echo(
        f"run {run.id} {verb} job {run.job_id}, {run.asins_requested} ASINs"
        f" in {run.batches_total} batches"
    )
    if wait:
        status = follow(run.id)
        if status != "succeeded":
            raise typer.Exit(1)


def _caller_role(token: str | None) -> Role:
    """The role of the CLI's caller: the verified token's, or operator without a token."""
    if not token:
        return "operator"
    import asyncio

    from asinwatch.auth.dependencies import current_verifier
    from asinwatch.auth.jwt import AuthenticationError, ForbiddenError

    verifier = current_verifier()
    try:
        return verifier.principal(asyncio.run(verifier.verify(token))).role
    except (AuthenticationError, ForbiddenError) as exc:
        raise _cli_error(f"--token refused: {exc}") from None


def follow(run_id: uuid.UUID, poll_s: float = 0.5) -> str:
    """Show a progress bar until the run is final; returns its status."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from asinwatch.ingestion import repository
    from asinwatch.kit.db import session_scope

    console = Console(stderr=True)
    started = time.monotonic()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} batches"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("ingest", total=None, info="")
        while True:
            with session_scope() as session:
                run = repository.get_run(session, run_id)
            if run is None:
                raise _cli_error(f"no ingestion run {run_id}")
            elapsed = max(time.monotonic() - started, 1e-6)
            done_asins = run.asins_succeeded + run.asins_quarantined + run.asins_failed
            info = (
                f"{done_asins / elapsed:.1f} ASINs/s  failures {run.asins_failed}"
                f"  quarantined {run.asins_quarantined}  cost ${Decimal(run.cost_usd):.4f}"
            )
            bar.update(
                task,
                total=run.batches_total,
                completed=run.batches_done,
                description=run.status,
                info=info,
            )
            if run.status in FINAL:
                break
            time.sleep(poll_s)
    typer.echo(
        f"run {run.id} {run.status}: {run.asins_succeeded} succeeded,"
        f" {run.asins_quarantined} quarantined, {run.asins_failed} failed,"
        f" cost ${Decimal(run.cost_usd):.4f}"
    )
    return run.status


@ingest_app.command("runs")
def runs_cmd(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many")] = 20,
) -> None:
    """List recent ingestion runs, newest first (an open run shows its age and any stall)."""
    _require_database()
    from asinwatch.ingestion import repository
    from asinwatch.kit.db import session_scope

    with session_scope() as session:
        runs = repository.list_runs(session, limit)
        activity = repository.run_activity(
            session, [r.id for r in runs if r.status in repository.OPEN_RUN]
        )
    stale_s = get_settings().recovery.stale_after_s
    typer.echo(
        "id\tjob_id\tstatus\ttrigger\tmarketplace\trequested\tsucceeded\tquarantined"
        "\tfailed\tbatches\tcost_usd\tduration_s\tcreated_at\tage_s\tstalled"
    )
    for r in runs:
        duration = (
            f"{(r.finished_at - r.started_at).total_seconds():.1f}"
            if r.finished_at and r.started_at
            else "-"
        )
        typer.echo(
            f"{r.id}\t{r.job_id}\t{r.status}\t{r.trigger}\t{r.marketplace}\t{r.asins_requested}"
            f"\t{r.asins_succeeded}\t{r.asins_quarantined}\t{r.asins_failed}"
            f"\t{r.batches_done}/{r.batches_total}\t{Decimal(r.cost_usd):.4f}\t{duration}"
            f"\t{r.created_at.isoformat(timespec='seconds')}"
            + _stall_columns(r, activity.get(r.id), stale_s)
        )


def _stall_columns(run: IngestRun, act: RunActivity | None, stale_s: float) -> str:
    """`\tage_s\tstalled` of a run: '-' when final; why it looks stuck, or 'no'."""
    if act is None:
        return "\t-\t-"
    age = f"{time.time() - run.created_at.timestamp():.0f}"
    quiet = act.quiet_s or 0.0
    if act.open_batches == 0:
        why = "yes: every batch final, run not finalised"
    elif quiet < stale_s:
        why = "no"
    elif run.status == "queued":
        why = f"yes: queued, never dispatched ({quiet:.0f}s)"
    else:
        why = (
            f"yes: {act.open_batches} open batch(es) ({act.never_started} never started),"
            f" no heartbeat or message for {quiet:.0f}s"
        )
    return f"\t{age}\t{why}"


@ingest_app.command("resume")
def resume_cmd(
    run_id: Annotated[str, typer.Argument(help="The run to resume")],
) -> None:
    """Re-enqueue a run's unfinished batches no worker holds; finalise it if all are final."""
    _require_database()
    from asinwatch.ingestion.reconcile import resume_run

    with _service_errors():
        result = resume_run(_run_id(run_id))
    if result.finalised:
        typer.echo(f"run {result.run_id} finalised: {result.status}")
    elif result.status not in ("queued", "running"):
        typer.echo(f"run {result.run_id} is already {result.status}: nothing to resume")
    elif result.status == "queued":
        typer.echo(f"run {result.run_id} was never dispatched: dispatch re-sent")
    else:
        nos = ", ".join(map(str, result.enqueued)) or "none (every open batch is held by a worker)"
        typer.echo(f"run {result.run_id} resumed: re-enqueued batch(es) {nos}")


@ingest_app.command("replay")
def replay_cmd(
    run_id: Annotated[str | None, typer.Argument(help="Re-promote this run from staging")] = None,
    dead_letter: Annotated[
        int | None, typer.Option("--dead-letter", help="Re-enqueue this dead batch (fetch again)")
    ] = None,
) -> None:
    """Re-promote a run from staging (no upstream call), or re-enqueue a dead letter."""
    _require_database()
    from asinwatch.ingestion import service

    if (run_id is None) == (dead_letter is None):
        raise _cli_error("give RUN_ID or --dead-letter ID (exactly one)")
    with _service_errors():
        if dead_letter is not None:
            letter = service.replay_dead_letter(dead_letter)
            typer.echo(
                f"dead letter {letter.id} replayed: batch {letter.batch_no} of run"
                f" {letter.run_id} is queued again"
            )
            return
        assert run_id is not None
        report = service.replay_run(_run_id(run_id))
    skipped = ", ".join(f"{no} ({why})" for no, why in sorted(report.skipped.items()))
    typer.echo(
        f"run {report.run_id}: re-promoted {len(report.promoted)} batch(es) from staging"
        + (f"; re-enqueued {len(report.enqueued)} never fetched" if report.enqueued else "")
        + (f"; skipped {skipped}" if skipped else "")
    )


@ingest_app.command("dead-letters")
def dead_letters_cmd(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many")] = 50,
    include_replayed: Annotated[
        bool, typer.Option("--all", help="Include letters already replayed")
    ] = False,
) -> None:
    """List dead letters (batches that failed for good), newest first."""
    _require_database()
    from asinwatch.ingestion import repository
    from asinwatch.kit.db import session_scope

    with session_scope() as session:
        letters = repository.list_dead_letters(session, limit, open_only=not include_replayed)
    typer.echo("id\trun_id\tbatch_no\tattempts\tcreated_at\treplayed_at\terror")
    for d in letters:
        replayed = d.replayed_at.isoformat(timespec="seconds") if d.replayed_at else "-"
        error = " ".join(d.error.split())[:160]
        typer.echo(
            f"{d.id}\t{d.run_id}\t{d.batch_no}\t{d.attempts}"
            f"\t{d.created_at.isoformat(timespec='seconds')}\t{replayed}\t{error}"
        )


def _require_database() -> None:
    # Checked in each command, not in a group callback, so `--help` works without a database.
    if not get_settings().database.url:
        raise _cli_error(
            "no database configured: set ASINWATCH_DATABASE__URL or run `asinwatch up`"
        )
