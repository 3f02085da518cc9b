"""The one storage abstraction: a *zone* is a local folder or an ``s3://bucket/prefix``.

Local zones go through ``pyarrow.fs.LocalFileSystem`` (a temporary file renamed into place, so
every write is atomic). S3 zones use two clients over the same endpoint and credentials
(:class:`S3Config`):

* ``pyarrow.fs.S3FileSystem`` for reading: Parquet, raw extracts, manifests;
* ``boto3`` for everything else: listing, checksums, object metadata, copies and **every
  write**, because only boto3 can ask for server-side encryption (``XFORCE_S3_SSE``). A single
  PUT or a completed multipart upload appears whole, so a reader sees the old object or the new
  one; there is no rename on S3 and none is needed.

Both clients retry throttling and 5xx answers a bounded number of times with exponential backoff
(``XFORCE_S3_MAX_ATTEMPTS``). Paths inside a zone are always relative, ``/``-separated, and
checked so that nothing can escape the zone.

A *private* zone (the restricted zone: ``Zone(..., private=True)``) creates its local files 0600
and its folders 0700 whatever the umask. :func:`loose_permissions` lists the local zones holding
clear plates, and the key file, that other accounts could read (``xforce doctor``).
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import shutil
import stat
import tempfile
import uuid
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from xforce.errors import ConfigError, UnsafePathError
from xforce.store.s3 import S3Config, is_not_found, s3_client, s3_filesystem

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd"}
#: Objects above this size are uploaded and copied in parts (a completed multipart upload appears whole).
MULTIPART_THRESHOLD = 64 << 20
_CHUNK = 8 << 20


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
    etag: str | None = None  # S3 only: the version seen when listed (reads can insist on it)
    #: False for what is neither a file nor a folder (a FIFO, socket or device: opening it could block)
    regular: bool = True
    mtime: float | None = None  # when it was last written (seconds since the epoch; S3: LastModified)


class _S3ParquetWriter(pq.ParquetWriter):
    """Writes Parquet to a local temporary file; ``close()`` uploads it in one piece (with SSE)."""

    def __init__(self, zone: Zone, rel: str, schema: pa.Schema, **options: Any) -> None:
        fd, self._tmp = tempfile.mkstemp(prefix=".xforce-", suffix=".parquet")
        os.close(fd)
        self._zone, self._rel, self._uploaded = zone, rel, False
        super().__init__(self._tmp, schema, **options)

    def close(self) -> None:
        super().close()
        if self._uploaded:
            return
        try:
            self._zone._upload_file(self._tmp, self._rel)
            self._uploaded = True
        finally:
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)


# ------------------------------------------------------------------------------------- the zone
class Zone:
    """A storage location (landing, raw, staging, curated, quarantine, docs)."""

    def __init__(
        self, uri: str, filesystem: pafs.FileSystem | None = None, *, s3: S3Config | None = None, private: bool = False
    ) -> None:
        self.uri = uri.rstrip("/")
        #: local files 0600, folders 0700 whatever the umask (the restricted zone); S3: as the bucket's policy
        self.private = private
        self.s3: S3Config | None = None
        if filesystem is not None:
            self.fs, self.root = filesystem, self.uri.split("://", 1)[-1]
        elif self.uri.startswith("s3://"):
            # the standard AWS settings unless told otherwise; the hub's zones come from
            # ``xforce.store.connections.open_zone``, which resolves Airflow Connections at the edge
            self.s3 = s3 = s3 if s3 is not None else S3Config.from_env()
            self.root = self.uri[len("s3://") :].strip("/")
            self.bucket, _, self.prefix = self.root.partition("/")
            if not self.bucket:
                raise ConfigError(f"S3 location {uri!r} names no bucket")
            self.fs = s3_filesystem(s3)
        else:
            self.fs, self.root = pafs.LocalFileSystem(), self.uri
        self.local = isinstance(self.fs, pafs.LocalFileSystem)

    def __repr__(self) -> str:
        return f"Zone({self.uri!r})"

    def as_private(self) -> Zone:
        """The same location, writing private files and folders (:attr:`private`)."""
        twin = Zone.__new__(Zone)
        twin.__dict__.update(self.__dict__)
        twin.private = True
        return twin

    @property
    def _private_local(self) -> bool:
        return self.private and self.local and self.s3 is None

    def full(self, rel: str) -> str:
        rel = safe_relpath(rel) if rel else ""
        return posixpath.join(self.root, rel) if rel else self.root

    def uri_of(self, rel: str) -> str:
        return f"{self.uri}/{safe_relpath(rel)}"

    # ------------------------------------------------------------------ S3 helpers
    @property
    def client(self) -> Any:
        if self.s3 is None:
            raise TypeError(f"{self!r} is not an S3 zone")
        return s3_client(self.s3)

    def key(self, rel: str) -> str:
        """The object key of ``rel`` in this zone's bucket."""
        rel = safe_relpath(rel) if rel else ""
        return "/".join(p for p in (self.prefix, rel) if p)

    def _dir_key(self, rel: str) -> str:
        k = self.key(rel)
        return f"{k}/" if k else ""

    def _objects(self, rel: str, recursive: bool = True) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._dir_key(rel)}
        if not recursive:
            kwargs["Delimiter"] = "/"
        for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
            yield from page.get("Contents") or ()

    def _rel_of(self, key: str) -> str:
        return key[len(self.prefix) + 1 :] if self.prefix else key

    # ------------------------------------------------------------------ reading
    def exists(self, rel: str) -> bool:
        if self.s3 is None:
            return self.fs.get_file_info(self.full(rel)).type != pafs.FileType.NotFound
        return self.head(rel) is not None or self.is_dir(rel)

    def is_dir(self, rel: str) -> bool:
        if self.s3 is None:
            return self.fs.get_file_info(self.full(rel)).type == pafs.FileType.Directory
        page = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._dir_key(rel), MaxKeys=1)
        return bool(page.get("KeyCount"))

    def head(self, rel: str) -> dict[str, Any] | None:
        """An object's size, ETag, encryption and user metadata (S3), or None when there is none."""
        if self.s3 is None:
            info = self.fs.get_file_info(self.full(rel))
            return {"size": info.size, "metadata": {}} if info.type == pafs.FileType.File else None
        try:
            h = self.client.head_object(Bucket=self.bucket, Key=self.key(rel))
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise
        return {
            "size": int(h.get("ContentLength") or 0),
            "etag": h.get("ETag"),
            "sse": h.get("ServerSideEncryption"),
            "metadata": dict(h.get("Metadata") or {}),
        }

    def list_files(self, rel: str, recursive: bool = False) -> list[FileInfo]:
        """Regular files under ``rel`` (sorted). Symlinks are reported, never followed."""
        if self.s3 is not None:
            return sorted(
                (
                    FileInfo(
                        self._rel_of(o["Key"]),
                        int(o.get("Size") or 0),
                        False,
                        o.get("ETag"),
                        mtime=o["LastModified"].timestamp() if o.get("LastModified") else None,
                    )
                    for o in self._objects(rel, recursive)
                    if not o["Key"].endswith("/")  # "folder" marker objects are not files
                ),
                key=lambda f: f.path,
            )
        if self.local:
            return self._list_local(rel, recursive)
        base = self.full(rel)
        if self.fs.get_file_info(base).type != pafs.FileType.Directory:
            return []
        out = []
        for info in self.fs.get_file_info(pafs.FileSelector(base, recursive=recursive)):
            if info.type == pafs.FileType.Directory:
                continue
            out.append(FileInfo(posixpath.relpath(info.path, self.root), int(info.size or 0)))
        return sorted(out, key=lambda f: f.path)

    def _list_local(self, rel: str, recursive: bool) -> list[FileInfo]:
        """Local listing with ``os.scandir``: symlinks (dangling ones too) are listed, never followed,
        and a symlinked folder anywhere on the way from the zone's root is refused."""
        path = self.root
        for part in safe_relpath(rel).split("/") if rel else []:
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
                    st = entry.stat(follow_symlinks=False)
                    regular = link or entry.is_file(follow_symlinks=False)
                    rel_path = os.path.relpath(entry.path, self.root).replace(os.sep, "/")
                    out.append(FileInfo(rel_path, 0 if link else st.st_size, link, regular=regular, mtime=st.st_mtime))
        return sorted(out, key=lambda f: f.path)

    def list_dirs(self, rel: str) -> list[str]:
        if self.s3 is not None:
            names: set[str] = set()
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._dir_key(rel), Delimiter="/"
            )
            for page in pages:
                for p in page.get("CommonPrefixes") or ():
                    names.add(p["Prefix"].rstrip("/").rsplit("/", 1)[-1])
            return sorted(names)
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

    def _get_body(self, rel: str, etag: str | None = None) -> Any:
        """A streaming S3 GET; with ``etag``, fails (PreconditionFailed) if the object changed since."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key(rel)}
        if etag:
            kwargs["IfMatch"] = etag
        return self.client.get_object(**kwargs)["Body"]

    def sha256(self, rel: str, etag: str | None = None) -> str:
        digest = hashlib.sha256()
        if self.s3 is not None:
            body = self._get_body(rel, etag)
            try:
                for chunk in body.iter_chunks(_CHUNK):
                    digest.update(chunk)
            finally:
                body.close()
            return digest.hexdigest()
        with self.fs.open_input_stream(self.full(rel), compression=None) as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def read_parquet(self, rel: str, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(self.full(rel), columns=columns, filesystem=self.fs)

    # ------------------------------------------------------------------ writing
    def _mkparent(self, rel: str) -> None:
        if self._private_local:
            self._private_dirs(posixpath.dirname(safe_relpath(rel)))
        elif self.local:
            self.fs.create_dir(posixpath.dirname(self.full(rel)), recursive=True)

    def _private_dirs(self, rel: str) -> None:
        """Create the root and each folder of ``rel`` below it that is missing, 0700 (mode given to
        mkdir: the umask can only take bits away; the parents of the root as the umask says)."""
        os.makedirs(os.path.dirname(self.root.rstrip("/")) or ".", exist_ok=True)
        path = self.root
        for part in [""] + (rel.split("/") if rel else []):
            path = os.path.join(path, part) if part else path
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                continue

    def _private_file(self, rel: str) -> None:
        """Create (or truncate) ``rel`` as an empty 0600 file, so that whatever then writes it keeps that mode."""
        fd = os.open(self.full(rel), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            os.fchmod(fd, 0o600)  # an existing file keeps its mode on open: set it
        finally:
            os.close(fd)

    def _tmp_name(self, rel: str) -> str:
        head, tail = posixpath.split(safe_relpath(rel))
        return posixpath.join(head, f".{tail}.{uuid.uuid4().hex[:12]}.tmp")

    def _extra(self, metadata: dict[str, str] | None) -> dict[str, Any]:
        assert self.s3 is not None
        extra: dict[str, Any] = dict(self.s3.sse_args())
        if metadata:
            extra["Metadata"] = {k: str(v) for k, v in metadata.items()}
        return extra

    def _upload_file(self, path: str, rel: str, metadata: dict[str, str] | None = None) -> None:
        from boto3.s3.transfer import TransferConfig

        self.client.upload_file(
            path,
            self.bucket,
            self.key(rel),
            ExtraArgs=self._extra(metadata),
            Config=TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, use_threads=False),
        )

    def write_bytes(self, rel: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        """Write a whole object at once: a reader sees the old one or the new one."""
        if self.s3 is not None:  # one PUT: appears whole
            self.client.put_object(Bucket=self.bucket, Key=self.key(rel), Body=data, **self._extra(metadata))
            return
        self._mkparent(rel)
        tmp = self._tmp_name(rel)
        if self._private_local:
            self._private_file(tmp)
        with self.fs.open_output_stream(self.full(tmp), compression=None) as f:
            f.write(data)
        self.fs.move(self.full(tmp), self.full(rel))

    def write_json(self, rel: str, doc: Any) -> None:
        self.write_bytes(rel, (json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n").encode())

    def parquet_writer(self, rel: str, schema: pa.Schema, **options: Any) -> pq.ParquetWriter:
        """A Parquet writer for ``rel`` (zstd; ``options`` are added to pyarrow's ParquetWriter's)."""
        options = {**PARQUET_OPTIONS, **options}
        if self.s3 is not None:
            return _S3ParquetWriter(self, safe_relpath(rel), schema, **options)
        self._mkparent(rel)
        if self._private_local:
            self._private_file(rel)
        return pq.ParquetWriter(self.full(rel), schema, filesystem=self.fs, **options)

    def copy_from(
        self,
        src: Zone,
        src_rel: str,
        rel: str,
        *,
        etag: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        """Copy a file from another zone (streamed, or server-side within one S3 account), atomically.

        ``etag`` (S3 sources): copy only the version that was listed; a changed object fails
        with PreconditionFailed instead of copying something that was never checksummed.
        """
        if self.s3 is not None:
            from boto3.s3.transfer import TransferConfig

            transfer = TransferConfig(
                multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_THRESHOLD, use_threads=False
            )
            extra = self._extra(metadata)
            if src.s3 is not None and src.s3.same_account(self.s3):
                if metadata:
                    extra["MetadataDirective"] = "REPLACE"
                if etag:
                    extra["CopySourceIfMatch"] = etag
                self.client.copy(
                    {"Bucket": src.bucket, "Key": src.key(src_rel)},
                    self.bucket,
                    self.key(rel),
                    ExtraArgs=extra,
                    Config=transfer,
                )
                return
            body = src._get_body(src_rel, etag) if src.s3 is not None else src.open(src_rel)
            try:
                self.client.upload_fileobj(body, self.bucket, self.key(rel), ExtraArgs=extra, Config=transfer)
            finally:
                body.close()
            return
        self._mkparent(rel)
        target = self._tmp_name(rel)
        if self._private_local:
            self._private_file(target)
        if src.local:  # local to local: the kernel copies (copy_file_range / sendfile), no pass through Python
            shutil.copyfile(src.full(src_rel), self.full(target))
            self.fs.move(self.full(target), self.full(rel))
            return
        fin = src._get_body(src_rel, etag) if src.s3 is not None else src.open(src_rel)
        try:
            with self.fs.open_output_stream(self.full(target), compression=None) as fout:
                while chunk := fin.read(_CHUNK):
                    fout.write(chunk)
        finally:
            fin.close()
        self.fs.move(self.full(target), self.full(rel))

    def move_from(self, src: Zone, src_rel: str, rel: str) -> None:
        """Move a file into this zone, replacing what is there in one step.

        Local to local is a rename(2). Anything involving S3 is a copy (one CopyObject or upload:
        the new object appears whole) followed by deleting the source.
        """
        if self.local and src.local:
            self._mkparent(rel)
            if self._private_local:
                os.chmod(src.full(src_rel), 0o600)
            self.fs.move(src.full(src_rel), self.full(rel))  # rename(2): atomic replace
            return
        self.copy_from(src, src_rel, rel)
        src.delete(src_rel)

    def delete(self, rel: str) -> None:
        if self.s3 is not None:
            self.client.delete_object(Bucket=self.bucket, Key=self.key(rel))  # idempotent
            return
        if self.exists(rel):
            self.fs.delete_file(self.full(rel))

    def delete_dir(self, rel: str) -> None:
        if self.s3 is not None:
            batch: list[dict[str, str]] = []
            for obj in list(self._objects(rel)):
                batch.append({"Key": obj["Key"]})
                if len(batch) == 1000:
                    self._delete_batch(batch)
                    batch = []
            if batch:
                self._delete_batch(batch)
            return
        if self.is_dir(rel):
            self.fs.delete_dir(self.full(rel))

    def _delete_batch(self, batch: list[dict[str, str]]) -> None:
        out = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        if out.get("Errors"):
            first = out["Errors"][0]
            raise OSError(f"cannot delete {len(out['Errors'])} object(s) in {self!r}: {first.get('Message')}")


# ------------------------------------------------------------------------------ permissions
#: Zones holding clear plates whose local folders must admit no group or other access.
PRIVATE_ZONES = ("raw", "restricted")


def loose_permissions(zones: Mapping[str, str], key_file: str | None = None) -> list[dict[str, str]]:
    """Local zone folders and the key file that other accounts could reach.

    ``zones`` maps a zone name to its location; only :data:`PRIVATE_ZONES` on a local disk are
    looked at (S3 zones are governed by the bucket's policies). Cheap: one ``lstat`` for each
    zone's root and each folder directly in it, one for the key file; nothing deeper. A finding
    is ``{"what", "path", "mode", "want"}``: folders should be 0700 (no group/other bit), the key
    file 0600.
    """
    found: list[dict[str, str]] = []

    def check(what: str, path: str, want: str) -> None:
        try:
            mode = stat.S_IMODE(os.lstat(path).st_mode)
        except FileNotFoundError:
            return
        if mode & 0o077:
            found.append({"what": what, "path": path, "mode": f"{mode:04o}", "want": want})

    for name in PRIVATE_ZONES:
        uri = (zones.get(name) or "").rstrip("/")
        if not uri or "://" in uri:
            continue
        check(f"zone {name}", uri, "0700")
        try:
            with os.scandir(uri) as entries:
                subdirs = sorted(e.path for e in entries if e.is_dir(follow_symlinks=False))
        except (FileNotFoundError, NotADirectoryError):
            subdirs = []
        for path in subdirs:
            check(f"zone {name}", path, "0700")
    if key_file:
        check("key file", key_file, "0600")
    return found
