"""Where files live: a local folder or an S3 (or S3-compatible) prefix, named by one text.

Every file-like store (the dataset tables, the prediction log, batch inputs and outputs, monitor
reports, MLflow's artifacts) takes a :class:`Location`, so a path and an ``s3://bucket/prefix`` URL
are read and written through the same pyarrow filesystem and the same deltalake storage options.
Credentials come from the settings ``s3_access_key_id`` and ``s3_secret_access_key`` (the config
file's or ``VALUELOOP_*``), else the usual AWS variables or files (``AWS_ACCESS_KEY_ID``,
``AWS_PROFILE``, ``~/.aws/credentials``); an S3-compatible server's address from
``s3_endpoint_url``, else ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``. Any other scheme is
refused, naming the supported ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from valueloop.errors import InvalidInput

if TYPE_CHECKING:
    import pyarrow.fs as pafs

    from valueloop.config import Settings

SUPPORTED = "a local path, file:///PATH or s3://BUCKET/PREFIX"


#: valueloop's object-store settings, and the AWS variable each one sets
AWS_VARIABLES = {"s3_endpoint_url": "AWS_ENDPOINT_URL_S3", "s3_region": "AWS_REGION",
                 "s3_access_key_id": "AWS_ACCESS_KEY_ID", "s3_secret_access_key": "AWS_SECRET_ACCESS_KEY"}


def use_settings(settings: Settings) -> None:
    """Set the AWS variables the object-store settings name, in this process: every library that
    reaches the object store (pyarrow, deltalake, MLflow's boto3) and every process started from
    here read the same ones. An empty setting leaves the variable, or the ~/.aws files, to decide."""
    for name, variable in AWS_VARIABLES.items():
        if value := getattr(settings, name):
            os.environ[variable] = value
    _s3.cache_clear()


def endpoint() -> str | None:
    """The S3 endpoint the AWS variables name, or None for AWS itself."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


@lru_cache(maxsize=8)
def _s3(endpoint_url: str | None, region: str) -> pafs.FileSystem:
    import pyarrow.fs as pafs

    # a busy server answers slowly rather than not at all: the SDK's 3 s would fail the write
    patient = {"region": region, "connect_timeout": 10, "request_timeout": 60,
               "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=5)}
    if endpoint_url is None:
        return pafs.S3FileSystem(**patient)
    scheme, _, address = endpoint_url.partition("://")
    return pafs.S3FileSystem(endpoint_override=address.rstrip("/"), scheme=scheme, **patient)


@dataclass(frozen=True)
class Location:
    """A folder or file: an absolute local path, or ``s3://bucket/key``."""

    uri: str

    @classmethod
    def parse(cls, text: str | Path, field: str) -> Location:
        """The location ``text`` names; ``field`` names the setting or option in an error."""
        text = str(text)
        scheme, sep, rest = text.partition("://")
        if not sep:
            if not text.strip():
                raise InvalidInput(f"{field}: empty; expected {SUPPORTED}")
            return cls(str(Path(text).expanduser().resolve()))
        if scheme == "file":
            return cls(str(Path(rest).resolve()))
        if scheme == "s3":
            bucket = rest.partition("/")[0]
            if not bucket:
                raise InvalidInput(f"{field} {text!r}: names no bucket; expected s3://BUCKET/PREFIX")
            return cls(f"s3://{rest.rstrip('/')}")
        raise InvalidInput(f"{field} {text!r}: the scheme {scheme}:// is not supported; expected {SUPPORTED}")

    @property
    def is_local(self) -> bool:
        return not self.uri.startswith("s3://")

    @property
    def filesystem(self) -> pafs.FileSystem:
        import pyarrow.fs as pafs

        return pafs.LocalFileSystem() if self.is_local else _s3(endpoint(), _region())

    @property
    def path(self) -> str:
        """The path on :attr:`filesystem`: the local path, or ``bucket/key``."""
        return self.uri.removeprefix("s3://")

    @property
    def name(self) -> str:
        return self.uri.rstrip("/").rsplit("/", 1)[-1]

    def child(self, *parts: str) -> Location:
        return Location("/".join([self.uri.rstrip("/"), *parts]))

    def exists(self) -> bool:
        import pyarrow.fs as pafs

        return self.filesystem.get_file_info(self.path).type != pafs.FileType.NotFound

    def size(self) -> int:
        """The file's size in bytes."""
        return self.filesystem.get_file_info(self.path).size

    def delete(self) -> None:
        """Remove the file or the folder with all it holds; nothing if it is gone already."""
        import pyarrow.fs as pafs

        kind = self.filesystem.get_file_info(self.path).type
        if kind == pafs.FileType.Directory:
            self.filesystem.delete_dir(self.path)
        elif kind == pafs.FileType.File:
            self.filesystem.delete_file(self.path)

    def storage_options(self) -> dict[str, str] | None:
        """deltalake's options for this location (None on local disk)."""
        if self.is_local:
            return None
        options = {"AWS_REGION": _region()}
        if url := endpoint():
            options["AWS_ENDPOINT_URL"] = url
            options["AWS_ALLOW_HTTP"] = "true" if url.startswith("http://") else "false"
        return options

    def __str__(self) -> str:
        return self.uri
