"""Exception types. Every error raised for bad user input is a :class:`WorkbenchError`.

Messages name the offending field (and file and row where there is one), so a user sees one clear line
instead of a deep traceback.
"""

from __future__ import annotations


class WorkbenchError(ValueError):
    """Base class of all user-facing errors of the workbench."""


class WorkloadError(WorkbenchError):
    """A workload (trace file, table or generator input) is malformed.

    Parameters
    ----------
    message
        What is wrong.
    file, field, row
        Where, when known; they are added to the message.
    """

    def __init__(
        self, message: str, *, file: str | None = None, field: str | None = None, row: int | None = None
    ) -> None:
        self.file, self.field, self.row = file, field, row
        where = []
        if file is not None:
            where.append(f"file {file!s}")
        if field is not None:
            where.append(f"field {field!r}")
        if row is not None:
            where.append(f"row {row}")
        super().__init__(f"{message} ({', '.join(where)})" if where else message)


class DatasetError(WorkloadError):
    """A registered dataset is missing, unreachable or fails its checksum."""


class ConfigError(WorkbenchError):
    """A configuration value is invalid (names the field and the accepted range or choices)."""


class HardwareError(ConfigError):
    """Unknown GPU or model, or a model that does not fit in GPU memory."""


class InvariantError(WorkbenchError):
    """A simulation result breaks a rule every result must satisfy (see :mod:`workbench.sim.invariants`).

    It means a bug or an input the simulator should have refused; the message names the rule and the numbers.
    """
