"""Error types a user can act on; the CLI prints them as one line (see offmarl.cli)."""


class DatasetError(ValueError):
    """A dataset file or array that is not valid; the message names the file and the field."""


class CheckpointError(ValueError):
    """A checkpoint or saved algorithm (``checkpoints/last.pt``, ``model/algo.pt``, ``algo.json``) that cannot be
    loaded: refused as unsafe, unreadable, or not what offmarl wrote; the message names the file."""


def one_line(message: object) -> str:
    """``message`` as one line (whitespace runs, newlines included, become one space): errors and warnings are
    printed as one line, and some messages (torch's, h5py's) span several."""
    return " ".join(str(message).split())
