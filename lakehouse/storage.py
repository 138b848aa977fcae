"""Every file operation of the lake, behind one class over pyarrow's filesystem layer.

The root is a local folder today; because nothing else in the package touches paths directly, it can
become an object-store URI (s3://bucket/lake, gs://bucket/lake) without changes elsewhere.
Writes are atomic: a hidden temp file next to the target, made durable, then renamed into place.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
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

from lakehouse import layout
from lakehouse.errors import LakehouseError

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
        path = self.local_path(rel) or _machine_lock_path(self.root, rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        with _open_no_follow(path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                handle.seek(0)
                raise BlockingIOError(handle.read().strip()) from None
            yield handle  # closing the file releases the lock, also when the process dies

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
        """Why `rel` must not be deleted, or None when it is safe.

        Unsafe: a symlink on the way from the root to `rel` or anywhere inside it (pyarrow follows
        links, so deleting through one could remove data outside the lake), or a real path outside
        the root. Object stores have no symlinks: always safe.
        """
        if self.local_root is None:
            return None
        on_the_way = self.symlink_on_the_way(rel)
        if on_the_way:
            return on_the_way
        path = self.local_root / rel.strip("/")
        if not path.resolve().is_relative_to(self.local_root):
            return f"{rel} resolves outside the lake root"
        return _symlink_inside(path, self.local_root)

    def symlink_on_the_way(self, rel: str) -> str | None:
        """Which part of `rel` (from the root down, `rel` included) is a symlink, or None. Object stores: None."""
        if self.local_root is None:
            return None
        path = self.local_root
        for part in Path(rel.strip("/")).parts:
            path = path / part
            if path.is_symlink():
                return f"{path.relative_to(self.local_root).as_posix()} is a symlink (to {os.readlink(path)})"
        return None

    def refuse_symlinks(self, rel: str) -> None:
        """Writes (files, folders, logs, locks) never go through a symlink: it could lead out of the lake."""
        on_the_way = self.symlink_on_the_way(rel)
        if on_the_way:
            raise LakehouseError(f"refusing to write {rel}: {on_the_way}; lake folders and files must be real "
                                 "ones inside the lake root")

    # ---------------------------------------------------------------- reads
    def read_bytes(self, rel: str) -> bytes:
        with self.fs.open_input_stream(self.full(rel)) as stream:
            return stream.read()

    def read_parquet(self, rel: str) -> pa.Table:
        return pq.read_table(self.full(rel), filesystem=self.fs)

    def parquet_row_count(self, rel: str) -> int:
        with self.fs.open_input_file(self.full(rel)) as handle:
            return pq.ParquetFile(handle).metadata.num_rows

    # ---------------------------------------------------------------- writes
    def makedirs(self, rel: str) -> None:
        """Create a folder and its missing parents; a local folder created now is durable when this returns
        (its parent is fsynced), so offsets recorded afterwards never point into a folder a crash could lose."""
        self.refuse_symlinks(rel)
        created = self._missing_folders(rel)
        self.fs.create_dir(self.full(rel), recursive=True)
        for folder in reversed(created):  # deepest first, up to the first folder that existed
            self._sync_dir(folder.rpartition("/")[0])

    def _missing_folders(self, rel: str) -> list[str]:
        """The folders of `rel` (outermost first) that do not exist yet; object stores have no folders."""
        if self.local_root is None:
            return []
        parts = Path(rel.strip("/")).parts
        prefixes = ["/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]
        return [prefix for prefix in prefixes if not (self.local_root / prefix).is_dir()]

    def write_bytes(self, rel: str, data: bytes) -> None:
        self._atomic_write(rel, lambda stream: stream.write(data))

    def write_parquet(self, rel: str, table: pa.Table, row_group_size: int | None = None) -> None:
        self._atomic_write(rel, lambda stream: pq.write_table(table, stream, compression=PARQUET_COMPRESSION,
                                                              row_group_size=row_group_size))

    def append_line(self, rel: str, line: str) -> None:
        """Append one line to a log file (audit trails); local appends are fsynced."""
        if self.local_root is None:
            existing = self.read_bytes(rel) if self.exists(rel) else b""
            self.write_bytes(rel, existing + line.encode() + b"\n")
            return
        self.refuse_symlinks(rel)
        path = self.local_root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with _open_no_follow(path, "a") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def rename(self, src: str, dst: str) -> None:
        self.refuse_symlinks(dst)
        self.fs.move(self.full(src), self.full(dst))
        self._sync_dir(dst.rsplit("/", 1)[0] if "/" in dst else "")

    def delete_dir(self, rel: str) -> None:
        self.fs.delete_dir(self.full(rel))

    def delete_file(self, rel: str) -> None:
        self.fs.delete_file(self.full(rel))

    def temp_name(self, rel: str) -> str:
        """A hidden sibling name for staging `rel` (readers skip names starting with '.')."""
        folder, _, name = rel.rpartition("/")
        hidden = f".{name}.tmp-{uuid.uuid4().hex[:12]}"
        return f"{folder}/{hidden}" if folder else hidden

    def _atomic_write(self, rel: str, write) -> None:
        self.refuse_symlinks(rel)
        folder = rel.rsplit("/", 1)[0] if "/" in rel else ""
        if folder:
            self.makedirs(folder)
        tmp = self.temp_name(rel)
        try:
            with self.fs.open_output_stream(self.full(tmp)) as stream:
                write(stream)
            self._sync_file(tmp)
            self.fs.move(self.full(tmp), self.full(rel))
        except BaseException:
            if self.exists(tmp):
                self.fs.delete_file(self.full(tmp))
            raise
        self._sync_dir(folder)

    def _sync_file(self, rel: str) -> None:
        if self.local_root is None:
            return  # object-store puts are durable once they return
        fd = os.open(self.local_root / rel, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _sync_dir(self, rel: str) -> None:
        if self.local_root is not None:
            self._sync_file(rel)


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
        storage._sync_dir(folder)
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
