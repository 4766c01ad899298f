"""Shared fixtures: the shared trace folder and the shipped data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_TRACES = Path(os.environ.get("WORKBENCH_DATA_DIR", REPO.parent / "shared" / "data" / "traces"))


@pytest.fixture(scope="session")
def shared_traces() -> Path:
    """Folder of the offline public traces (``WORKBENCH_DATA_DIR``); skips when absent."""
    if not (SHARED_TRACES / "AzureLLMInferenceTrace_code.csv").exists():
        pytest.skip("shared traces not available; set WORKBENCH_DATA_DIR")
    return SHARED_TRACES


@pytest.fixture(scope="session")
def shipped_data() -> Path:
    """The repository's ``data/`` folder."""
    return REPO / "data"
