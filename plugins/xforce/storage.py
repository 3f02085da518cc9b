"""The one storage abstraction: a *zone* is a local folder or an ``s3://bucket/prefix``.

Built on ``pyarrow.fs`` so Parquet, raw copies and manifests all go through the same
filesystem object. Paths inside a zone are always relative, ``/``-separated, and checked
so that nothing can escape the zone.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import uuid
from dataclasses import dataclass
from typing import IO, Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from xforce.errors import UnsafePathError

PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd"}


def safe_relpath(*parts: str) -> str:
    """Join relative parts, refusing absolute paths, ``..`` and empty names."""
    if parts and str(parts[0]).startswith(("/", "\\")):
        raise UnsafePathError(f"absolute path {parts[0]!r} where a relative one is expected")
    out: list[str] = []
    for part in parts:
        for piece in str(part).replace("\\", "/").split("/"):
            if piece in ("", "."):
                continue
            if piece == ".." or ":" in piece or "\x00" in piece:
                raise UnsafePathError(f"unsafe path component {piece!r} in {'/'.join(parts)!r}")
            out.append(piece)
    return "/".join(out)


@dataclass(frozen=True)
class FileInfo:
    path: str  # relative to the zone
    size: int
    is_symlink: bool = False


class Zone:
    """A storage location (landing, raw, staging, curated, quarantine, docs)."""

    def __init__(self, uri: str, filesystem: pafs.FileSystem | None = None) -> None:
        self.uri = uri.rstrip("/")
        if filesystem is not None:
            self.fs, self.root = filesystem, self.uri.split("://", 1)[-1]
        elif self.uri.startswith("s3://"):
            self.fs, self.root = pafs.FileSystem.from_uri(self.uri)
        else:
            self.fs, self.root = pafs.LocalFileSystem(), self.uri
        self.local = isinstance(self.fs, pafs.LocalFileSystem)

    def __repr__(self) -> str:
        return f"Zone({self.uri!r})"

    def full(self, rel: str) -> str:
        rel = safe_relpath(rel) if rel else ""
        return posixpath.join(self.root, rel) if rel else self.root

    def uri_of(self, rel: str) -> str:
        return f"{self.uri}/{safe_relpath(rel)}"

    # ------------------------------------------------------------------ reading
    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self.full(rel)).type != pafs.FileType.NotFound

    def is_dir(self, rel: str) -> bool:
        return self.fs.get_file_info(self.full(rel)).type == pafs.FileType.Directory

    def list_files(self, rel: str, recursive: bool = False) -> list[FileInfo]:
        """Regular files under ``rel`` (sorted). Symlinks are reported, never followed."""
        base = self.full(rel)
        if self.local:
            return self._list_local(rel, recursive)
        if self.fs.get_file_info(base).type != pafs.FileType.Directory:
            return []
        out = []
        for info in self.fs.get_file_info(pafs.FileSelector(base, recursive=recursive)):
            if info.type == pafs.FileType.Directory:
                continue
            relpath = posixpath.relpath(info.path, self.root)
            link = False
            if self.local:
                import os

                link = os.path.islink(info.path)
            out.append(FileInfo(relpath, int(info.size or 0), link))
        return sorted(out, key=lambda f: f.path)

    def _list_local(self, rel: str, recursive: bool) -> list[FileInfo]:
        """Local listing with ``os.scandir``: symlinks (dangling ones too) are listed, never followed,
        and a symlinked folder anywhere on the way from the zone's root is refused."""
        import os

        path = self.root
        for part in (safe_relpath(rel).split("/") if rel else []):
            path = os.path.join(path, part)
            if os.path.islink(path):
                raise UnsafePathError(f"{rel}: folder {part!r} is a symbolic link; refused")
        if not os.path.isdir(path):
            return []
        out: list[FileInfo] = []
        stack = [path]
        while stack:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        if recursive:
                            stack.append(entry.path)
                        continue
                    link = entry.is_symlink()
                    size = 0 if link else entry.stat(follow_symlinks=False).st_size
                    out.append(FileInfo(os.path.relpath(entry.path, self.root).replace(os.sep, "/"), size, link))
        return sorted(out, key=lambda f: f.path)

    def list_dirs(self, rel: str) -> list[str]:
        base = self.full(rel)
        if self.fs.get_file_info(base).type != pafs.FileType.Directory:
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=False))
        return sorted(posixpath.basename(i.path) for i in infos if i.type == pafs.FileType.Directory)

    def open(self, rel: str) -> IO[bytes]:
        return self.fs.open_input_stream(self.full(rel), compression=None)  # type: ignore[return-value]

    def read_bytes(self, rel: str) -> bytes:
        with self.fs.open_input_stream(self.full(rel), compression=None) as f:
            return bytes(f.read())

    def read_json(self, rel: str) -> Any:
        return json.loads(self.read_bytes(rel))

    def sha256(self, rel: str) -> str:
        digest = hashlib.sha256()
        with self.fs.open_input_stream(self.full(rel), compression=None) as f:
            while chunk := f.read(8 << 20):
                digest.update(chunk)
        return digest.hexdigest()

    def read_parquet(self, rel: str) -> pa.Table:
        return pq.read_table(self.full(rel), filesystem=self.fs)

    # ------------------------------------------------------------------ writing
    def _mkparent(self, rel: str) -> None:
        if self.local:
            self.fs.create_dir(posixpath.dirname(self.full(rel)), recursive=True)

    def _tmp_name(self, rel: str) -> str:
        head, tail = posixpath.split(safe_relpath(rel))
        return posixpath.join(head, f".{tail}.{uuid.uuid4().hex[:12]}.tmp")

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write a whole object at once: a reader sees the old one or the new one."""
        self._mkparent(rel)
        if self.local:
            tmp = self._tmp_name(rel)
            with self.fs.open_output_stream(self.full(tmp), compression=None) as f:
                f.write(data)
            self.fs.move(self.full(tmp), self.full(rel))
        else:
            with self.fs.open_output_stream(self.full(rel), compression=None) as f:  # one PUT: appears whole
                f.write(data)

    def write_json(self, rel: str, doc: Any) -> None:
        self.write_bytes(rel, (json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n").encode())

    def parquet_writer(self, rel: str, schema: pa.Schema) -> pq.ParquetWriter:
        self._mkparent(rel)
        return pq.ParquetWriter(self.full(rel), schema, filesystem=self.fs, **PARQUET_OPTIONS)

    def copy_from(self, src: Zone, src_rel: str, rel: str) -> None:
        """Copy a file from another zone (streamed), atomically on arrival."""
        self._mkparent(rel)
        target = self._tmp_name(rel) if self.local else rel
        with (
            src.fs.open_input_stream(src.full(src_rel), compression=None) as fin,
            self.fs.open_output_stream(self.full(target), compression=None) as fout,
        ):
            while chunk := fin.read(8 << 20):
                fout.write(chunk)
        if target != rel:
            self.fs.move(self.full(target), self.full(rel))

    def move_from(self, src: Zone, src_rel: str, rel: str) -> None:
        """Move a file into this zone, replacing what is there in one step."""
        self._mkparent(rel)
        if self.local and src.local:
            self.fs.move(src.full(src_rel), self.full(rel))  # rename(2): atomic replace
        else:
            self.copy_from(src, src_rel, rel)
            src.delete(src_rel)

    def delete(self, rel: str) -> None:
        if self.exists(rel):
            self.fs.delete_file(self.full(rel))

    def delete_dir(self, rel: str) -> None:
        if self.is_dir(rel):
            self.fs.delete_dir(self.full(rel))
