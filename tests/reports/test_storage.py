"""Object storage: the local folder store and the S3 store (against moto's standalone S3 server
on 127.0.0.1), the same contract for both, and refusal of keys that could escape the root."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from moto.server import ThreadedMotoServer

from asinwatch.config import get_settings, reset_settings_cache
from asinwatch.reports.storage import (
    InvalidKeyError,
    LocalObjectStore,
    ObjectNotFoundError,
    ObjectStore,
    ObjectStoreError,
    S3ObjectStore,
    object_store,
)

BAD_KEYS = [
    "",
    "../escape.txt",
    "reports/../../escape.txt",
    "/etc/passwd",
    "reports//double",
    "reports/./here",
    "reports/..",
    "..",
    "reports\\..\\x",
    "nul\x00byte",
    "new\nline",
    "x" * 1025,
]


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_store(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[ObjectStore]:
    monkeypatch.setenv("ASINWATCH_STORAGE__BACKEND", "s3")
    monkeypatch.setenv("ASINWATCH_STORAGE__S3_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("ASINWATCH_STORAGE__S3_BUCKET", f"aw-test-{tmp_path.name.lower()[-20:]}")
    monkeypatch.setenv("ASINWATCH_STORAGE__S3_ACCESS_KEY", "testing-access")
    monkeypatch.setenv("ASINWATCH_STORAGE__S3_SECRET_KEY", "testing-secret")
    reset_settings_cache()
    store = object_store()
    assert isinstance(store, S3ObjectStore)
    store.ensure_bucket()
    yield store
    reset_settings_cache()


@pytest.fixture
def local_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ObjectStore]:
    monkeypatch.setenv("ASINWATCH_STORAGE__BACKEND", "local")
    monkeypatch.setenv("ASINWATCH_STORAGE__LOCAL_PATH", str(tmp_path / "objects"))
    reset_settings_cache()
    store = object_store()
    assert isinstance(store, LocalObjectStore)
    yield store
    reset_settings_cache()


def _contract(store: ObjectStore) -> str:
    key = "reports/amazon.com/B000000001/v1.md"
    assert not store.exists(key)
    with pytest.raises(ObjectNotFoundError):
        store.get(key)
    uri = store.put(key, b"# Report v1\n", "text/markdown")
    assert store.exists(key)
    assert store.get(key) == b"# Report v1\n"
    store.put(key, b"# Report v1 (rewritten)\n", "text/markdown")
    assert store.get(key) == b"# Report v1 (rewritten)\n"
    binary = bytes(range(256)) * 10
    store.put("exports/all.bin", binary)
    assert store.get("exports/all.bin") == binary
    store.delete(key)
    assert not store.exists(key)
    store.delete(key)  # deleting a missing object is fine
    assert isinstance(store, ObjectStore)
    return uri


def test_local_store_round_trip(local_store: ObjectStore, tmp_path: Path) -> None:
    uri = _contract(local_store)
    expected = (tmp_path / "objects/reports/amazon.com/B000000001/v1.md").resolve()
    assert uri == expected.as_uri()
    assert local_store.url("exports/all.bin") == (tmp_path / "objects/exports/all.bin").as_uri()
    # Atomic writes leave no temp files behind.
    assert not list((tmp_path / "objects").rglob(".tmp-*"))


def test_local_store_defaults_to_the_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASINWATCH_STORAGE__LOCAL_PATH", raising=False)
    monkeypatch.setenv("ASINWATCH_STORAGE__BACKEND", "local")
    reset_settings_cache()
    store = object_store()
    assert isinstance(store, LocalObjectStore)
    assert store.root == get_settings().storage_path.resolve()


@pytest.mark.parametrize("key", BAD_KEYS)
def test_local_store_refuses_path_traversal(
    key: str, local_store: ObjectStore, tmp_path: Path
) -> None:
    outside = tmp_path / "escape.txt"
    with pytest.raises(InvalidKeyError):
        local_store.put(key, b"x")
    for op in (local_store.get, local_store.exists, local_store.delete, local_store.url):
        with pytest.raises(InvalidKeyError):
            op(key)
    assert not outside.exists()


def test_local_store_refuses_symlinks_out_of_the_root(
    local_store: ObjectStore, tmp_path: Path
) -> None:
    assert isinstance(local_store, LocalObjectStore)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    local_store.root.mkdir(parents=True, exist_ok=True)
    (local_store.root / "link").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(InvalidKeyError):
        local_store.put("link/file.txt", b"x")
    assert list(elsewhere.iterdir()) == []


def test_s3_store_round_trip_against_moto(s3_store: ObjectStore) -> None:
    uri = _contract(s3_store)
    assert isinstance(s3_store, S3ObjectStore)
    assert uri == f"s3://{s3_store.bucket}/reports/amazon.com/B000000001/v1.md"
    # Content type is kept, and the presigned URL really serves the object.
    s3_store.put("reports/x.json", b'{"a":1}', "application/json")
    head = s3_store.client.head_object(Bucket=s3_store.bucket, Key="reports/x.json")
    assert head["ContentType"] == "application/json"
    url = s3_store.url("reports/x.json")
    assert url.startswith(get_settings().storage.s3_endpoint_url or "")
    assert "X-Amz-Signature=" in url
    response = httpx.get(url, trust_env=False)
    assert response.status_code == 200
    assert response.content == b'{"a":1}'


@pytest.mark.parametrize("key", ["../escape", "/abs", "a//b"])
def test_s3_store_refuses_bad_keys(key: str, s3_store: ObjectStore) -> None:
    with pytest.raises(InvalidKeyError):
        s3_store.put(key, b"x")


def test_s3_store_reports_a_missing_bucket_as_a_storage_error(s3_store: ObjectStore) -> None:
    assert isinstance(s3_store, S3ObjectStore)
    missing = S3ObjectStore(s3_store.client, "no-such-bucket-aw")
    with pytest.raises(ObjectStoreError, match="no-such-bucket-aw"):
        missing.put("a.txt", b"x")


def test_s3_backend_needs_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASINWATCH_STORAGE__BACKEND", "s3")
    monkeypatch.setenv("ASINWATCH_STORAGE__S3_ACCESS_KEY", "")
    monkeypatch.setenv("ASINWATCH_STORAGE__S3_SECRET_KEY", "")
    reset_settings_cache()
    with pytest.raises(ObjectStoreError, match="S3_ACCESS_KEY"):
        object_store()
