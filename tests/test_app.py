"""The web app's parts without a browser: uploads, download links, the page, presets, provenance, the offline
chart renderer and theme."""

from __future__ import annotations

import base64
import datetime
import io
from pathlib import Path

import altair as alt
import polars as pl
import pytest

from workbench import presets, provenance
from workbench.app import command
from workbench.app.downloads import links_html, table_bytes
from workbench.app.upload import display_name, parse_upload
from workbench.errors import ConfigError, WorkloadError

DATA = Path(__file__).parent / "data"
SMALL = DATA / "upload" / "small trace [1].csv"


def test_upload_parses_from_memory_under_a_safe_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    trace = parse_upload("../../etc/small trace [1].csv", SMALL.read_bytes())
    assert trace.name == "small_trace_1" and len(trace) == 60 and trace.meta["format"] == "canonical"
    assert list(tmp_path.iterdir()) == []  # nothing written where the app runs
    assert display_name("C:\\x\\run[2].jsonl") == "run_2" and display_name("...csv") == "upload"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("big.csv", b"x" * 2048, "upload is 2.0 KiB; the limit is 1.0 KiB"),
        ("empty.csv", b"", "upload is empty"),
        ("trace.exe", b"a,b\n1,2\n", "unsupported file type '.exe'"),
        ("trace.parquet", b"not parquet", "file trace.parquet"),
        ("neg.csv", (DATA / "bad" / "negative_tokens.csv").read_bytes(), "got -5 (file neg.csv"),
    ],
)
def test_bad_uploads_give_one_message_naming_the_upload(name, content, message):
    with pytest.raises(WorkloadError) as info:
        parse_upload(name, content, limit=1024)
    text = str(info.value)
    assert message in text and "workbench-upload-" not in text and "/dev/shm" not in text


def test_download_links_carry_the_tables_and_charts():
    table = pl.DataFrame({"a": [1, 2], "hashes": [[1], [2]]})
    chart = alt.Chart(pl.DataFrame({"x": [1, 2]})).mark_point().encode(x="x:Q").properties(title="T1")
    html = links_html({"t": table}, {"c": chart})
    assert html.count('class="wb-download"') == 4
    assert table_bytes(table, "csv").decode().splitlines() == ["a", "1", "2"]  # nested column left out of CSV
    assert pl.read_parquet(io.BytesIO(table_bytes(table, "parquet"))).equals(table)
    svg = base64.b64decode(html.split('download="c.svg" href="data:image/svg+xml;base64,')[1].split('"')[0])
    assert b"T1" in svg
    assert links_html({}, {}) == "<i>nothing to download yet</i>"


def _file(name: str, content: bytes) -> dict:
    """What the browser's FileUpload sends."""
    return {"name": name, "type": "text/csv", "size": len(content), "content": memoryview(content),
            "last_modified": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)}  # fmt: skip


def test_app_page_builds_its_tabs_lazily_and_takes_uploads():
    from workbench.app.ui import TABS, WorkbenchApp

    app = WorkbenchApp()
    assert [app.tabs.get_title(i) for i in range(len(TABS))] == list(TABS)
    assert list(app.explorers) == ["Workloads"]  # only the open tab is built
    app.tabs.selected_index = TABS.index("Energy & TCO")
    tco = app.explorers["Energy & TCO"]
    tco.controls["n_gpus"].value = 128
    assert app.results["Energy & TCO"].tables["tco"]["TCO (USD)"][0] > 0
    app.upload.value = (_file("bad.csv", b"a,b\n1,2\n"),)
    assert "error:" in app.upload_status.value and app.trace.name == "azure_code"
    app.upload.value = (_file("small trace [1].csv", SMALL.read_bytes()),)
    assert "uploaded <b>small_trace_1</b>: 60 requests" in app.upload_status.value
    assert app.trace.name == "small_trace_1" and app.upload.value == ()
    assert "upload: small_trace_1" in app.explorers["Workloads"].controls["workload"].options
    app.explorers["Workloads"].live.wait(60)


def test_app_command_is_local_by_default():
    cmd = command(8123)
    assert "--Voila.ip=127.0.0.1" in cmd and "--port=8123" in cmd and cmd[-1] == "--theme=light"
    assert "--Voila.ip=0.0.0.0" in command(8123, expose=True)
    with pytest.raises(ConfigError):
        command(0)


