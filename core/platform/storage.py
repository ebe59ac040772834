"""One storage interface for originals (documents and recordings): a local folder or S3.

Keys are generated here, never taken from user input: ``<kind>/<yyyy>/<mm>/<32 hex>.<ext>``.
The extension comes from the detected file type, so no user filename ever reaches a path or
an object name. Every key read back is validated against that shape before it is used.

- LocalStorage keeps files under ``settings.uploads_dir`` (QUORUM_DATA_DIR/files). Writes go
  to a temporary file in the same folder and are renamed into place, so a reader never sees
  half a file.
- S3Storage keeps objects in a bucket of any S3-compatible store, configured by
  ``STORAGE_URL=s3://bucket/prefix?endpoint_url=http://host:port&region=us-east-1``.
  Credentials come from boto3's standard chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
  ~/.aws, instance roles), so app and workers on several machines share one bucket.

``get_storage()`` returns the configured one (cached per process).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import parse_qs, urlsplit

from core.platform.config import get_settings
from core.platform.errors import InvalidInput, NotFound

log = logging.getLogger(__name__)

CHUNK_BYTES = 1024 * 1024
_KIND = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_SUFFIX = re.compile(r"^(\.[a-z0-9]{1,10})?$")
_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,31}/\d{4}/\d{2}/[0-9a-f]{32}(\.[a-z0-9]{1,10})?$")
# Above this an S3 download for reading spills from memory to a temporary file.
_SPOOL_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class StoredObject:
    """What put() wrote: the generated key, its size and its sha256 (hex)."""

    key: str
    size_bytes: int
    sha256: str


class Storage(Protocol):
    """Where originals live. Keys are opaque strings made by new_key()."""

    def put(self, stream: IO[bytes], *, kind: str, suffix: str = "", max_bytes: int | None = None) -> StoredObject:
        """Copy `stream` to a new key, hashing as it goes. Raises InvalidInput above max_bytes."""
        ...

    def open(self, key: str) -> IO[bytes]:
        """A seekable binary file with the object's bytes (close it). Raises NotFound."""
        ...

    def read(self, key: str) -> bytes: ...

    def delete(self, key: str) -> None:
        """Remove the object. Idempotent: a missing key is not an error."""
        ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int:
        """Size in bytes. Raises NotFound."""
        ...

    def local_path(self, key: str) -> Any:
        """Context manager yielding a Path on local disk with the object's bytes (for ffmpeg & co)."""
        ...


def new_key(kind: str, suffix: str = "") -> str:
    """A fresh, unguessable key ``kind/yyyy/mm/<uuid hex><suffix>``; suffix like ".pdf" or ""."""
    suffix = suffix.lower()
    if not _KIND.match(kind):
        raise ValueError(f"invalid storage kind {kind!r}")
    if not _SUFFIX.match(suffix):
        raise ValueError(f"invalid storage suffix {suffix!r}")
    now = datetime.now(UTC)
    return f"{kind}/{now:%Y}/{now:%m}/{uuid.uuid4().hex}{suffix}"


def check_key(key: str) -> str:
    """Return `key` if it has the shape new_key() makes; raise ValueError otherwise."""
    if not isinstance(key, str) or not _KEY.match(key):
        raise ValueError(f"invalid storage key {key!r}")
    return key


class _HashingReader:
    """Reads through to a stream, hashing and counting, refusing more than `max_bytes`.

    It has no seek(), so boto3 reads it once, front to back, in one thread.
    """

    def __init__(self, stream: IO[bytes], max_bytes: int | None) -> None:
        self._stream = stream
        self._max = max_bytes
        self.size = 0
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(CHUNK_BYTES if size is None or size < 0 else size)
        if data:
            self.size += len(data)
            if self._max is not None and self.size > self._max:
                raise InvalidInput(f"The file is larger than the limit of {_megabytes(self._max)}.")
            self.digest.update(data)
        return data


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MB"


