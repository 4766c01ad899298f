"""ServeGen client mixtures.

:class:`ServeGenMix` generates requests from ServeGen's per-client windows (rate, CV, Gamma/Weibull gaps) and
length PMFs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from workbench import datasets
from workbench.config import require_positive
from workbench.errors import ConfigError, WorkloadError
from workbench.seeds import SeedLike, Streams
from workbench.traces.lengths import Pmf
from workbench.traces.schema import Trace, to_trace

SERVEGEN_WINDOW_S = 600.0
SERVEGEN_PDF_WINDOW_S = 21_600.0
SERVEGEN_SOURCE = (
    'Generated from ServeGen per-client data (alibaba/ServeGen), Apache-2.0. Cite: Xiang et al., "ServeGen: '
    'Workload Characterization and Generation of Large Language Model Serving in Production", arXiv:2505.09999.'
)


@dataclass(frozen=True, slots=True, eq=False)
class ServeGenMix:
    """Client-mixture generator from ServeGen per-client windows (rate, CV, Gamma/Weibull) and length PMFs.

    For every client and 600-s window with a non-zero rate, inter-arrival gaps are drawn from the fitted
    family (shape ``pat_arg1``) rescaled to the window's mean rate, as the ServeGen generator does. Lengths come
    from the client's input/output PMFs of the 6-hour window containing the request; clients whose PMFs are
    missing from the data (55 of 430) use the model's pooled PMF. Each client gets its own random stream.

    Attributes
    ----------
    windows
        Rows of ``servegen_client_windows.parquet`` for the chosen model and time span.
    pmfs
        Rows of ``servegen_client_length_pdfs.parquet`` (fields ``input_tokens``/``output_tokens``).
    model
        The ServeGen model name, stored as ``request_class``; clients go to ``client`` as ``model/id``.
    start_s, end_s
        Time span (seconds from 00:00 of day 1) that ``generate`` covers; arrivals are shifted to start at 0.
    rate_scale
        Multiplies every client's rate (e.g. 0.01 for a laptop-sized slice of a production mix); the mix
        shares, CVs and lengths are unchanged.
    """

    windows: pl.DataFrame
    pmfs: pl.DataFrame
    model: str
    start_s: float
    end_s: float
    name: str = "servegen"
    rate_scale: float = 1.0

    def __post_init__(self) -> None:
        require_positive("rate_scale", self.rate_scale)

    @classmethod
    def from_files(
        cls,
        windows_path: str | Path,
        pdfs_path: str | Path,
        *,
        model: str = "m-large",
        start_s: float = 72_000.0,
        end_s: float = 75_600.0,
        clients: list[int] | None = None,
        top_clients: int | None = None,
        rate_scale: float = 1.0,
    ) -> ServeGenMix:
        """Read the two ServeGen Parquet files lazily, keeping ``model`` and ``[start_s, end_s)``.

        ``top_clients`` keeps the clients with the most requests in the span; ``clients`` keeps given ids.
        The default span is 20:00-21:00 of day 1, as in the ServeGen README.
        """
        if end_s <= start_s:
            raise ConfigError(f"end_s must be > start_s, got {start_s}..{end_s}")
        win = (
            pl.scan_parquet(windows_path, glob=False)
            .filter(
                (pl.col("model") == model)
                & (pl.col("timestamp") >= start_s - SERVEGEN_WINDOW_S + 1)
                & (pl.col("timestamp") < end_s)
            )
            .collect()
        )
        if win.height == 0:
            raise WorkloadError(
                f"no ServeGen windows for model {model!r} in [{start_s}, {end_s})",
                file=str(windows_path),
                field="model",
            )
        if clients is not None:
            win = win.filter(pl.col("client_id").is_in(clients))
        if top_clients is not None:
            top = (
                win.group_by("client_id")
                .agg((pl.col("rate") * SERVEGEN_WINDOW_S).sum().alias("n"))
                .sort(["n", "client_id"], descending=[True, False])
                .head(top_clients)["client_id"]
            )
            win = win.filter(pl.col("client_id").is_in(top.implode()))
        lo = math.floor(start_s / SERVEGEN_PDF_WINDOW_S) * SERVEGEN_PDF_WINDOW_S
        pmfs = (
            pl.scan_parquet(pdfs_path, glob=False)
            .filter(
                (pl.col("model") == model)
                & pl.col("field").is_in(["input_tokens", "output_tokens"])
                & (pl.col("window_start_s") >= lo)
                & (pl.col("window_start_s") < end_s)
            )
            .collect()
        )
        return cls(
            win.sort(["client_id", "timestamp"]),
            pmfs,
            model,
            float(start_s),
            float(end_s),
            name=f"servegen_{model}",
            rate_scale=rate_scale,
        )

    @classmethod
    def from_datasets(cls, **kwargs) -> ServeGenMix:
        """:meth:`from_files` on the registered datasets ``servegen_windows`` and ``servegen_length_pdfs``."""
        return cls.from_files(
            datasets.fetch("servegen_windows"), datasets.fetch("servegen_length_pdfs"), **kwargs
        )

    @property
    def clients(self) -> list[int]:
        """The client ids of the windows, sorted."""
        return self.windows["client_id"].unique().sort().to_list()

    def _pmf(self, client: int | None, t: float) -> Pmf:
        w = math.floor(t / SERVEGEN_PDF_WINDOW_S) * SERVEGEN_PDF_WINDOW_S
        sel = self.pmfs.filter(pl.col("window_start_s") == w)
        own = sel.filter(pl.col("client_id") == client) if client is not None else sel.clear()
        if own.select(pl.col("field").n_unique()).item() < 2:
            own = sel
        if own.select(pl.col("field").n_unique()).item() < 2:
            own = self.pmfs
        if own.select(pl.col("field").n_unique()).item() < 2:
            raise WorkloadError(f"no ServeGen length PMFs for model {self.model!r}", field="probability")
        agg = own.group_by("field", "value").agg(pl.col("probability").sum()).sort("field", "value")
        inp, out = agg.filter(pl.col("field") == "input_tokens"), agg.filter(pl.col("field") == "output_tokens")
        return Pmf(
            inp["value"].to_numpy(),
            inp["probability"].to_numpy(),
            out["value"].to_numpy(),
            out["probability"].to_numpy(),
        )

    def generate(self, n: int | None = None, *, duration_s: float | None = None, seed: SeedLike = 0) -> Trace:
        """Generate the mix over ``duration_s`` (default: the whole span), or its first ``n`` requests.

        Parameters
        ----------
        n
            Keep only the first ``n`` requests.
        duration_s
            Seconds from ``start_s`` to generate (cut at ``end_s``).
        seed
            Seed from which one stream per client is spawned.

        Returns
        -------
        Trace
            Requests with ``client`` (``model/id``) and ``request_class`` (the model), arrivals from 0.
        """
        if duration_s is None:
            duration_s = self.end_s - self.start_s
        require_positive("duration_s", duration_s)
        end = min(self.end_s, self.start_s + duration_s)
        clients = self.clients
        streams = Streams(seed)  # one stream per client, keyed by its position in the client list
        rngs = {client: streams.rng(k) for k, client in enumerate(clients)}
        parts = []
        for (client,), rows in self.windows.group_by(["client_id"], maintain_order=True):
            rng = rngs[client]
            times = []
            for w in rows.filter(pl.col("rate") > 0).iter_rows(named=True):
                lo, hi = max(w["timestamp"], self.start_s), min(w["timestamp"] + SERVEGEN_WINDOW_S, end)
                if hi <= lo:
                    continue
                family = {"Gamma": "gamma", "Weibull": "weibull"}.get(w["pat_name"], "exponential")
                t = _servegen_gaps(rng, family, w["pat_arg1"], w["rate"] * self.rate_scale, hi - lo)
                times.append(lo + t)
            if not times:
                continue
            t = np.concatenate(times)
            prompt = np.empty(t.size, np.int32)
            output = np.empty(t.size, np.int32)
            win = np.floor(t / SERVEGEN_PDF_WINDOW_S)
            for wv in np.unique(win):
                m = win == wv
                prompt[m], output[m] = self._pmf(client, float(wv * SERVEGEN_PDF_WINDOW_S)).sample(
                    rng, int(m.sum())
                )
            parts.append(
                pl.DataFrame(
                    {
                        "arrival_s": t - self.start_s,
                        "prompt_tokens": prompt,
                        "output_tokens": output,
                        "client": f"{self.model}/{client}",
                    }
                )
            )
        if not parts:
            raise WorkloadError("ServeGen mix produced no requests in the chosen span", field="rate")
        df = pl.concat(parts).sort("arrival_s", "client", maintain_order=True)
        if n is not None:
            df = df.head(n)
        cols = {c: df[c].to_numpy() if c != "client" else df[c].to_list() for c in df.columns}
        cols["request_class"] = [self.model] * df.height
        return to_trace(cols, name=self.name, source=SERVEGEN_SOURCE, clients=len(parts))


def _servegen_gaps(rng, family: str, shape: float, rate: float, span: float) -> np.ndarray:
    """Arrival offsets in ``[0, span)`` with gaps from the fitted family, rescaled to mean ``1/rate``."""
    k = int(rate * span * 1.5) + 16
    if family == "gamma" and shape > 0:
        g = rng.gamma(shape, 1.0, k)
    elif family == "weibull" and shape > 0:
        g = rng.weibull(shape, k)
    else:
        g = rng.exponential(1.0, k)
    g = g / g.mean() / rate if g.mean() > 0 else np.full(k, 1.0 / rate)
    t = np.cumsum(g) - g[0] * rng.random()  # random phase: the window does not start with an arrival
    while t[-1] < span:  # rare: extend
        more = _servegen_gaps(rng, family, shape, rate, span - t[-1])
        t = np.concatenate([t, t[-1] + more + 1e-9])
    return t[(t >= 0) & (t < span)]
