"""The compiled simulator core (Cython, built by ``pip install -e .`` from the .py + .pxd files) gives exactly
the pure-Python core's results. The rest of the suite runs on whichever core is built."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import _core_scenarios
import polars as pl
import pytest

from workbench import _pure


def test_the_compiled_core_is_built_when_required():
    # make test asks for it (CI has gcc and Cython); a developer without a compiler can set it to 0
    if os.environ.get("WORKBENCH_REQUIRE_COMPILED", "0") not in ("", "0") and not _pure.requested():
        assert _pure.compiled(), (
            "the compiled simulator core was not built (pip install -e . compiles it with Cython and gcc); "
            "set WORKBENCH_REQUIRE_COMPILED=0 to test the pure-Python core alone"
        )


def test_pure_python_switch_loads_the_sources(tmp_path):
    code = "from workbench import _pure; import workbench.sim; print(_pure.compiled())"
    env = {**os.environ, _pure.ENV: "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.skipif(not _pure.compiled(), reason="the compiled core is not built: nothing to compare")
def test_compiled_and_pure_python_cores_give_identical_tables(tmp_path):
    script = Path(_core_scenarios.__file__)
    env = {**os.environ, _pure.ENV: "1"}
    subprocess.run([sys.executable, str(script), str(tmp_path)], env=env, check=True, timeout=600)
    compiled = _core_scenarios.scenarios()
    assert len(compiled) == 12
    for name, table in compiled.items():
        pure = pl.read_parquet(tmp_path / f"{name}.parquet")
        assert table.equals(pure), name  # every column, finish times to the last bit
        assert table["preemptions"].sum() > 0 or "fleet" in name or name in ("disaggregated", "autoscaled")
