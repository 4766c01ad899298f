"""LLM fleet workbench: traces, simulation, power, carbon, TCO and planning for LLM-serving fleets.

Layers (each imports only layers above it): ``traces`` -> ``datasets`` -> ``hardware`` -> ``analytic`` ->
``sim`` -> ``power`` -> ``validation`` -> ``carbon`` -> ``tco`` -> ``planning`` -> ``experiments`` -> ``viz`` ->
``widgets`` -> ``cli``.
"""

from workbench import _pure
from workbench.errors import ConfigError, HardwareError, WorkbenchError, WorkloadError

_pure.install()  # the simulator's core: its compiled build when fresh, else (or when asked) pure Python

__version__ = "0.1.0"
__all__ = ["ConfigError", "HardwareError", "WorkbenchError", "WorkloadError", "__version__"]
