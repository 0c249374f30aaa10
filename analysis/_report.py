"""What the analysis scripts share: printing a markdown table and, when asked, writing it to a file."""

from __future__ import annotations

from pathlib import Path


def emit(lines: list[str], out: Path | None) -> None:
    """Print ``lines`` as one text; with ``out``, also write it there."""
    text = "\n".join(lines)
    print(text)
    if out is not None:
        out.write_text(text + "\n")
