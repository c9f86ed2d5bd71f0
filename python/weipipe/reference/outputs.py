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
        d = os.path.dirname(os.path.abspath(path))
        try:
            fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=d)
        except OSError as e:
            raise RefError(f"cannot write {path}: {e.strerror}") from None
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file ordinary permissions
        self.pending.append((tmp, path))
        return tmp

    def commit(self) -> None:
        for tmp, path in self.pending:
            os.replace(tmp, path)
        self.pending = []

    def discard(self) -> None:
        for tmp, _ in self.pending:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        self.pending = []
