"""The S3 artifact store, through s3fs.

S3 makes a single object appear atomically when its PUT (or multipart upload)
completes, so a blob is written first and the key's manifest last: the
manifest PUT is the commit.  Streams larger than one block go to ``tmp/`` by
multipart upload and are copied server-side to ``blobs/<sha256>`` once their
digest is known; ``gc`` removes leftover ``tmp/`` objects and aborts stale
multipart uploads under the store's prefix.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import s3fs  # this module is imported only when an S3 store is used

from conveyor.artifacts import validate_key
from conveyor.errors import ConfigError, ConfinementError
from conveyor.fsstore import TMP, BlobSink, FsspecArtifactStore

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from conveyor.plugins.s3.config import S3ArtifactStoreConfig

_MULTIPART = "multipart:"
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class S3ArtifactStore(FsspecArtifactStore):
    """Artifacts under ``s3://bucket/prefix``.

    Credentials, region and endpoint not given here come from the usual AWS
    sources (environment variables, shared config files, instance metadata).
    """

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        block_size: int = 16 * 2**20,
    ) -> None:
        prefix = prefix.strip("/")
        if prefix:
            try:
                validate_key(prefix, what="S3 prefix")
            except ConfinementError as exc:
                raise ConfigError(exc.message, hint=exc.hint) from None
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = (
            endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
        )
        self.region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        self._credentials = (access_key_id, secret_access_key, session_token)
        self.block_size = block_size
        root = f"{bucket}/{prefix}" if prefix else bucket
        super().__init__(uri=f"s3://{root}", root=root)

    @classmethod
    def from_config(cls, *, app: Any, config: S3ArtifactStoreConfig) -> S3ArtifactStore:
        """The store ``[artifact_store] url = "s3://bucket/prefix"`` names."""
        from conveyor.plugins.s3.config import MIN_PART_SIZE

        parts = urlsplit(config.url)
        if (
            parts.scheme.lower() != "s3"
            or not _BUCKET.fullmatch(parts.netloc)
            or (parts.query or parts.fragment)
        ):
            raise ConfigError(
                f"[artifact_store] url {config.url!r} is not an S3 URL",
                hint='write it as url = "s3://my-bucket/some/prefix"',
            )
        if config.block_size < MIN_PART_SIZE:
            raise ConfigError(
                f"[artifact_store] block_size = {config.block_size} is too small",
                hint=f"use at least {MIN_PART_SIZE} (5 MiB, S3's smallest multipart part)",
            )
        return cls(
            bucket=parts.netloc,
            prefix=parts.path,
            endpoint_url=config.endpoint_url,
            region=config.region,
            access_key_id=config.access_key_id,
            secret_access_key=config.secret_access_key,
            session_token=config.session_token,
            block_size=config.block_size,
        )

    def __repr__(self) -> str:
        return f"S3ArtifactStore(uri={self.uri!r}, endpoint_url={self.endpoint_url!r})"

    # -- primitives ----------------------------------------------------------------------

    def _make_fs(self) -> AbstractFileSystem:
        key, secret, token = self._credentials
        client_kwargs = {"region_name": self.region} if self.region else {}
        return s3fs.S3FileSystem(
            key=key,
            secret=secret,
            token=token,
            endpoint_url=self.endpoint_url,
            client_kwargs=client_kwargs,
            default_block_size=self.block_size,
            use_listings_cache=False,
        )

    def _blob_sink(self) -> BlobSink:
        return _S3Sink(self)

    def _put_blob(self, sha256: str, data: bytes | memoryview) -> None:
        with self._translated():
            self.fs.pipe_file(
                self._blob_path(sha256), bytes(data) if not isinstance(data, bytes) else data
            )

    def _commit_manifest(self, path: str, data: bytes, *, exclusive: bool) -> None:
        with self._translated():
            self.fs.pipe_file(path, data, mode="create" if exclusive else "overwrite")

    def _walk(self, folder: str) -> Iterator[tuple[str, int, float]]:
        with self._translated():
            found = self.fs.find(folder, detail=True)
        for path, info in sorted(found.items()):
            if path.startswith(folder + "/") and info.get("type") != "directory":
                modified = info.get("LastModified")
                yield path, int(info.get("size") or 0), modified.timestamp() if modified else 0.0

    def _temporaries(self, cutoff: float) -> list[tuple[str, int]]:
        found = [
            (self._relative(path), size)
            for path, size, mtime in self._walk(self._path(TMP))
            if mtime <= cutoff
        ]
        with self._translated():
            uploads = self.fs.list_multipart_uploads(self.bucket)
        mine = f"{self.prefix}/" if self.prefix else ""
        for upload in uploads:
            started = upload.get("Initiated")
            if upload["Key"].startswith(mine) and (
                started is None or started.timestamp() <= cutoff
            ):
                found.append(
                    (f"{_MULTIPART}{upload['Key'][len(mine) :]}?uploadId={upload['UploadId']}", 0)
                )
        return found

    def _remove_temporary(self, name: str) -> None:
        with self._translated():
            if name.startswith(_MULTIPART):
                key, _, upload_id = name[len(_MULTIPART) :].partition("?uploadId=")
                full = f"{self.prefix}/{key}" if self.prefix else key
                try:
                    self.fs.call_s3(
                        "abort_multipart_upload", Bucket=self.bucket, Key=full, UploadId=upload_id
                    )
                except FileNotFoundError:
                    pass
            else:
                try:
                    self.fs.rm_file(self._path(name))
                except FileNotFoundError:
                    pass

    def _scan_source(self, path: str) -> tuple[str, dict[str, Any] | None]:
        return f"s3://{path}", self.storage_options()

    def storage_options(self) -> dict[str, str]:
        """Options for polars/object_store to reach this store (credentials resolved)."""
        key, secret, token = self._credentials
        if key is None or secret is None:
            import botocore.session

            found = botocore.session.Session().get_credentials()
            if found is not None:
                frozen = found.get_frozen_credentials()
                key, secret, token = frozen.access_key, frozen.secret_key, frozen.token
        options = {
            "aws_access_key_id": key,
            "aws_secret_access_key": secret,
            "aws_session_token": token,
            "aws_region": self.region,
            "aws_endpoint_url": self.endpoint_url,
        }
        if self.endpoint_url and self.endpoint_url.startswith("http://"):
            options["aws_allow_http"] = "true"
        return {name: value for name, value in options.items() if value}

    def close(self) -> None:
        """Drop the s3fs client (a new one is made on next use)."""
        self._fs = None

    def describe(self) -> dict[str, Any]:
        """The store's URI, backend, endpoint and region (never credentials)."""
        return {**super().describe(), "endpoint_url": self.endpoint_url, "region": self.region}

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Turn a missing bucket or missing credentials into an actionable error."""
        try:
            yield
        except FileNotFoundError as exc:
            if "bucket" in str(exc).lower():
                raise ConfigError(
                    f"the S3 bucket {self.bucket!r} does not exist (store {self.uri})",
                    hint="create the bucket, or fix [artifact_store] url / endpoint_url",
                ) from None
            raise
        except PermissionError as exc:
            raise ConfigError(
                f"access to {self.uri} was denied: {exc}",
                hint="check the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or "
                "[artifact_store] access_key_id/secret_access_key) and the bucket policy",
            ) from None
        except Exception as exc:
            if type(exc).__name__ == "NoCredentialsError":
                raise ConfigError(
                    f"no AWS credentials found for {self.uri}",
                    hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
                    "[artifact_store] access_key_id/secret_access_key",
                ) from None
            raise


class _S3Sink(BlobSink):
    """Buffers up to one block in memory; beyond that, a multipart upload to ``tmp/``."""

    def __init__(self, store: S3ArtifactStore) -> None:
        self._store = store
        self._buffer = bytearray()
        self._file: Any = None
        self._tmp = store._path(TMP, uuid.uuid4().hex)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._file is not None:
            self._file.write(data)
            return
        self._buffer += data
        if len(self._buffer) >= self._store.block_size:
            with self._store._translated():
                self._file = self._store.fs.open(self._tmp, "wb", block_size=self._store.block_size)
                self._file.write(self._buffer)
            self._buffer = bytearray()

    def commit(self, sha256: str) -> None:
        blob = self._store._blob_path(sha256)
        fs = self._store.fs
        with self._store._translated():
            if self._file is None:
                fs.pipe_file(blob, bytes(self._buffer))
            else:
                self._file.close()
                fs.copy(self._tmp, blob)
                fs.rm_file(self._tmp)

    def abort(self) -> None:
        self._buffer = bytearray()
        if self._file is None:
            return
        try:
            if not self._file.closed:
                self._file.discard()  # aborts the multipart upload
                self._file.closed = True  # or its __del__ would try to upload
            else:
                self._store.fs.rm_file(self._tmp)
        except Exception:  # gc removes whatever is left
            pass
