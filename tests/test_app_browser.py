"""The web app in a real browser: Debian's headless Chromium driven by Selenium against `workbench app`.

Starts the app on a free localhost port, opens the page, moves a slider and changes a dropdown of the TCO
explorer (the chart's title and the table's numbers must change), prepares the downloads, uploads a small trace
(with an odd file name) and a malformed one (its error shows in the page and the app keeps answering), and
saves screenshots in ``out/browser/`` (or ``$WORKBENCH_SCREENSHOTS``).

Needs ``/usr/bin/chromium`` and ``/usr/bin/chromedriver`` (``apt-get install chromium chromium-driver``;
``.ci/run`` installs them). Without them the test is skipped locally and FAILS under CI (``CI`` set).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium")
DRIVER = os.environ.get("WORKBENCH_CHROMEDRIVER", "/usr/bin/chromedriver")
DATA = Path(__file__).parent / "data"
SHOTS = Path(os.environ.get("WORKBENCH_SCREENSHOTS", Path(__file__).parents[1] / "out" / "browser"))
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--window-size=1400,1100")  # fmt: skip
START_TIMEOUT_S = 150.0
STEP_TIMEOUT_S = 60.0

pytestmark = pytest.mark.slow


def _have_browser() -> bool:
    return Path(CHROMIUM).exists() and Path(DRIVER).exists()


if not _have_browser():
    if os.environ.get("CI"):
        raise RuntimeError(f"browser test needs {CHROMIUM} and {DRIVER} under CI (apt-get install chromium "
                           "chromium-driver)")  # fmt: skip
    pytest.skip(f"no {CHROMIUM} / {DRIVER} (apt-get install chromium chromium-driver)", allow_module_level=True)

from selenium import webdriver  # noqa: E402 - after the browser check
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("app") / "voila.log"
    env = {**os.environ, "WORKBENCH_APP_MAX_UPLOAD_MB": "1"}
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "app", "--port", str(port)],
                                stdout=fh, stderr=subprocess.STDOUT, env=env)  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _listening(port):
            assert proc.poll() is None, f"the app exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"the app did not listen within {START_TIMEOUT_S} s"
            time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        text = log.read_text()
        assert "Traceback" not in text, text  # nothing reached the server's log as an exception


@pytest.fixture(scope="module")
def browser():
    options = Options()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(START_TIMEOUT_S)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def _wait(driver, condition, what: str, timeout: float = STEP_TIMEOUT_S):
    try:
        wait = WebDriverWait(
            driver, timeout, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,)
        )
        return wait.until(lambda d: condition(d))
    except Exception:
        driver.save_screenshot(str(SHOTS / f"failed-{re.sub(r'[^a-z]+', '-', what.lower())}.png"))
        raise AssertionError(f"timed out waiting for {what}") from None


def _panel(driver):
    """The visible tab panel."""
    panels = [p for p in driver.find_elements(By.CSS_SELECTOR, ".wb-app .lm-TabPanel-stackedPanel, "
                                                             ".wb-app .widget-tab-contents > *")
              if p.is_displayed()]  # fmt: skip
    return panels[0] if panels else driver.find_element(By.CSS_SELECTOR, ".wb-app")


def _texts(element, selector: str) -> list[str]:
    """Texts of the matches; an output re-rendered while it is read is read again."""
    for _ in range(5):
        try:
            return [e.get_attribute("textContent") for e in element.find_elements(By.CSS_SELECTOR, selector)]
        except StaleElementReferenceException:
            time.sleep(0.1)
    return []


def _chart_title(driver) -> str:
    titles = _texts(_panel(driver), ".vega-embed svg .role-title-text, .vega-embed svg .role-title text")
    return titles[0] if titles else ""


def _table_cells(driver) -> list[str]:
    return _texts(_panel(driver), ".jp-RenderedHTMLCommon table td, .widget-output table td")


def _control(driver, label: str, kind: str):
    """The control of ``kind`` (css) whose description is ``label``, in the visible panel."""
    for widget in _panel(driver).find_elements(By.CSS_SELECTOR, kind):
        labels = _texts(widget, ".widget-label")
        if labels and labels[0].strip() == label:
            return widget
    raise AssertionError(f"no control {label!r}")


def _open_tab(driver, title: str) -> None:
    tabs = driver.find_elements(By.CSS_SELECTOR, ".wb-app .lm-TabBar-tab")
    tab = next(t for t in tabs if t.get_attribute("textContent").strip() == title)
    tab.click()


#: The upload widget opens the file dialog by clicking an <input type=file> it keeps out of the page; this makes
#: that click put the input into the page instead, where the driver can choose a file as a user would.
_EXPOSE_FILE_INPUT = """
if (!window.__wbFileHook) {
  window.__wbFileHook = true;
  const click = HTMLInputElement.prototype.click;
  HTMLInputElement.prototype.click = function () {
    if (this.type !== "file") { return click.call(this); }
    if (!this.isConnected) { document.body.appendChild(this); }
    this.classList.add("wb-test-file");
  };
}
"""


def _choose_file(driver, path: Path) -> None:
    """Click "Upload trace" and choose ``path`` in the (page-hosted) file input."""
    driver.execute_script(_EXPOSE_FILE_INPUT)
    for old in driver.find_elements(By.CSS_SELECTOR, "input.wb-test-file"):
        driver.execute_script("arguments[0].classList.remove('wb-test-file')", old)
    driver.find_element(By.CSS_SELECTOR, ".wb-app .widget-upload").click()
    field = _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "input.wb-test-file"), "the file input")[0]
    field.send_keys(str(path))


def test_app_in_a_real_browser(app_url, browser):
    d = browser
    start = time.monotonic()
    d.get(app_url)
    _wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".wb-app .lm-TabBar-tab"), "the app's tabs",
          START_TIMEOUT_S)  # fmt: skip
    tabs = [t.get_attribute("textContent").strip() for t in d.find_elements(By.CSS_SELECTOR, ".lm-TabBar-tab")]
    assert tabs == ["Workloads", "One instance", "Routing", "Fleet sizing", "Energy & TCO", "What-if"]
    # the workload tab answers first: the summary table and charts of the default preset
    _wait(d, lambda d: _chart_title(d), "the workload charts")
    d.save_screenshot(str(SHOTS / "01-workloads.png"))

    # --- Energy & TCO: a slider and a dropdown redraw the chart and the table
    _open_tab(d, "Energy & TCO")
    _wait(d, lambda d: _chart_title(d).startswith("64 x H100-SXM at us-avg"), "the TCO chart")
    before = _table_cells(d)
    assert before, "the TCO table is shown"
    d.save_screenshot(str(SHOTS / "02-tco.png"))
    handle = _control(d, "GPUs", ".widget-slider").find_element(By.CSS_SELECTOR, ".noUi-handle")
    moved = time.monotonic()
    handle.send_keys(Keys.ARROW_RIGHT)  # one step of 8 GPUs
    _wait(d, lambda d: _chart_title(d).startswith("72 x H100-SXM"), "the chart after moving the slider")
    slider_s = time.monotonic() - moved
    _wait(d, lambda d: _table_cells(d) and _table_cells(d) != before, "the table after moving the slider")
    after_slider = _table_cells(d)
    gpu = Select(_control(d, "GPU", ".widget-dropdown").find_element(By.TAG_NAME, "select"))
    choice = next(o.text for o in gpu.options if o.text.startswith("A100"))
    changed = time.monotonic()
    gpu.select_by_visible_text(choice)
    _wait(d, lambda d: _chart_title(d).startswith(f"72 x {choice}"), "the chart after changing the dropdown")
    dropdown_s = time.monotonic() - changed
    _wait(d, lambda d: _table_cells(d) and _table_cells(d) != after_slider, "the table after the dropdown")
    d.save_screenshot(str(SHOTS / "03-tco-changed.png"))
    print(f"browser round trip: slider {slider_s:.2f} s, dropdown {dropdown_s:.2f} s")

    # --- Fleet sizing: the analytic answer at once, its prices as text (not typeset as TeX between two "$")
    _open_tab(d, "Fleet sizing")
    _wait(d, lambda d: "the minimum-cost fleet is" in _panel(d).text, "the sizing answer")
    answer = next(line for line in _panel(d).text.splitlines() if "the minimum-cost fleet is" in line)
    assert re.search(r"at \$\d+\.\d\d/h, \$\d", answer), answer
    d.save_screenshot(str(SHOTS / "03b-sizing.png"))
    _open_tab(d, "Energy & TCO")

    # downloads: CSV and Parquet of the table, SVG and PNG of the chart, as data URLs
    _panel(d).find_element(By.XPATH, ".//button[contains(., 'Prepare downloads')]").click()
    _wait(
        d, lambda d: len(_panel(d).find_elements(By.CSS_SELECTOR, "a.wb-download")) == 4, "the download links"
    )
    links = {a.get_attribute("download"): a.get_attribute("href") for a in
             _panel(d).find_elements(By.CSS_SELECTOR, "a.wb-download")}  # fmt: skip
    assert set(links) == {"tco.csv", "tco.parquet", "tco_breakdown.svg", "tco_breakdown.png"}
    csv = base64.b64decode(links["tco.csv"].split(",", 1)[1]).decode()
    assert csv.startswith("TCO (USD),") and len(csv.splitlines()) == 2
    svg = base64.b64decode(links["tco_breakdown.svg"].split(",", 1)[1]).decode()
    assert f"72 x {choice}" in svg

    # --- upload a small trace with an odd name: it becomes the workload
    _choose_file(d, DATA / "upload" / "small trace [1].csv")
    _wait(d, lambda d: "uploaded small_trace_1: 60 requests" in d.find_element(By.CSS_SELECTOR, ".wb-app").text,
          "the upload's confirmation")  # fmt: skip
    _open_tab(d, "Workloads")
    menu = lambda d: Select(_panel(d).find_element(By.TAG_NAME, "select"))  # noqa: E731
    _wait(d, lambda d: any("upload: small_trace_1" in o.text for o in menu(d).options), "the uploaded trace")
    pick = menu(d)
    assert pick.first_selected_option.text == "upload: small_trace_1"
    _wait(d, lambda d: "60.0" in _table_cells(d), "the uploaded trace summary (60 requests)")
    d.save_screenshot(str(SHOTS / "04-uploaded.png"))

    # --- a malformed upload: one error line in the page, no traceback; the app keeps answering
    _choose_file(d, DATA / "bad" / "negative_tokens.csv")
    _wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".wb-app .wb-error"), "the upload error")
    error = d.find_element(By.CSS_SELECTOR, ".wb-app .wb-error").text
    assert "output_tokens must be a whole number > 0, got -5" in error and "negative_tokens.csv" in error
    assert "Traceback" not in d.find_element(By.CSS_SELECTOR, ".wb-app").text
    d.save_screenshot(str(SHOTS / "05-bad-upload.png"))
    _open_tab(d, "Energy & TCO")
    handle = _control(d, "GPUs", ".widget-slider").find_element(By.CSS_SELECTOR, ".noUi-handle")
    handle.send_keys(Keys.ARROW_RIGHT)
    _wait(d, lambda d: _chart_title(d).startswith(f"80 x {choice}"), "the chart after the bad upload")
    assert shutil.disk_usage(SHOTS).free > 0 and len(list(SHOTS.glob("0*.png"))) >= 5
    # offline: everything the page loaded came from the app itself (no CDN), or from data/blob URLs
    loaded = d.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    foreign = [u for u in loaded if not u.startswith((app_url, "data:", "blob:"))]
    assert loaded and not foreign, foreign
    print(f"browser test: {time.monotonic() - start:.1f} s in the page, {len(loaded)} resources, all local")


def test_stored_notebook_charts_draw_offline(browser, tmp_path):
    """A notebook as stored (nbconvert HTML, scripts blocked): its charts are there as static SVG."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(Path(__file__).parents[1] / "notebooks" / "02_instance.ipynb", as_version=4)
    charts = sum("image/svg+xml" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    assert charts >= 3
    html, _ = HTMLExporter(template_name="classic").from_notebook_node(nb)
    page = tmp_path / "02.html"
    page.write_text(html)
    browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    try:
        browser.get(page.as_uri())
        shown = _wait(browser, lambda d: [i for i in d.find_elements(By.CSS_SELECTOR, ".output_svg svg, "
                                                                     ".output_svg img") if i.is_displayed()],
                      "the notebook's static charts")  # fmt: skip
        assert len(shown) == charts
        browser.save_screenshot(str(SHOTS / "06-notebook-offline.png"))
    finally:
        browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})