def test_presets_are_one_registry():
    assert {"poisson", "azure_code", "chat_poisson", "chat_bursty"} <= set(presets.available())
    a, b = presets.generate("poisson", seed=1), presets.generate("poisson", seed=1)
    assert a.requests.equals(b.requests) and len(a) == 4000
    assert len(presets.generate("chat_bursty", n=50)) == 50
    with pytest.raises(ConfigError, match="unknown workload preset 'nope'"):
        presets.get("nope")
    with pytest.raises(ConfigError, match="already registered"):
        presets.register(presets.get("poisson"))


def test_provenance_names_version_lock_and_seed():
    line = provenance.stamp(seed=7)
    assert line.startswith("workbench ") and "seed 7" in line
    lock = provenance.lock_hash()
    assert len(lock) == 12 and lock in line
    assert provenance.LOCK_FILE.read_text().startswith("# Pinned versions")


def test_charts_render_offline_with_the_theme():
    import workbench.viz as viz

    assert alt.renderers.active == "workbench" and alt.theme.active == "workbench"
    chart = (
        alt.Chart(pl.DataFrame({"x": [1.0, 2.0], "k": ["a", "b"]})).mark_point().encode(x="x:Q", color="k:N")
    )
    bundle = viz.offline_mimebundle(chart.to_dict())
    assert set(bundle) == {"application/vnd.vegalite.v6+json", "image/svg+xml", "text/plain"}
    svg = bundle["image/svg+xml"]
    assert svg.lstrip().startswith("<svg") and "<script" not in svg and "cdn" not in svg
    spec = chart.to_dict()
    assert spec["config"]["range"]["category"] == list(viz.PALETTE) and spec["config"]["font"] == viz.FONT
    live = viz.live_mimebundle(chart)
    assert live["application/vnd.vegalite.v5+json"]["usermeta"]["embedOptions"]["renderer"] == "svg"


def test_stored_chart_outputs_do_not_depend_on_the_last_bits_of_their_data():
    """Two charts whose data differ only below ten significant digits (another CPU's SIMD sums) store the same
    output: values rounded, and datasets named after the rounded values, not altair's full-precision hash."""
    import altair as alt

    from workbench import viz

    def bundle(y: float) -> dict:
        chart = alt.Chart(pl.DataFrame({"x": [1.0, 2.0], "y": [0.1, y]})).mark_line().encode(x="x:Q", y="y:Q")
        return viz.offline_mimebundle(chart.to_dict())["application/vnd.vegalite.v6+json"]

    a, b, c = bundle(482.9020171789066), bundle(482.90201717890663), bundle(482.91)
    def names(y: float) -> list[str]:
        return list(alt.Chart(pl.DataFrame({"y": [y]})).mark_point().encode(y="y:Q").to_dict()["datasets"])

    assert names(482.9020171789066) != names(482.90201717890663)  # altair's names differ ...
    assert a == b  # ... the stored outputs do not
    assert a != c and list(a["datasets"]) != list(c["datasets"])  # a real change still shows
    (name,) = a["datasets"]
    assert a["data"] == {"name": name} and a["datasets"][name][1]["y"] == 482.9020172


def test_every_explorer_chart_compiles_with_the_browsers_vega_lite():
    """Live charts are compiled in the browser by the Vega-Lite that Voila/JupyterLab bundle (5.21)."""
    import json

    import vl_convert as vlc

    from workbench.planning import SLO, workload
    from workbench.planning.workflow import plan
    from workbench.viz import BROWSER_VEGALITE, live_mimebundle
    from workbench.viz.planning import plan_overview
    from workbench.whatif import capacity_at_slo
    from workbench.widgets import energy, fleet, instance, traces, whatif

    small = presets.generate("chat_poisson", n=300)
    lengths = small.requests.select("prompt_tokens", "output_tokens")
    charts = list(traces.explore(small, twin=True).charts.values())
    charts += list(instance.explore(lengths, requests=200)[1:])
    charts += list(fleet.explore(small, ("jsq",), instances=2)[:2])
    p = plan(presets.generate("poisson", n=600), 10.0, 1.0, 0.05, gpus=("H100",), topologies=("monolithic",),
             check=0)  # fmt: skip
    charts.append(plan_overview(p.result.table, p.tradeoffs))
    charts.append(energy.explore()[0])
    cap = capacity_at_slo(workload(small, 20.0), SLO(2.0, 0.1), ["H100", "A100"], instances=2)
    charts.append(whatif.explore_modes(cap)[0])
    assert len(charts) == 11
    for chart in charts:
        spec = live_mimebundle(chart)["application/vnd.vegalite.v5+json"]
        vega = vlc.vegalite_to_vega(json.dumps(spec), vl_version=BROWSER_VEGALITE)
        assert vega["marks"] or vega.get("signals"), spec.get("title")


