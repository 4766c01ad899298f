"""A seed paper's claim next to what the workbench finds: one row of notebook 07's table.

Every study module has a ``claim(...)`` that turns its replications into a :class:`Claim`: the claim as
published, our setup, our result with its 95 % confidence interval, and a verdict from :data:`VERDICTS`
with the reason. :func:`claims_table` stacks them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from workbench import stats
from workbench.errors import ConfigError

REPRODUCED = "reproduced"
UNDER_CONDITIONS = "reproduced under conditions"
NOT_REPRODUCED = "not reproduced"
NOT_TESTABLE = "not testable here"
#: The verdicts a claim can get.
VERDICTS = (REPRODUCED, UNDER_CONDITIONS, NOT_REPRODUCED, NOT_TESTABLE)


@dataclass(frozen=True)
class Claim:
    """One published claim and our finding.

    Attributes
    ----------
    paper
        Short name and arXiv id.
    published
        The claim in the paper's terms, with its number.
    setup
        What we ran (workload, fleet, replications).
    result
        Our headline finding with its 95 % CI (text).
    verdict
        One of :data:`VERDICTS`.
    reason
        Why that verdict (conditions, what differs, what is missing).
    estimate
        The headline estimate behind ``result`` (``None`` when nothing could be measured).
    """

    paper: str
    published: str
    setup: str
    result: str
    verdict: str
    reason: str
    estimate: stats.Estimate | None = None

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ConfigError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


def claims_table(claims: Sequence[Claim]) -> pl.DataFrame:
    """One row per claim: paper, published, setup, result, verdict, reason, estimate, ci_low, ci_high.

    Parameters
    ----------
    claims
        The claims, in the order of the rows.

    Returns
    -------
    polars.DataFrame
        The columns above (``estimate`` and its interval null where a claim has no estimate).
    """
    rows = []
    for c in claims:
        e = c.estimate
        rows.append(
            {
                "paper": c.paper,
                "published": c.published,
                "setup": c.setup,
                "result": c.result,
                "verdict": c.verdict,
                "reason": c.reason,
                "estimate": None if e is None else e.value,
                "ci_low": None if e is None else e.low,
                "ci_high": None if e is None else e.high,
            }
        )
    return pl.DataFrame(
        rows,
        schema={"paper": pl.Utf8, "published": pl.Utf8, "setup": pl.Utf8, "result": pl.Utf8, "verdict": pl.Utf8,
                "reason": pl.Utf8, "estimate": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64},
    )  # fmt: skip


def percent(e: stats.Estimate, digits: int = 0) -> str:
    """Return an estimate of a fraction as ``"-41 % [-47, -35]"``."""
    f = f"{{:+.{digits}f}}"
    return f"{f.format(100 * e.value)} % [{f.format(100 * e.low)}, {f.format(100 * e.high)}]"


def interval(e: stats.Estimate, unit: str = "", digits: int = 3) -> str:
    """Return an estimate as ``"3.42 s [3.1, 3.7]"`` (``digits`` significant digits)."""
    g = f"{{:.{digits}g}}"
    u = f" {unit}" if unit else ""
    return f"{g.format(e.value)}{u} [{g.format(e.low)}, {g.format(e.high)}]"


__all__ = [
    "NOT_REPRODUCED",
    "NOT_TESTABLE",
    "REPRODUCED",
    "UNDER_CONDITIONS",
    "VERDICTS",
    "Claim",
    "claims_table",
    "interval",
    "percent",
]
