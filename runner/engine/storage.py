"""Where results and checkpoints live: a local path, or a URI opened through pyarrow's file systems.

``--results`` may be a directory on this machine (one machine, or a shared file system every node mounts)
or a URI (``s3://bucket/prefix``, ``gs://bucket/prefix``, ``file:///abs/path``) that every node opens for
itself, as Ray Tune does with its own ``storage_path``: a multi-node cluster then needs no shared file system.

A write is whole or absent for every reader. On a file system the bytes go to a temporary name that starts
with ``.`` (pyarrow's directory readers, and so ``pd.read_parquet(<dir>)``, skip names starting with ``.``
or ``_``), then a rename replaces the file; on an object store a single put publishes the object whole.
The bytes are serialized in memory first, so an error while producing them never reaches storage.

A file whose damage must be caught when it is read back (a checkpoint: cut short by a full disk, edited by
hand) is written with :func:`write_checked`: its SHA-256 goes to ``<name>.sha256`` beside it, after the file
itself, and :func:`read_checked` refuses the bytes unless they match, raising :class:`DamagedFile` naming it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
HIDDEN_PREFIXES = (".", "_")  # names pyarrow's dataset discovery skips (its default ignore_prefixes)
RENAMING_FILE_SYSTEMS = ("local", "hdfs")  # pyarrow type names where a rename replaces a file in one step
CHECKSUM_SUFFIX = ".sha256"  # beside a file written with write_checked: its SHA-256, in hex
CHUNK_BYTES = 8 << 20  # what a streamed read or write holds at once


def is_uri(where: str | os.PathLike[str]) -> bool:
    return bool(_URI.match(str(where)))


def normalize(where: str | os.PathLike[str]) -> str:
    """A local path made absolute (``~`` expanded), or a URI as given without a trailing slash."""
    text = str(where)
    if is_uri(text):
        base, sep, query = text.partition("?")
        stripped = base.rstrip("/")
        return (base if stripped.endswith(":") else stripped) + sep + query  # file:/// stays whole
    return str(Path(text).expanduser().absolute())


def join(where: str | os.PathLike[str], *parts: str) -> str:
    """``join("s3://b/p?x=1", "fig4")`` -> ``s3://b/p/fig4?x=1``; a local path is joined as a path, as given."""
    text = str(where)
    if not is_uri(text):
        return str(Path(text).joinpath(*parts))
    base, sep, query = text.partition("?")
    stripped = base.rstrip("/")
    prefix = base if stripped.endswith(":") else stripped + "/"  # file:/// keeps its three slashes
    return prefix + "/".join(parts) + sep + query


def temporary_name(name: str) -> str:
    """Where a file's new bytes wait before the rename: a name directory readers skip."""
    return f".{name}.tmp"


class StorageError(OSError):
    """Reading or writing results failed; the message says where, from which node, and what to check."""


class DamagedFile(ValueError):
    """A file read back is not what the runner wrote (cut short, edited, or its checksum missing): names it."""


class Location:
    """A file or directory under the results: ``Location("s3://b/fedpara") / "fig4" / "rounds"``.

    Joining is plain text (no file system is opened, nothing is contacted); the file system is opened on the
    first read or write, once per distinct location text in a process.
    """

    def __init__(self, where: str | os.PathLike[str] | Location) -> None:
        self.text: str = where.text if isinstance(where, Location) else normalize(where)

    def __truediv__(self, part: str) -> Location:
        return Location(join(self.text, part))

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Location({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Location) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Location, (self.text,))

    @property
    def is_uri(self) -> bool:
        return is_uri(self.text)

    @property
    def name(self) -> str:
        return self.text.partition("?")[0].rstrip("/").rsplit("/", 1)[-1]

    @property
    def parent(self) -> Location:
        base, sep, query = self.text.partition("?") if self.is_uri else (self.text, "", "")
        return Location(base.rstrip("/").rsplit("/", 1)[0] + sep + query)

    @property
    def local_path(self) -> Path | None:
        """The path on this machine's file system, or None for a location elsewhere (an object store)."""
        if not self.is_uri:
            return Path(self.text)
        fs, path = self._open()
        return Path(path) if fs.type_name == "local" else None

    def exists(self) -> bool:
        fs, path = self._open()
        return self._call("check", lambda: fs.get_file_info(path).type != pafs.FileType.NotFound)

    def read_bytes(self) -> bytes:
        fs, path = self._open()

        def read() -> bytes:
            with fs.open_input_stream(path) as stream:
                return stream.read()

        return self._call("read", read)

    def write_bytes(self, data: bytes) -> None:
        """Replace the file's content in one step for readers (see the module docstring)."""
        fs, path = self._open()

        def write() -> None:
            if fs.type_name in RENAMING_FILE_SYSTEMS:
                parent, _, name = path.rpartition("/")
                fs.create_dir(parent, recursive=True)
                staged = f"{parent}/{temporary_name(name)}"
                with fs.open_output_stream(staged) as stream:
                    stream.write(data)
                _replace(fs, staged, path)
            else:  # an object store: a put publishes the object whole, a rename would be a copy
                with fs.open_output_stream(path) as stream:
                    stream.write(data)

        self._call("write", write)

    def files(self, suffix: str = "") -> list[Location]:
        """The visible files directly in this directory whose names end with ``suffix``, sorted by name;
        temporary and other hidden files (names starting with ``.`` or ``_``) are left out, as pyarrow does."""
        fs, path = self._open()
        infos = self._call("list", lambda: fs.get_file_info(pafs.FileSelector(path, allow_not_found=True)))
        names = sorted(info.base_name for info in infos if info.type == pafs.FileType.File)
        return [self / n for n in names if n.endswith(suffix) and not n.startswith(HIDDEN_PREFIXES)]

    def delete(self) -> None:
        fs, path = self._open()
        if self.exists():
            self._call("delete", lambda: fs.delete_file(path))

    def _open(self) -> tuple[pafs.FileSystem, str]:
        if not self.is_uri:
            return _local(), self.text
        try:
            return _from_uri(self.text)
        except (OSError, ValueError) as error:
            raise StorageError(f"cannot open {self.text}: {error}") from error

    def _call(self, what: str, action: Any) -> Any:
        try:
            return action()
        except FileNotFoundError:
            raise
        except OSError as error:
            if not self.is_uri:
                raise
            raise StorageError(
                f"cannot {what} {self.text} from {_node()}: {error} (every node that runs trials must reach "
                "this storage: the bucket must exist and the node needs credentials for it, on AWS an instance "
                "profile with S3 access; see README 'On a cluster')") from error


