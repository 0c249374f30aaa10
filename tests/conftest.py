"""Suite-wide isolation: tests never write into the user's offmarl cache or open plot windows."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_offmarl_home(tmp_path_factory: pytest.TempPathFactory):
    """Point ``$OFFMARL_HOME`` (recipe cache, jax compile cache) at a temporary directory for the session."""
    previous = os.environ.get("OFFMARL_HOME")
    os.environ["OFFMARL_HOME"] = str(tmp_path_factory.mktemp("offmarl_home"))
    os.environ.setdefault("MPLBACKEND", "Agg")
    yield
    if previous is None:
        os.environ.pop("OFFMARL_HOME", None)
    else:
        os.environ["OFFMARL_HOME"] = previous