class LocalStorage:
    """Files in a folder on this machine (the default; one machine only)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if not path.is_relative_to(self.root):  # unreachable with a checked key; belt and braces
            raise ValueError(f"invalid storage key {key!r}")
        return path

    def put(self, stream: IO[bytes], *, kind: str, suffix: str = "", max_bytes: int | None = None) -> StoredObject:
        """Write `stream` to a new key. Atomic: on any error nothing is left behind."""
        key = new_key(kind, suffix)
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        reader = _HashingReader(stream, max_bytes)
        fd, partial = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := reader.read(CHUNK_BYTES):
                    out.write(chunk)
            os.replace(partial, path)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
        return StoredObject(key=key, size_bytes=reader.size, sha256=reader.digest.hexdigest())

    def open(self, key: str) -> IO[bytes]:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError:
            raise NotFound("The stored file is missing.") from None

    def read(self, key: str) -> bytes:
        with self.open(key) as handle:
            return handle.read()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise NotFound("The stored file is missing.") from None

    @contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        path = self._path(key)
        if not path.is_file():
            raise NotFound("The stored file is missing.")
        yield path


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str
    endpoint_url: str | None
    region: str | None


def parse_s3_url(url: str) -> S3Location:
    """Parse ``s3://bucket/prefix?endpoint_url=...&region=...``. Raises ValueError when malformed."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError("STORAGE_URL must look like s3://bucket/optional/prefix?endpoint_url=...&region=...")
    query = parse_qs(parts.query)
    prefix = parts.path.strip("/")
    endpoint = query.get("endpoint_url", [])
    region = query.get("region", []) or query.get("region_name", [])
    return S3Location(
        bucket=parts.netloc,
        prefix=f"{prefix}/" if prefix else "",
        endpoint_url=endpoint[0] if endpoint else None,
        region=region[0] if region else None,
    )


class S3Storage:
    """Objects in an S3-compatible bucket, shared by every machine that runs Quorum."""

    def __init__(self, location: S3Location, client: Any | None = None) -> None:
        import boto3  # only when S3 is configured

        self.location = location
        self.client = client or boto3.client(
            "s3", endpoint_url=location.endpoint_url, region_name=location.region or "us-east-1"
        )

    def _name(self, key: str) -> str:
        return self.location.prefix + check_key(key)

    def _is_missing(self, error: Exception) -> bool:
        code = str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))
        return code in ("404", "NoSuchKey", "NotFound")

    def put(self, stream: IO[bytes], *, kind: str, suffix: str = "", max_bytes: int | None = None) -> StoredObject:
        """Upload `stream` (multipart when large). On error the partial upload is aborted by boto3."""
        key = new_key(kind, suffix)
        reader = _HashingReader(stream, max_bytes)
        try:
            self.client.upload_fileobj(reader, self.location.bucket, self._name(key))
        except InvalidInput:
            self.delete(key)
            raise
        except Exception as error:
            if isinstance(getattr(error, "__cause__", None), InvalidInput):
                self.delete(key)
                raise error.__cause__ from None  # type: ignore[misc]
            raise
        return StoredObject(key=key, size_bytes=reader.size, sha256=reader.digest.hexdigest())

    def open(self, key: str) -> IO[bytes]:
        from botocore.exceptions import ClientError

        spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115 - returned to the caller
        try:
            self.client.download_fileobj(self.location.bucket, self._name(key), spool)
        except ClientError as error:
            spool.close()
            if self._is_missing(error):
                raise NotFound("The stored file is missing.") from None
            raise
        spool.seek(0)
        return spool  # type: ignore[return-value]

    def read(self, key: str) -> bytes:
        with self.open(key) as handle:
            return handle.read()

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.location.bucket, Key=self._name(key))

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except NotFound:
            return False
        return True

    def size(self, key: str) -> int:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.location.bucket, Key=self._name(key))
        except ClientError as error:
            if self._is_missing(error):
                raise NotFound("The stored file is missing.") from None
            raise
        return int(head["ContentLength"])

    @contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        folder = Path(tempfile.mkdtemp(prefix="quorum-s3-"))
        try:
            path = folder / Path(check_key(key)).name
            with self.open(key) as source, path.open("wb") as target:
                shutil.copyfileobj(source, target, CHUNK_BYTES)
            yield path
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def storage_from_url(url: str | None) -> Storage:
    """LocalStorage for None, S3Storage for an s3:// URL. Raises ValueError for anything else."""
    if not url:
        return LocalStorage(get_settings().uploads_dir)
    if url.startswith("s3://"):
        return S3Storage(parse_s3_url(url))
    if url.startswith("file://"):
        return LocalStorage(Path(url.removeprefix("file://")))
    raise ValueError("STORAGE_URL must be an s3:// URL (or unset for the local data folder)")


def delete_stored(keys: Iterable[str | None]) -> int:
    """Remove the stored objects of rows that are already gone. Returns how many were removed.

    Never raises: the rows are deleted and committed, so a file that cannot be removed now
    (storage down, permissions) is logged and left behind rather than failing the action.
    """
    storage = get_storage()
    removed = 0
    for key in keys:
        if not key:
            continue
        try:
            storage.delete(key)
            removed += 1
        except Exception:
            log.exception("could not remove stored file %s", key)
    return removed


@lru_cache(maxsize=1)
def get_storage() -> Storage:
    """The process's storage: S3 when STORAGE_URL is set, else QUORUM_DATA_DIR/files."""
    return storage_from_url(get_settings().storage_url)
