"""All-or-nothing output files: written to temporaries next to their targets, renamed at the end."""
from __future__ import annotations

import os
import tempfile

from .errors import RefError


class Outputs:
    """Files written to temporaries next to their targets, renamed only by commit()."""

    def __init__(self):
        self.pending: list[tuple[str, str]] = []

    def reserve(self, path: str) -> str:
        if os.path.isdir(path):
            raise RefError(f"cannot write {path}: it is a directory")
        d = os.path.dirname(os.path.abspath(path))
        try:
            fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=d)
        except OSError as e:
            raise RefError(f"cannot write {path}: {e.strerror}") from None
        os.close(fd)
        self.pending.append((tmp, path))
        return tmp

    def commit(self) -> None:
        umask = os.umask(0)
        os.umask(umask)
        for tmp, path in self.pending:
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp (and writers that recreate the file) leave 0600
            os.replace(tmp, path)
        self.pending = []

    def discard(self) -> None:
        for tmp, _ in self.pending:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        self.pending = []
