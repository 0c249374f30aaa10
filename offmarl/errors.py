"""Error types a user can act on; the CLI prints them as one line (see offmarl.cli)."""

from __future__ import annotations

import errno
import os
from pathlib import Path


class DatasetError(ValueError):
    """A dataset file or array that is not valid; the message names the file and the field."""


class DiskFullError(OSError):
    """Writing ``path`` failed because its file system is full (ENOSPC) or the quota is used up (EDQUOT).

    Raised by the atomic writers of :mod:`offmarl.core.files` once the temporary file is removed, so whatever
    was at ``path`` is intact. An ``OSError`` with the original ``errno`` (code that handles OSError still
    does); the message is one line naming the file."""

    def __init__(self, path: str | Path, code: int = errno.ENOSPC):
        super().__init__(f"{path}: not written, the disk is full ({os.strerror(code)}); any previous version of "
                         "the file is intact -- free some space and run the command again")
        self.errno = code
        self.path = Path(path)


class CheckpointError(ValueError):
    """A checkpoint or saved algorithm (``checkpoints/last.pt``, ``model/algo.pt``, ``algo.json``) that cannot be
    loaded: refused as unsafe, unreadable, or not what offmarl wrote; the message names the file."""


def one_line(message: object) -> str:
    """``message`` as one line (whitespace runs, newlines included, become one space): errors and warnings are
    printed as one line, and some messages (torch's, h5py's) span several."""
    return " ".join(str(message).split())
