"""The web app's page: one tab per explorer, a trace upload, download links; built per visitor by Voila.

Each tab is built the first time it is opened (so a visitor starts no simulation they did not ask for). An
uploaded trace (:mod:`workbench.app.upload`) joins the workload explorer's menu and becomes the workload of the
instance, routing and sizing tabs. Under each explorer, "Prepare downloads" turns what it shows into CSV /
Parquet tables and SVG / PNG charts (:mod:`workbench.app.downloads`).
"""

from __future__ import annotations

import html
import warnings
from collections.abc import Callable
from typing import Any

from workbench.errors import WorkbenchError

#: Tab titles, in order.
TABS = ("Workloads", "One instance", "Routing", "Fleet sizing", "Energy & TCO", "What-if")
#: Requests of the default workload (the shipped Azure code trace) that the routing tab replays.
ROUTING_REQUESTS = 1500


class WorkbenchApp:
    """The page's state: the current workload, each tab's explorer and kept results."""

    def __init__(self) -> None:
        import ipywidgets as w

        from workbench import traces
        from workbench.app.upload import EXTENSIONS, MAX_UPLOAD_BYTES
        from workbench.provenance import stamp
        from workbench.widgets.live import Results

        self.trace = traces.load("azure_code", allow_download=False)
        self.uploaded: dict[str, Any] = {}
        self.results = {name: Results() for name in TABS}
        self.explorers: dict[str, Any] = {}
        self.upload = w.FileUpload(
            accept=",".join(EXTENSIONS), multiple=False, description="Upload trace", icon=""
        )
        self.upload_status = w.HTML(
            f"<small>csv, jsonl, parquet … up to {MAX_UPLOAD_BYTES // 2**20} MiB; parsed in memory. "
            f"Current workload: <b>{html.escape(self.trace.name)}</b> ({len(self.trace):,} requests)</small>"
        )
        self.upload.observe(self._on_upload, names="value")
        self.tabs = w.Tab(children=[w.VBox() for _ in TABS])
        for i, title in enumerate(TABS):
            self.tabs.set_title(i, title)
        self.tabs.observe(self._on_tab, names="selected_index")
        header = w.HTML(
            "<h2 style='margin:0.2em 0'>LLM fleet workbench</h2>"
            f"<small style='color:#555'>{html.escape(stamp())}</small>"
        )
        self.box = w.VBox([header, w.HBox([self.upload, self.upload_status]), self.tabs])
        self.box.add_class("wb-app")
        self._build_tab(0)

    # ---------------------------------------------------------------------------------------------- tabs
    def _builders(self) -> dict[str, Callable[[Any], Any]]:
        from workbench.widgets.energy import tco_explorer
        from workbench.widgets.fleet import routing_explorer
        from workbench.widgets.instance import instance_explorer
        from workbench.widgets.planning import fleet_sizing_explorer
        from workbench.widgets.traces import trace_explorer

        def routing(results):
            trace = self.trace
            return routing_explorer(trace.with_requests(trace.requests.head(ROUTING_REQUESTS)), instances=4,
                                    results=results)  # fmt: skip

        return {
            "Workloads": lambda results: trace_explorer(results=results),
            "One instance": lambda results: instance_explorer(
                self.trace.requests.select("prompt_tokens", "output_tokens"), requests=1000, results=results
            ),
            "Routing": routing,
            "Fleet sizing": lambda results: fleet_sizing_explorer(results=results, extra=self.uploaded),
            "Energy & TCO": lambda results: tco_explorer(results=results),
            "What-if": self._whatif,
        }

    def _whatif(self, results):
        from workbench.planning import SLO, workload
        from workbench.tco import CostBasis
        from workbench.whatif import capacity_at_slo
        from workbench.widgets.whatif import modes_explorer

        slo = SLO(ttft_s=2.0, tpot_s=0.1)
        wl = workload(self.trace, 20.0)
        cap = capacity_at_slo(wl, slo, ["H100", "A100", "L40S", "L4", "H200"], instances=4)
        return modes_explorer(cap, CostBasis(utilisation=0.6, pue=1.2, lifetime_years=5.0), results=results)

    def _build_tab(self, index: int) -> None:
        import ipywidgets as w

        from workbench.app.downloads import links_html

        title = TABS[index]
        results = self.results[title]
        try:
            explorer = self._builders()[title](results)
        except WorkbenchError as exc:
            from workbench.widgets.live import error_html

            self.tabs.children[index].children = [w.HTML(error_html(str(exc)))]
            return
        links = w.HTML("")
        button = w.Button(description="Prepare downloads", layout=w.Layout(width="180px"))

        def prepare(_=None) -> None:
            links.value = "<i>preparing …</i>"
            links.value = links_html(results.tables, results.charts)

        def stale(_results) -> None:
            links.value = ""

        button.on_click(prepare)
        results.listeners[:] = [stale]
        self.explorers[title] = explorer
        downloads = w.HBox([button, links], layout=w.Layout(flex_flow="row wrap"))
        downloads.add_class("wb-downloads")
        self.tabs.children[index].children = [explorer, downloads]

    def _on_tab(self, change) -> None:
        index = change["new"]
        if index is not None and TABS[index] not in self.explorers:
            self._build_tab(index)

    # -------------------------------------------------------------------------------------------- upload
    def _on_upload(self, change) -> None:
        from workbench.app.upload import parse_upload
        from workbench.widgets.live import error_html

        files = change["new"]
        if not files:
            return
        item = files[0]
        name, content = item["name"], bytes(item["content"])
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                trace = parse_upload(name, content)
        except WorkbenchError as exc:
            self.upload_status.value = error_html(str(exc))
            return
        finally:
            self.upload.value = ()  # forget the bytes
        notes = "".join(f"<br><small>note: {html.escape(str(w.message))}</small>" for w in caught)
        self.trace = trace
        label = f"upload: {trace.name}"
        self.uploaded[label] = trace
        span = f", {trace.duration_s:,.0f} s" if trace.has_arrivals else " (no arrival times)"
        self.upload_status.value = (
            f"<span class='wb-upload-ok'>uploaded <b>{html.escape(trace.name)}</b>: {len(trace):,} requests"
            f"{span}; now the workload of every tab</span>{notes}"
        )
        workloads = self.explorers.get("Workloads")
        if workloads is not None:
            workloads.add_source(label, trace)
        for index, title in enumerate(TABS):  # rebuild the tabs that use the workload, when open
            if title in ("One instance", "Routing", "Fleet sizing", "What-if") and title in self.explorers:
                del self.explorers[title]
                if self.tabs.selected_index == index:
                    self._build_tab(index)
                else:
                    self.tabs.children[index].children = []


def build():
    """Return the app's root widget (what the Voila notebook displays)."""
    return WorkbenchApp().box
