"""Storage: local folder and a real S3-compatible server (moto in server mode on loopback)."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.platform.errors import InvalidInput, NotFound
from core.platform.storage import LocalStorage, S3Storage, Storage, check_key, new_key, parse_s3_url, storage_from_url
from tests.local_servers import free_port


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3-compatible HTTP server (moto_server) on a free loopback port."""
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        server.kill()
        pytest.fail("moto_server did not start")
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=10)
    log.close()


@pytest.fixture
def s3_storage(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3Storage:
    # Credentials through boto3's standard environment chain; moto accepts any.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    bucket = f"quorum-{os.urandom(4).hex()}"
    storage = storage_from_url(f"s3://{bucket}/team/files?endpoint_url={moto_endpoint}&region=us-east-1")
    assert isinstance(storage, S3Storage)
    storage.client.create_bucket(Bucket=bucket)
    return storage


@pytest.fixture
def local_storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "files")


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest) -> Storage:
    return request.getfixturevalue("local_storage" if request.param == "local" else "s3_storage")  # type: ignore[no-any-return]


def test_put_read_size_exists_delete_round_trip(storage: Storage) -> None:
    data = os.urandom(300_000)
    stored = storage.put(io.BytesIO(data), kind="documents", suffix=".pdf")
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size_bytes == len(data)
    assert stored.key.startswith("documents/") and stored.key.endswith(".pdf")
    assert storage.exists(stored.key)
    assert storage.size(stored.key) == len(data)
    assert storage.read(stored.key) == data
    with storage.open(stored.key) as handle:
        handle.seek(100)
        assert handle.read(10) == data[100:110]
    with storage.local_path(stored.key) as path:
        assert path.read_bytes() == data

    storage.delete(stored.key)
    assert not storage.exists(stored.key)
    storage.delete(stored.key)  # idempotent
    with pytest.raises(NotFound):
        storage.read(stored.key)
    with pytest.raises(NotFound):
        storage.size(stored.key)


def test_keys_are_generated_never_from_user_names(storage: Storage) -> None:
    first = storage.put(io.BytesIO(b"a"), kind="recordings", suffix=".wav")
    second = storage.put(io.BytesIO(b"a"), kind="recordings", suffix=".wav")
    assert first.key != second.key
    assert check_key(first.key) == first.key
    for bad in ("../etc/passwd", "documents/2026/01/../../x", "/abs/path", "documents/2026/01/Report Final.pdf"):
        with pytest.raises(ValueError):
            storage.exists(bad)
    with pytest.raises(ValueError):
        new_key("documents", "/../x")


def test_put_refuses_more_than_max_bytes_and_leaves_nothing(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="larger than the limit"):
        storage.put(io.BytesIO(b"x" * 5000), kind="documents", suffix=".txt", max_bytes=4096)
    if isinstance(storage, LocalStorage):
        assert not [p for p in storage.root.rglob("*") if p.is_file()]
    else:
        assert isinstance(storage, S3Storage)
        listing = storage.client.list_objects_v2(Bucket=storage.location.bucket)
        assert listing.get("KeyCount", 0) == 0


def test_s3_objects_live_under_the_configured_prefix_and_large_files_go_multipart(s3_storage: S3Storage) -> None:
    data = os.urandom(9 * 1024 * 1024)  # above boto3's 8 MB multipart threshold
    stored = s3_storage.put(io.BytesIO(data), kind="recordings", suffix=".mp3")
    listing = s3_storage.client.list_objects_v2(Bucket=s3_storage.location.bucket)
    assert [item["Key"] for item in listing["Contents"]] == [f"team/files/{stored.key}"]
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert s3_storage.read(stored.key) == data


def test_parse_s3_url() -> None:
    location = parse_s3_url("s3://bucket/a/b/?endpoint_url=http://127.0.0.1:9000&region=eu-west-1")
    assert (location.bucket, location.prefix, location.endpoint_url, location.region) == (
        "bucket",
        "a/b/",
        "http://127.0.0.1:9000",
        "eu-west-1",
    )
    assert parse_s3_url("s3://bucket").prefix == ""
    with pytest.raises(ValueError):
        storage_from_url("ftp://example.com/x")