def test_sizing_explorer_offers_the_performance_model_and_answers_at_once(tmp_path, monkeypatch):
    """The sizing explorer's menu lists the roofline and the saved calibrations; a calibration sizes its own
    GPU (the ranked table and answer change); a change only the simulation depends on reuses the analytic plan;
    a bad name fails when the explorer is built."""
    from workbench.errors import DatasetError
    from workbench.hardware.calibrated import CalibratedModel, Domain
    from workbench.planning.workflow import plan
    from workbench.widgets.live import Results
    from workbench.widgets.planning import fleet_sizing_explorer

    monkeypatch.setenv("WORKBENCH_CALIBRATIONS", str(tmp_path))
    slow = {"mfu": 0.2, "mbu": 0.3, "overhead_s": 0.01}
    CalibratedModel("slow-h100", "H100-SXM", "Llama-3.1-8B", 1, slow, Domain(256, 16384, 131072)).save()
    results = Results()
    box = fleet_sizing_explorer(results=results)
    c = box.controls
    assert c["perf"].options == ("roofline", "calibrated:slow-h100") and c["perf"].value == "roofline"
    c["check"].value = 0
    c["gpus"].value = ("H100-SXM",)
    assert box.live.wait(60)
    roofline = results.tables["ranked"]
    answer = box.live.out.outputs[0]["data"]["text/html"]
    assert "tex2jax_ignore" in answer and "/h, $" in answer  # dollars are text, not TeX delimiters
    c["perf"].value = "calibrated:slow-h100"
    assert box.live.wait(60) and "error" not in box.live.status.value
    calibrated = results.tables["ranked"]
    assert calibrated["instances"][0] > roofline["instances"][0]  # a slower server needs more instances
    assert results.tables["tradeoffs"].height > 0  # the trade-offs followed in the background
    import workbench.widgets.planning as module

    calls = []
    monkeypatch.setattr(module, "plan", lambda *a, **k: calls.append(k) or plan(*a, **k))
    c["check"].value = 1  # the analytic answer is reused, the check runs in the background
    assert box.live.wait(120) and results.tables["ranked"]["sim_instances"].is_not_null().any()
    assert [(k["check"], k["tradeoffs"]) for k in calls] == [(1, True)]  # no second analytic solve
    assert "tradeoffs" in results.tables and "error" not in box.live.status.value
    with pytest.raises(DatasetError, match="no calibrated model 'nope'"):
        fleet_sizing_explorer(perf="calibrated:nope")


def test_live_stops_a_stale_run_at_its_next_progress_call():
    """A newer input stops the running slow answer at its next progress call; only the newest is shown."""
    import threading

    import ipywidgets as w

    from workbench.widgets.live import Live

    live = Live(w.Output(), w.HTML(""), w.FloatProgress())
    started, go, steps = threading.Event(), threading.Event(), []

    def first(progress):
        started.set()
        go.wait(10)
        for k in range(5):
            progress(k + 1, 5)  # raises Stale at once: the run is stale
            steps.append(k)
        return ["first"]

    live.update(lambda: ["quick 1"], first)
    assert started.wait(10)
    live.update(lambda: ["quick 2"], lambda progress: ["second"])
    go.set()
    assert live.wait(10)
    assert steps == [] and live.timings["stopped"] == 1
    assert live.out.outputs[0]["text"] == "second\n"


def test_sizing_overview_is_the_fleet_sizing_recipe():
    """One recipe for the fleet_sizing figure and notebook 05 (sizing bars over the check), and the explorer's
    plan_overview is it plus the Pareto front."""
    from workbench.planning.workflow import plan
    from workbench.viz.planning import plan_overview, sizing_overview

    p = plan(presets.get("poisson").workload(), 10.0, 1.0, 0.05, gpus=["H100", "A100"], check=0)
    assert len(sizing_overview(p.result.table, top=4).to_dict()["vconcat"]) == 1  # nothing checked
    checked = p.result.table.with_columns(sim_instances=pl.col("instances") + 1)
    spec = sizing_overview(checked, top=4).to_dict()
    assert len(spec["vconcat"]) == 2 and spec["resolve"]["scale"]["color"] == "independent"
    assert spec["vconcat"][1]["title"] == "Instances: analytic screen vs simulation"
    assert len(plan_overview(checked, p.tradeoffs, top=4).to_dict()["vconcat"]) == 3
