"""What makes an explorer answer at the speed of thought.

Outputs are swapped in one step, slow work runs in the background, stale work is dropped, and the latest
results are kept for download.

- :func:`render` formats objects (tables, charts, text) into output records once, so that
  :meth:`Live.show` replaces an ``ipywidgets.Output``'s content atomically (no flicker, callable from any
  thread).
- :class:`Live` runs the quick answer (analytic) on the caller's thread and the slow one (a simulation) on
  one background worker. A newer input makes the pending run stale: a run that has not started is skipped, one
  already running stops at its next ``progress(done, total)`` call (which raises :class:`Stale`), and the
  result of one that reports no progress is dropped; only the newest request's answer is ever shown. A
  progress bar follows the slow run.
- :class:`Results` keeps the tables and charts that an explorer shows last, for the app's download links.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from workbench.errors import WorkbenchError

try:  # altair looks pandas up in sys.modules; a first import racing a worker thread leaves it half-initialised
    import pandas  # noqa: F401
except ImportError:  # pragma: no cover - pandas is optional
    pass


class Stale(Exception):
    """Raised by a slow run's ``progress`` callback once a newer input made the run stale.

    The run stops there (:class:`Live` catches it; code between a run and its progress calls must let it
    through).
    """


def render(*objects: Any) -> tuple[dict, ...]:
    """Return the output records (``display_data``) of ``objects``.

    A str becomes plain text, a chart its compiled Vega spec (:func:`workbench.viz.live_mimebundle`, drawn in
    the browser, offline); others use IPython's formatters (a polars table gives its HTML).
    """
    import altair as alt
    from IPython.core.formatters import format_display_data

    from workbench.viz import live_mimebundle

    records: list[dict[str, Any]] = []
    for obj in objects:
        if obj is None:
            continue
        if isinstance(obj, str):
            records.append({"output_type": "stream", "name": "stdout", "text": obj + "\n"})
            continue
        if isinstance(obj, alt.TopLevelMixin):
            records.append({"output_type": "display_data", "data": live_mimebundle(obj), "metadata": {}})
            continue
        data, metadata = format_display_data(obj)
        records.append({"output_type": "display_data", "data": data, "metadata": metadata})
    return tuple(records)


def error_html(message: str) -> str:
    """Return a one-line error for the page (HTML-escaped, red)."""
    import html

    return f'<div class="wb-error" style="color:#b00020"><b>error:</b> {html.escape(message)}</div>'


@dataclass
class Results:
    """The tables and charts an explorer shows last (what the app's download links offer)."""

    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    charts: dict[str, Any] = field(default_factory=dict)
    version: int = 0
    listeners: list[Callable[[Results], None]] = field(default_factory=list)

    def publish(
        self, tables: dict[str, pl.DataFrame] | None = None, charts: dict[str, Any] | None = None
    ) -> None:
        """Replace the kept tables and charts (``None`` keeps the current ones) and tell the listeners."""
        if tables is not None:
            self.tables = dict(tables)
        if charts is not None:
            self.charts = dict(charts)
        self.version += 1
        for listener in self.listeners:
            listener(self)


class Live:
    """Quick answer now, slow answer in the background, newest input wins.

    Parameters
    ----------
    out
        The ``ipywidgets.Output`` to fill.
    status
        An ``ipywidgets.HTML`` line for "simulating ...", timings and errors.
    bar
        Optional ``ipywidgets.FloatProgress`` following the slow run.
    """

    def __init__(self, out, status, bar=None) -> None:
        self.out, self.status, self.bar = out, status, bar
        self._lock = threading.Lock()
        self._generation = 0
        self._pending: tuple[int, Callable, str] | None = None
        self._worker: threading.Thread | None = None
        self.idle = threading.Event()
        self.idle.set()
        #: Seconds of the last quick and slow answers (for benchmarks/bench_widgets.py).
        self.timings: dict[str, float] = {}

    # ---------------------------------------------------------------------------------------------- display
    def show(self, *objects: Any) -> None:
        """Replace the output with ``objects`` in one step."""
        self.out.outputs = render(*objects)

    def say(self, html: str) -> None:
        """Set the status line to ``html``."""
        self.status.value = html

    # ------------------------------------------------------------------------------------------------ runs
    def update(
        self,
        quick: Callable[[], Iterable[Any]] | None,
        slow: Callable[[Callable[[float, float], None]], Iterable[Any]] | None = None,
        *,
        label: str = "simulating",
    ) -> None:
        """Show ``quick()``'s objects now, then ``slow(progress)``'s when it finishes.

        The slow answer is dropped when a newer :meth:`update` came first. Errors (:class:`WorkbenchError`)
        show as one line, never a traceback.
        """
        with self._lock:
            self._generation += 1
            generation = self._generation
        start = time.perf_counter()
        if quick is not None:
            try:
                self.show(*quick())
            except WorkbenchError as exc:
                self.show()
                self.say(error_html(str(exc)))
                return
        self.timings["quick_s"] = time.perf_counter() - start
        if slow is None:
            self.say("")
            return
        self.say(f"<i>{label} in the background; the answer above is analytic …</i>")
        if self.bar is not None:
            self.bar.value, self.bar.layout.visibility = 0.0, "visible"
        with self._lock:
            self._pending = (generation, slow, label)
            self.idle.clear()
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._drain, daemon=True, name="workbench-live")
                self._worker.start()

    def stale(self, generation: int) -> bool:
        """Return whether a newer :meth:`update` has come since the run of ``generation`` started."""
        return generation != self._generation

    def _drain(self) -> None:
        while True:
            with self._lock:
                if self._pending is None:
                    self._worker = None
                    self.idle.set()
                    return
                generation, slow, label = self._pending
                self._pending = None
            if self.stale(generation):  # a newer request is already queued
                continue
            self._run(generation, slow, label)

    def _run(self, generation: int, slow: Callable, label: str) -> None:
        start = time.perf_counter()

        def progress(done: float, total: float) -> None:
            if self.stale(generation):
                raise Stale
            if self.bar is not None and total:
                self.bar.value = min(1.0, done / total)

        try:
            objects = tuple(slow(progress))
        except Stale:
            self.timings["stopped"] = self.timings.get("stopped", 0) + 1
            return
        except WorkbenchError as exc:
            if not self.stale(generation):
                self.say(error_html(str(exc)))
            return
        except Exception as exc:  # never let the worker die silently: say what failed
            if not self.stale(generation):
                self.say(error_html(f"{type(exc).__name__}: {exc}"))
                traceback.print_exc()
            return
        finally:
            if self.bar is not None and not self.stale(generation):
                self.bar.layout.visibility = "hidden"
        if self.stale(generation):
            return
        self.show(*objects)
        self.timings["slow_s"] = time.perf_counter() - start
        self.say(f"<i>{label}: done in {self.timings['slow_s']:.1f} s</i>")

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until no run is pending or running (tests, benchmarks)."""
        return self.idle.wait(timeout)


def controls_box(controls: Iterable, columns: int = 2):
    """Return the controls laid out in ``columns`` columns."""
    import ipywidgets as w

    items = list(controls)
    per = -(-len(items) // columns)
    return w.HBox([w.VBox(items[i : i + per]) for i in range(0, len(items), per)])


def explorer_box(controls: dict, update: Callable[..., None], live: Live, *rows):
    """Wire an explorer: every control calls ``update`` on change, and ``update`` runs once now.

    Returns the box of ``rows`` (the controls' layout), the progress bar and status line, and the output,
    with ``.live`` and ``.controls`` for tests and benchmarks.
    """
    import ipywidgets as w

    for ctl in controls.values():
        ctl.observe(update, names="value")
    update()
    parts = [live.bar, live.status] if live.bar is not None else [live.status]
    box = w.VBox([*rows, w.HBox(parts), live.out])
    box.live, box.controls = live, controls
    return box


def live_parts():
    """Return a fresh (output, status line, hidden progress bar) triple for :class:`Live`."""
    import ipywidgets as w

    bar = w.FloatProgress(value=0.0, min=0.0, max=1.0, description="", layout=w.Layout(width="300px"))
    bar.layout.visibility = "hidden"
    return w.Output(), w.HTML(""), bar
