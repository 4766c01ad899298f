"""Start-up stays light (issue 16: ``import workbench.sim`` + a 1,000-request run within a second): importing
the simulator loads no heavy optional dependency; those are imported where they are used."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("scipy", "sklearn", "altair", "pandas", "pyarrow", "joblib", "pooch", "ipywidgets", "matplotlib")


def test_importing_the_simulator_loads_no_heavy_optional_dependency():
    code = "import sys, workbench.sim.fleet; print(' '.join(m.split('.')[0] for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert "polars" in loaded and "numpy" in loaded  # the check sees real imports
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
