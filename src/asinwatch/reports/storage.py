"""Object storage for reports and exports: the `ObjectStore` protocol, a local-folder store and
an S3-compatible store (AWS S3, MinIO, Supabase Storage's S3 API), chosen by
`settings.storage.backend` through `object_store()`.

Keys are relative, slash-separated names (``reports/amazon.com/B0.../v3.md``); `validate_key`
refuses anything that could escape the store's root (``..``, absolute paths, backslashes,
control characters), for both backends, so a key means the same thing everywhere.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import structlog

from asinwatch.config import Settings, get_settings

if TYPE_CHECKING:
    from botocore.client import BaseClient

log = structlog.get_logger(__name__)

MAX_KEY_LENGTH = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ObjectStoreError(RuntimeError):
    """Storage failed (I/O, permissions, the S3 service)."""


class ObjectNotFoundError(KeyError):
    """No object under that key."""


class InvalidKeyError(ValueError):
    """A key that is empty, too long, or could escape the store's root."""


@runtime_checkable
class ObjectStore(Protocol):
    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Store `data` under `key` (replacing any object there); returns the object's URI."""
        ...

    def get(self, key: str) -> bytes:
        """The object's bytes; raises `ObjectNotFoundError`."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""
        ...

    def url(self, key: str) -> str:
        """Where a client can fetch the object (a file URI, or a time-limited S3 link)."""
        ...


def validate_key(key: str) -> str:
    """The key if it is a safe relative name; raises `InvalidKeyError` otherwise."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidKeyError(f"object key must be 1 to {MAX_KEY_LENGTH} characters")
    if _CONTROL.search(key) or "\\" in key:
        raise InvalidKeyError("object key must not contain control characters or backslashes")
    if key.startswith("/"):
        raise InvalidKeyError("object key must be relative (no leading '/')")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidKeyError("object key must not contain empty, '.' or '..' segments")
    return key


class LocalObjectStore:
    """Objects as files under a root folder; writes are atomic (temp file + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / validate_key(key)).resolve()
        # Defence in depth against symlinks inside the root pointing outside it.
        if not path.is_relative_to(self.root) or path == self.root:
            raise InvalidKeyError("object key resolves outside the store")
        return path

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise ObjectStoreError(f"could not write object {key!r}: {exc.strerror}") from exc
        log.debug("object stored", backend="local", key=key, bytes=len(data))
        return path.as_uri()

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise ObjectNotFoundError(key) from exc
        except OSError as exc:
            raise ObjectStoreError(f"could not read object {key!r}: {exc.strerror}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise ObjectStoreError(f"could not delete object {key!r}: {exc.strerror}") from exc

    def url(self, key: str) -> str:
        return self._path(key).as_uri()


class S3ObjectStore:
    """Objects in one bucket of an S3-compatible service (path-style addressing, which MinIO
    and Supabase Storage require and AWS accepts)."""

    def __init__(self, client: BaseClient, bucket: str, url_expires_s: int = 3600) -> None:
        self.client = client
        self.bucket = bucket
        self.url_expires_s = url_expires_s

    def _error(self, exc: Exception, key: str, action: str) -> ObjectStoreError:
        return ObjectStoreError(f"could not {action} object {key!r} in {self.bucket!r}: {exc}")

    @staticmethod
    def _is_missing(exc: Exception) -> bool:
        response: dict[str, Any] = getattr(exc, "response", {}) or {}
        code = str(response.get("Error", {}).get("Code", ""))
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return code in ("404", "NoSuchKey", "NotFound") or status == 404

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (MinIO / tests; production buckets are
        usually provisioned separately)."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if not self._is_missing(exc):
                raise self._error(exc, "", "check bucket for") from exc
            self.client.create_bucket(Bucket=self.bucket)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        validate_key(key)
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, key, "write") from exc
        log.debug("object stored", backend="s3", bucket=self.bucket, key=key, bytes=len(data))
        return f"s3://{self.bucket}/{key}"

    def get(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        validate_key(key)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            return bytes(response["Body"].read())
        except ClientError as exc:
            if self._is_missing(exc):
                raise ObjectNotFoundError(key) from exc
            raise self._error(exc, key, "read") from exc
        except BotoCoreError as exc:
            raise self._error(exc, key, "read") from exc

    def exists(self, key: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        validate_key(key)
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if self._is_missing(exc):
                return False
            raise self._error(exc, key, "check") from exc
        except BotoCoreError as exc:
            raise self._error(exc, key, "check") from exc
        return True

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        validate_key(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, key, "delete") from exc

    def url(self, key: str) -> str:
        validate_key(key)
        return str(
            self.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": key},
                ExpiresIn=self.url_expires_s,
            )
        )


def s3_client(settings: Settings) -> BaseClient:
    """A boto3 S3 client from the storage settings.

    Keys are required: without them boto3 would search ambient credentials (environment,
    ~/.aws, the instance metadata endpoint), which is both surprising and a network call.
    """
    import boto3
    from botocore.config import Config

    st = settings.storage
    access = st.s3_access_key.get_secret_value()
    secret = st.s3_secret_key.get_secret_value()
    if not access or not secret:
        raise ObjectStoreError(
            "the s3 storage backend needs ASINWATCH_STORAGE__S3_ACCESS_KEY and "
            "ASINWATCH_STORAGE__S3_SECRET_KEY"
        )
    return boto3.client(
        "s3",
        endpoint_url=st.s3_endpoint_url,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        region_name=st.s3_region,
        config=Config(
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            connect_timeout=5,
            read_timeout=30,
            retries={"max_attempts": 3, "mode": "standard"},
        ),
    )


def object_store(settings: Settings | None = None) -> ObjectStore:
    """The configured store: local folder (`settings.storage_path`) or S3-compatible."""
    s = settings or get_settings()
    if s.storage.backend == "s3":
        return S3ObjectStore(s3_client(s), s.storage.s3_bucket)
    return LocalObjectStore(s.storage_path)
