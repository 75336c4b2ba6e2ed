"""The CLI: each bad input is one readable line and a non-zero exit; products round-trip."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from asinwatch.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, needle: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("asinwatch: error: ")
    assert needle in lines[0]
    assert "Traceback" not in err


def test_invalid_asin(capsys: pytest.CaptureFixture[str], clean_db: str) -> None:
    code, _, err = run(capsys, "products", "add", "B0C1234567", "NOT-AN-ASIN")
    assert code == 2
    assert_one_line_error(err, "invalid ASIN 'NOT-AN-ASIN'")
    with psycopg.connect(clean_db) as conn:  # nothing was written, not even the valid one
        assert conn.execute("SELECT count(*) FROM core.products").fetchone() == (0,)


def test_unknown_marketplace(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "products", "add", "B0C1234567", "--marketplace", "amazon.xx")
    assert code == 2
    assert_one_line_error(err, "unknown marketplace 'amazon.xx'")


def test_unreachable_database(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASINWATCH_DATABASE__URL", "postgresql://postgres@127.0.0.1:1/nowhere")
    code, _, err = run(capsys, "products", "list")
    assert code == 1
    assert_one_line_error(err, "cannot reach the database")


def test_no_database_configured(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASINWATCH_DATABASE__URL", "")
    code, _, err = run(capsys, "migrate")
    assert code == 2
    assert_one_line_error(err, "no database configured")


def test_bad_option_and_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "products", "add", "--bogus")
    assert code == 2
    assert_one_line_error(err, "No such option: --bogus")
    code, _, err = run(capsys, "frobnicate")
    assert code == 2
    assert_one_line_error(err, "No such command 'frobnicate'")
    code, _, err = run(capsys, "worker", "--concurrency", "0")
    assert code == 2
    assert_one_line_error(err, "--concurrency")


def test_invalid_configuration(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASINWATCH_INGEST__BATCH_SIZE", "500")
    code, _, err = run(capsys, "version")
    assert code == 2
    assert_one_line_error(err, "invalid configuration ingest.batch_size")


def test_csv_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "products", "add", "--csv", str(tmp_path / "missing.csv"))
    assert code == 2
    assert_one_line_error(err, "cannot read")
    bad = tmp_path / "bad.csv"
    bad.write_text("asin,marketplace\nB0C1234567,amazon.com\nB0C12,amazon.com\n")
    code, _, err = run(capsys, "products", "add", "--csv", str(bad))
    assert code == 2
    assert_one_line_error(err, "line 3")
    headerless = tmp_path / "nohdr.csv"
    headerless.write_text("sku\nX\n")
    code, _, err = run(capsys, "products", "add", "--csv", str(headerless))
    assert code == 2
    assert_one_line_error(err, "'asin' column")


def test_products_round_trip(
    capsys: pytest.CaptureFixture[str], clean_db: str, tmp_path: Path
) -> None:
    csv_file = tmp_path / "p.csv"
    csv_file.write_text("ASIN,Marketplace,own\nb0c1234569,amazon.de,competitor\n")
    args = ["products", "add", "B0C1234567", "B0C1234568", "--csv", str(csv_file)]
    code, out, _ = run(capsys, *args)
    assert code == 0 and "tracking 3 product(s)" in out
    code, out, _ = run(capsys, "products", "list")
    assert code == 0
    assert "amazon.com\tB0C1234567\town\tactive" in out
    assert "amazon.de\tB0C1234569\tcompetitor\tactive" in out
    code, out, _ = run(capsys, "products", "remove", "B0C1234568")
    assert code == 0 and "untracked 1 product(s)" in out
    code, out, _ = run(capsys, "products", "list")
    assert "B0C1234568" not in out


def test_version_and_migrate(capsys: pytest.CaptureFixture[str], db_url: str) -> None:
    code, out, _ = run(capsys, "version")
    assert code == 0 and out.strip() == "0.1.0"
    code, out, _ = run(capsys, "migrate")
    assert code == 0 and "database at 0002" in out


def test_help_needs_no_database(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASINWATCH_DATABASE__URL", "")
    code, out, err = run(capsys, "ingest", "run", "--help")
    assert code == 0 and "--asins" in out and err == ""
