"""LLM fleet workbench: traces, simulation, power, carbon, TCO and planning for LLM-serving fleets.

Layers, from the decision down to the workload (a module imports only lower rows; ``|`` separates siblings that
do not import each other; ``lint-imports`` holds this in ``make lint`` and CI, see ``[tool.importlinter]`` in
pyproject.toml)::

    cli
    app
    demo | figures | widgets
    viz
    studies
    whatif
    planning
    sensitivity | validation | jobs
    tco
    carbon
    power
    sim
    analytic | presets
    hardware
    traces
    datasets | experiments | stats | provenance
    config | seeds | _progress
    _paths | _pure
    errors
"""

from workbench import _pure
from workbench.errors import ConfigError, HardwareError, WorkbenchError, WorkloadError

_pure.install()  # the simulator's core: its compiled build when fresh, else (or when asked) pure Python

__version__ = "0.1.0"
__all__ = ["ConfigError", "HardwareError", "WorkbenchError", "WorkloadError", "__version__"]
