"""When to show progress bars: one rule for sweeps, fleet sizing checks and long simulations.

It sits below every other module of the package (it imports nothing of it), so the simulator and the layers
above it share the same answer.
"""

from __future__ import annotations

import os
import sys

__all__ = ["interactive", "progress_enabled"]


def _in_ipython_kernel() -> bool:
    """Whether this process is a Jupyter/IPython kernel (a notebook), where stderr is not a terminal."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # an IPython too old or half-imported
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


def _stderr_is_terminal() -> bool:
    try:
        return bool(sys.stderr is not None and sys.stderr.isatty())
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def interactive() -> bool:
    """Whether a person is likely watching: a notebook kernel, or a terminal on stderr outside pytest.

    In a Jupyter/IPython kernel (stderr is no terminal there) this is ``True`` however the notebook runs
    (interactively, ``nbconvert --execute`` or nbval), so a notebook's stored outputs do not depend on how it
    was executed. Elsewhere it needs a terminal on stderr and is ``False`` under pytest and in redirected logs.
    """
    if _in_ipython_kernel():
        return True
    if "PYTEST_CURRENT_TEST" in os.environ:
        return False
    return _stderr_is_terminal()


def progress_enabled(progress: bool | None) -> bool:
    """Resolve a ``progress=`` argument: ``True``/``False`` as given, ``None`` as :func:`interactive`.

    Used by :func:`workbench.experiments.sweep`, the simulation check of :func:`workbench.planning.size_fleet`,
    :func:`workbench.planning.compare.pool_split_study`; the simulator asks :func:`interactive` itself, for
    traces of at least ``PROGRESS_MIN_REQUESTS`` rows.

    Parameters
    ----------
    progress
        ``True``, ``False`` or ``None`` (decide by the environment).

    Returns
    -------
    bool
        Whether to show a progress bar.
    """
    if progress is not None:
        return bool(progress)
    return interactive()
