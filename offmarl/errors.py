"""Error types a user can act on; the CLI prints them as one line (see offmarl.cli)."""


class DatasetError(ValueError):
    """A dataset file or array that is not valid; the message names the file and the field."""
