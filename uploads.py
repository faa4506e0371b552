"""An uploaded file as the multipart parser writes it: hashed while it is written, then
linked into its job's directory, so the upload is neither copied nor read a second time.

The parser's default is a temporary file elsewhere, copied into the job directory and read
again for its SHA-256: three passes over the bytes before the upload is answered (a 120 MB
upload: see BENCHMARKS.md). ``UploadFile`` is an anonymous file (``O_TMPFILE``) in the upload
directory: it has no name until ``link_to`` gives it one, so a worker killed mid-upload
leaves nothing behind, and closing an unlinked one frees it. Where ``O_TMPFILE`` is missing
(not Linux, or a filesystem without it) ``create`` returns None and the caller keeps the
parser's default.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


class UploadFile:
    """One upload's anonymous file in the upload directory, with its running SHA-256."""

    def __init__(self, fd: int) -> None:
        self._file = os.fdopen(fd, "w+b")
        self._digest = hashlib.sha256()

    @classmethod
    def create(cls, directory: str | Path) -> UploadFile | None:
        """Return a new anonymous file in ``directory``, or None where the OS cannot make one."""
        flag = getattr(os, "O_TMPFILE", None)
        if flag is None:
            return None
        try:
            # No O_EXCL: with it the file could never be linked to a name.
            return cls(os.open(directory, flag | os.O_RDWR, 0o600))
        except OSError:  # e.g. EOPNOTSUPP: the filesystem has no anonymous files
            return None

    def write(self, data: bytes) -> int:
        """Write and hash the next piece of the upload."""
        self._digest.update(data)
        return self._file.write(data)

    def read(self, size: int = -1) -> bytes:
        """Read from the current position."""
        return self._file.read(size)

    def readline(self, size: int = -1) -> bytes:
        """Read one line from the current position."""
        return self._file.readline(size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the position (the parser rewinds the file once it is written)."""
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        """Return the current position."""
        return self._file.tell()

    def fileno(self) -> int:
        """Return the file's descriptor."""
        return self._file.fileno()

    def sha256(self) -> str:
        """Return the SHA-256 of everything written, in hex."""
        return self._digest.hexdigest()

    def link_to(self, target: Path) -> bool:
        """Give the written file the name ``target`` (in the same filesystem); False when it
        cannot be linked, and the caller copies it instead."""
        self._file.flush()
        try:
            proc_fds = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return False
        try:
            # linkat(AT_SYMLINK_FOLLOW) on /proc/self/fd/N: the documented way to name an
            # O_TMPFILE file without privileges. A dir fd makes Python call linkat, not link.
            os.link(str(self.fileno()), target, src_dir_fd=proc_fds, follow_symlinks=True)
        except OSError:
            return False
        finally:
            os.close(proc_fds)
        return True

    def close(self) -> None:
        """Close the file; one never linked is freed."""
        self._file.close()

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._file.closed
