"""Build the simulator's compiled core (optional): Cython compiles the hot modules of ``workbench.sim`` with the
type declarations of their ``.pxd`` files. The ``.py`` files stay the pure-Python implementation (used when
the compiled modules are absent, or with ``WORKBENCH_PURE_PYTHON=1``; CI checks both give the same results).
Set ``WORKBENCH_NO_COMPILE=1`` to install without compiling."""

import os

from setuptools import setup

#: The modules of the compiled core (each with a .pxd beside it).
CORE = [
    "workbench/hardware/closed_forms.py",
    "workbench/sim/request.py",
    "workbench/sim/kvcache.py",
    "workbench/sim/engine.py",
    "workbench/sim/instance.py",
    "workbench/sim/simulation.py",
    "workbench/sim/controller.py",
]


def extensions():
    if os.environ.get("WORKBENCH_NO_COMPILE"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:  # no Cython: the pure-Python implementation is used
        return []
    exts = cythonize(
        CORE,
        compiler_directives={
            "language_level": 3,
            "annotation_typing": False,  # types come from the .pxd files only
            "boundscheck": False,
            "wraparound": True,
            "initializedcheck": False,
            "embedsignature": True,
        },
        quiet=True,
    )
    for ext in exts:
        ext.optional = True  # a failed compile leaves the pure-Python module in use
        ext.extra_compile_args = ["-O2", "-g0"]  # no debug info: a third of the build time
    return exts


setup(ext_modules=extensions())
