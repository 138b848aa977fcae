"""Every file operation of the lake, behind one class over pyarrow's filesystem layer.

The root is a local folder or an object-store URI (s3://bucket/lake, configured by the standard AWS variables
AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, which pyarrow and botocore both read);
nothing else in the package touches paths directly. Writes are atomic: locally a hidden temp file next to the
target, made durable, then renamed into place; on an object store one PUT (an object appears whole or not at all).
An object store has no rename: `rename` copies then deletes, file by file. Its locks (`exclusive`) only keep out
this machine's processes; what must hold across machines uses `write_if`, a conditional write (S3 If-Match /
If-None-Match), which a local lake emulates under a lock.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from lakehouse import layout, object_store
from lakehouse.errors import LakehouseError

log = logging.getLogger(__name__)  # every change to the lake at DEBUG: --log-level DEBUG traces a run

PARQUET_COMPRESSION = "zstd"
_RENAME_EXCHANGE = 2  # linux/fs.h
_CURRENT_LAYOUT_ROOTS: set[str] = set()  # lake roots this process found in the current layout (checked once)


@dataclass(frozen=True)
class StoredFile:
    path: str  # relative to the lake root, '/'-separated
    size: int


class LakeStorage:
    def __init__(self, root: str | os.PathLike[str], check_layout: bool = True) -> None:
        """`check_layout`: refuse a lake still in an older folder layout (only the migration opens one)."""
        root = str(root)
        if "://" in root:
            self.fs, base = pafs.FileSystem.from_uri(root)
            self.local_root: Path | None = None
        else:
            self.local_root = Path(root).resolve()
            self.fs, base = pafs.LocalFileSystem(), str(self.local_root)
        self.base = base.rstrip("/")
        self.root = root
        if check_layout and root not in _CURRENT_LAYOUT_ROOTS:
            require_current_layout(self)
            _CURRENT_LAYOUT_ROOTS.add(root)

    # ---------------------------------------------------------------- paths
    def full(self, rel: str) -> str:
        rel = rel.strip("/")
        return f"{self.base}/{rel}" if rel else self.base

    def local_path(self, rel: str) -> Path | None:
        """The local path of `rel`, or None when the lake is on an object store."""
        return self.local_root / rel if self.local_root is not None else None

    @contextmanager
    def exclusive(self, rel: str, wait: bool = True) -> Iterator[IO[str]]:
        """Hold the exclusive lock named `rel` (yields its open lock file, to note the holder in). `wait=False`:
        BlockingIOError, with the holder's note as its text, when the lock is held. The lock file is `rel` in a
        local lake; for a lake on an object store, a file on this machine (it keeps out this machine's processes).
        """
        self.refuse_symlinks(rel)
        with _locked(self.local_path(rel) or _machine_lock_path(self.root, rel), wait) as handle:
            yield handle

    # ---------------------------------------------------------------- queries
    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self.full(rel)).type != pafs.FileType.NotFound

    def is_dir(self, rel: str) -> bool:
        return self.fs.get_file_info(self.full(rel)).type == pafs.FileType.Directory

    def list_dir(self, rel: str) -> list[str]:
        """Names of the immediate children of a folder (empty when it does not exist)."""
        if not self.is_dir(rel):
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(self.full(rel), recursive=False))
        return sorted(info.base_name for info in infos)

    def walk_files(self, rel: str) -> list[StoredFile]:
        """Every visible file under a folder, recursively (temp files are hidden and skipped)."""
        if not self.is_dir(rel):
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(self.full(rel), recursive=True))
        prefix = self.base + "/"
        return sorted(
            (StoredFile(info.path[len(prefix):], info.size or 0) for info in infos
             if info.type == pafs.FileType.File and not info.base_name.startswith(".")),
            key=lambda f: f.path,
        )

    def unsafe_to_delete(self, rel: str) -> str | None:
        """Why `rel` must not be deleted, or None when it is safe: a symlink on the way from the root to `rel` or
        anywhere inside it (pyarrow follows links, so deleting through one could remove data outside the lake), or
        a real path outside the root. Object stores have no symlinks: always safe."""
        return None if self.local_root is None else _unsafe_local_delete(self.local_root, rel)

    def symlink_on_the_way(self, rel: str) -> str | None:
        """Which part of `rel` (from the root down, `rel` included) is a symlink, or None. Object stores: None."""
        return None if self.local_root is None else _symlink_on_the_way(self.local_root, rel)

    def refuse_symlinks(self, rel: str) -> None:
        """Writes (files, folders, logs, locks) never go through a symlink: it could lead out of the lake."""
        on_the_way = self.symlink_on_the_way(rel)
        if on_the_way:
            raise LakehouseError(f"refusing to write {rel}: {on_the_way}; lake folders and files must be real "
                                 "ones inside the lake root")

    # ---------------------------------------------------------------- reads
    def read_bytes(self, rel: str) -> bytes:
        if self.local_root is None:
            return object_store.read(self.full(rel))
        with self.fs.open_input_stream(self.full(rel)) as stream:
            return stream.read()

    def read_parquet(self, rel: str) -> pa.Table:
        return pq.read_table(self.full(rel), filesystem=self.fs)

    def parquet_row_count(self, rel: str) -> int:
        with self.fs.open_input_file(self.full(rel)) as handle:
            return pq.ParquetFile(handle).metadata.num_rows

    def read_versioned(self, rel: str) -> tuple[bytes | None, str | None]:
        """A small file's content and its version (the token `write_if` compares); (None, None) when absent."""
        if self.local_root is None:
            return object_store.read_versioned(self.full(rel))
        if not self.exists(rel):
            return None, None
        data = self.read_bytes(rel)
        return data, hashlib.sha256(data).hexdigest()

    def write_if(self, rel: str, data: bytes, version: str | None) -> str | None:
        """Write `rel` only if it is still at `version` (None: only if it does not exist); returns its new version,
        or None when another writer changed it first. One atomic step on S3 (a conditional PUT), so it decides
        between writers on different machines; a local lake does the same under a lock."""
        if self.local_root is None:
            return object_store.write_if(self.full(rel), data, version)
        folder, _, name = rel.rpartition("/")
        with self.exclusive(f"{folder}/.{name}.cas-lock" if folder else f".{name}.cas-lock"):
            if self.read_versioned(rel)[1] != version:
                return None
            self.write_bytes(rel, data)
        return hashlib.sha256(data).hexdigest()

    # ---------------------------------------------------------------- writes
    def makedirs(self, rel: str) -> None:
        """Create a folder and its missing parents; a local folder created now is durable when this returns
        (its parent is fsynced), so offsets recorded afterwards never point into a folder a crash could lose."""
        if self.local_root is None:
            return  # an object store has no folders: a key's prefix exists while an object has it
        self.refuse_symlinks(rel)
        created = _missing_folders(self.local_root, rel)
        self.fs.create_dir(self.full(rel), recursive=True)
        for folder in reversed(created):  # deepest first, up to the first folder that existed
            _fsync(self.local_root / folder.rpartition("/")[0])

    def write_bytes(self, rel: str, data: bytes) -> None:
        self._atomic_write(rel, lambda stream: stream.write(data))

    def write_parquet(self, rel: str, table: pa.Table, row_group_size: int | None = None) -> None:
        self._atomic_write(rel, lambda stream: pq.write_table(table, stream, compression=PARQUET_COMPRESSION,
                                                              row_group_size=row_group_size))

    def append_line(self, rel: str, line: str) -> None:
        """Append one line to a log file (audit trails); local appends are fsynced."""
        if self.local_root is None:  # no append on an object store: rewrite it, conditionally (writers on other
            while True:               # machines may append at the same time; none loses a line)
                existing, version = self.read_versioned(rel)
                if self.write_if(rel, (existing or b"") + line.encode() + b"\n", version) is not None:
                    return
        self.refuse_symlinks(rel)
        path = self.local_root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with _open_no_follow(path, "a") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def rename(self, src: str, dst: str) -> None:
        """Locally one atomic rename. On an object store a copy then a delete, file by file for a folder: not
        atomic, but each file appears whole, and a rename interrupted midway can be run again (a file whose source
        is gone was moved already)."""
        self.refuse_symlinks(dst)
        if self.local_root is None and self.is_dir(src):
            for stored in self.walk_files(src):
                self.rename(stored.path, dst + stored.path[len(src.rstrip("/")):])
            self.delete_dir(src)
            return
        self.fs.move(self.full(src), self.full(dst))
        if self.local_root is not None:
            _fsync(self.local_root / dst.rpartition("/")[0])
        log.debug("renamed %s -> %s", src, dst, extra={"path": dst})

    def delete_dir(self, rel: str) -> None:
        self.fs.delete_dir(self.full(rel))
        log.debug("deleted folder %s", rel, extra={"path": rel})

    def delete_file(self, rel: str) -> None:
        self.fs.delete_file(self.full(rel))
        log.debug("deleted %s", rel, extra={"path": rel})

    def temp_name(self, rel: str) -> str:
        """A hidden sibling name for staging `rel` (readers skip names starting with '.')."""
        folder, _, name = rel.rpartition("/")
        hidden = f".{name}.tmp-{uuid.uuid4().hex[:12]}"
        return f"{folder}/{hidden}" if folder else hidden

    def _atomic_write(self, rel: str, write) -> None:
        if self.local_root is None:  # a PUT is atomic: readers see the old object or the new one, never a part
            with self.fs.open_output_stream(self.full(rel)) as stream:
                write(stream)
            log.debug("wrote %s", rel, extra={"path": rel})
            return
        self.refuse_symlinks(rel)
        folder = rel.rsplit("/", 1)[0] if "/" in rel else ""
        if folder:
            self.makedirs(folder)
        tmp = self.temp_name(rel)
        try:
            with self.fs.open_output_stream(self.full(tmp)) as stream:
                write(stream)
            _fsync(self.local_root / tmp)
            self.fs.move(self.full(tmp), self.full(rel))
        except BaseException:
            if self.exists(tmp):
                self.fs.delete_file(self.full(tmp))
            raise
        _fsync(self.local_root / folder)
        log.debug("wrote %s", rel, extra={"path": rel})


def date_partition_dirs(storage: LakeStorage, root: str) -> list[str]:
    """Every year=/month=/day= folder under `root` (whatever the spelling of the numbers)."""
    found = []
    for year in _child_dirs(storage, root, "year="):
        for month in _child_dirs(storage, year, "month="):
            found += _child_dirs(storage, month, "day=")
    return found


def _child_dirs(storage: LakeStorage, folder: str, prefix: str) -> list[str]:
    return [f"{folder}/{name}" for name in storage.list_dir(folder)
            if name.startswith(prefix) and storage.is_dir(f"{folder}/{name}")]


@contextmanager
def _locked(path: Path, wait: bool) -> Iterator[IO[str]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with _open_no_follow(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.seek(0)
            raise BlockingIOError(handle.read().strip()) from None
        yield handle  # closing the file releases the lock, also when the process dies


def _open_no_follow(path: Path, mode: str) -> IO[str]:
    """open(path, mode) for "a" / "a+" that fails instead of following a symlink put there after the check."""
    flags = os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | (os.O_RDWR if "+" in mode else os.O_WRONLY)
    return os.fdopen(os.open(path, flags, 0o644), mode, encoding="utf-8")


# ---------------------------------------------------------------- the lake's layout version
def layout_version(storage: LakeStorage) -> int:
    """The lake's folder layout: as recorded, else 1 for a lake holding data, else (a new lake) the current one."""
    if storage.exists(layout.LAYOUT_FILE):
        return int(orjson.loads(storage.read_bytes(layout.LAYOUT_FILE))["layout"])
    if any(storage.list_dir(folder) for folder in layout.DATA_FOLDERS):
        return 1
    return layout.LAYOUT_VERSION


def record_layout_version(storage: LakeStorage) -> None:
    storage.write_bytes(layout.LAYOUT_FILE, orjson.dumps({"layout": layout.LAYOUT_VERSION}))


def require_current_layout(storage: LakeStorage) -> None:
    version = layout_version(storage)
    if version < layout.LAYOUT_VERSION:
        raise LakehouseError(f"the lake at {storage.root} is in folder layout {version} (month=09, version=v3); "
                             "migrate it first: python data_lake_config.py migrate")
    if version > layout.LAYOUT_VERSION:
        raise LakehouseError(f"the lake at {storage.root} is in folder layout {version}, newer than this "
                             f"lakehouse's {layout.LAYOUT_VERSION}: upgrade lakehouse")
    if not storage.exists(layout.LAYOUT_FILE):
        try:  # a new lake: record its layout, so data landed later is known to be current
            record_layout_version(storage)
        except OSError:
            pass  # a read-only lake: the next writer records it


def _fsync(path: Path) -> None:
    """Make a local file, or a folder's entries, durable (object-store puts are durable once they return)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _missing_folders(root: Path, rel: str) -> list[str]:
    """The folders of `rel` (outermost first) that do not exist yet under a local root."""
    parts = Path(rel.strip("/")).parts
    prefixes = ["/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]
    return [prefix for prefix in prefixes if not (root / prefix).is_dir()]


def _unsafe_local_delete(root: Path, rel: str) -> str | None:
    on_the_way = _symlink_on_the_way(root, rel)
    if on_the_way:
        return on_the_way
    path = root / rel.strip("/")
    if not path.resolve().is_relative_to(root):
        return f"{rel} resolves outside the lake root"
    return _symlink_inside(path, root)


def _symlink_on_the_way(root: Path, rel: str) -> str | None:
    path = root
    for part in Path(rel.strip("/")).parts:
        path = path / part
        if path.is_symlink():
            return f"{path.relative_to(root).as_posix()} is a symlink (to {os.readlink(path)})"
    return None


def exchange_dirs(storage: LakeStorage, first: str, second: str) -> bool:
    """Swap two existing folders in one atomic step (Linux renameat2 RENAME_EXCHANGE): a reader resolving either
    path sees the old folder or the new one, never neither. False, and nothing changed, when the backend has no
    such step (object stores, a filesystem without it); then the caller publishes file by file."""
    if storage.local_root is None:
        return False
    storage.refuse_symlinks(first)
    storage.refuse_symlinks(second)
    if _renameat2(storage.local_root / first, storage.local_root / second, _RENAME_EXCHANGE) != 0:
        error = ctypes.get_errno()
        if error in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
            return False
        raise OSError(error, os.strerror(error), first)
    for folder in {first.rsplit("/", 1)[0], second.rsplit("/", 1)[0]}:
        _fsync(storage.local_root / folder)
    return True


def _renameat2(first: Path, second: Path, flags: int) -> int:
    """glibc's renameat2 (2.28+); -1 with errno ENOSYS where the C library has none."""
    function = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if function is None:
        ctypes.set_errno(errno.ENOSYS)
        return -1
    at_fdcwd = -100
    return function(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), flags)


def _machine_lock_path(root: str, rel: str) -> Path:
    digest = hashlib.sha256(f"{root}\0{rel}".encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"lakehouse-{digest}.lock"


def _symlink_inside(path: Path, root: Path) -> str | None:
    """The first symlink anywhere inside `path`, described, or None."""
    for folder, dirs, files in os.walk(path, followlinks=False):
        for name in dirs + files:
            inner = Path(folder) / name
            if inner.is_symlink():
                return f"{inner.relative_to(root).as_posix()} is a symlink (to {os.readlink(inner)})"
    return None