def checksum_of(location: Location) -> Location:
    return location.parent / (location.name + CHECKSUM_SUFFIX)


def write_checked(location: Location, data: bytes) -> None:
    """Write ``data``, then its SHA-256 beside it: a reader of the file can tell whether it is whole."""
    location.write_bytes(data)
    checksum_of(location).write_bytes(hashlib.sha256(data).hexdigest().encode())


def read_checked(location: Location) -> bytes:
    """The bytes of a file written with :func:`write_checked`; :class:`DamagedFile` when they do not match the
    checksum beside them (cut short, edited) or there is none (the write was cut short before it)."""
    data = location.read_bytes()
    _check_digest(location, hashlib.sha256(data).hexdigest(), len(data))
    return data


def write_checked_file(location: Location, source: Path) -> int:
    """:func:`write_checked` for a file on this machine too large to hold in memory: its bytes are streamed (and
    hashed) in chunks; returns how many were written."""
    fs, path = location._open()
    digest, size = hashlib.sha256(), 0

    def write() -> None:
        nonlocal size
        staged = path
        if fs.type_name in RENAMING_FILE_SYSTEMS:
            parent, _, name = path.rpartition("/")
            fs.create_dir(parent, recursive=True)
            staged = f"{parent}/{temporary_name(name)}"
        with open(source, "rb") as reader, fs.open_output_stream(staged) as stream:
            while chunk := reader.read(CHUNK_BYTES):
                digest.update(chunk)
                stream.write(chunk)
                size += len(chunk)
        if staged != path:
            _replace(fs, staged, path)

    location._call("write", write)
    checksum_of(location).write_bytes(digest.hexdigest().encode())
    return size


def read_checked_file(location: Location, scratch: Path) -> Path:
    """A file written with :func:`write_checked` or :func:`write_checked_file`, as a path on this machine (the file
    itself when the location is local, else a copy under ``scratch``), checked against its checksum in chunks
    (never held in memory whole); :class:`DamagedFile` as :func:`read_checked`."""
    fs, path = location._open()
    local = location.local_path
    target = local if local is not None else scratch / location.name
    digest, size = hashlib.sha256(), 0

    def read() -> None:
        nonlocal size
        with fs.open_input_stream(path) as stream:
            writer = None if local is not None else open(target, "wb")
            try:
                while chunk := stream.read(CHUNK_BYTES):
                    digest.update(chunk)
                    size += len(chunk)
                    if writer is not None:
                        writer.write(chunk)
            finally:
                if writer is not None:
                    writer.close()

    location._call("read", read)
    _check_digest(location, digest.hexdigest(), size)
    return target


def _check_digest(location: Location, actual: str, size: int) -> None:
    try:
        expected = checksum_of(location).read_bytes().decode().strip()
    except FileNotFoundError:
        raise DamagedFile(f"{location} has no checksum beside it ({checksum_of(location).name}): its write was "
                          "cut short, or the runner did not write it") from None
    if actual != expected:
        raise DamagedFile(f"{location} is damaged: {size} bytes whose SHA-256 {actual[:12]}… does not match "
                          f"{checksum_of(location).name} ({expected[:12]}…); cut short or edited")


def delete_checked(location: Location) -> None:
    """Delete a file written with :func:`write_checked` and its checksum."""
    location.delete()
    checksum_of(location).delete()


def _replace(fs: pafs.FileSystem, staged: str, path: str) -> None:
    """The rename that publishes a staged file (one step on a local or HDFS file system)."""
    fs.move(staged, path)


@functools.cache
def _local() -> pafs.FileSystem:
    return pafs.LocalFileSystem()


@functools.lru_cache(maxsize=64)
def _from_uri(uri: str) -> tuple[pafs.FileSystem, str]:
    fs, path = pafs.FileSystem.from_uri(uri)
    return fs, path.rstrip("/")


def _node() -> str:
    import socket

    return f"node {socket.gethostname()}"
