"""The MLflow UI, checked in a real browser.

Two runs of one task with different params (``dvc repro``, then ``dvc exp run -S tasks.sst2.epochs=1``)
in a tiny copy of the project; then ``mlflow ui`` on the project's ``mlflow.db`` and headless Chromium
driven by Selenium: the experiment's runs table must list both runs by name (``sst2`` and
``sst2@<dvc experiment>``) with their ``epochs`` param and ``test.accuracy`` as the store has them.
The page is the address ``make ui`` prints (``pipeline.commands.ui.runs_page``: MLflow 3 opens on
its GenAI pages without it). A screenshot of the table is saved to the tested project's
``reports/mlflow_ui.png`` (the README's comes from the default run's store:
``python -m pipeline.commands.ui --screenshot``). On failure the page source and a screenshot are left in the project's
``ui_debug/`` and named in the assertion message.

Needs ``/usr/bin/chromium`` and ``/usr/bin/chromedriver`` (Debian ``chromium chromium-driver``;
``make test`` installs them); ``CHROMIUM`` / ``CHROMEDRIVER`` point elsewhere.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests.tiny_project import build_project, git_commit_all, run

pytestmark = pytest.mark.e2e

TASK = "sst2"
METRIC = "test.accuracy"
PARAM = "epochs"
EXPERIMENT = "bert4keras-pipeline"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
#: a React app on a busy 2-core machine: the first render of the runs table can take half a minute
WAIT_S = 120
#: without the background-networking flags Chromium's own connections are refused on a closed network
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1920,1080",
)


# --------------------------------------------------------------------------- the runs


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, zh_vocab: Path) -> Path:
    project = build_project(tmp_path_factory.mktemp("ui"), shared_data, zh_vocab, {TASK: "text_classification"})
    run(project, "dvc", "repro")
    git_commit_all(project, "lock")
    run(project, "dvc", "exp", "run", "-S", f"tasks.{TASK}.{PARAM}=1")
    return project


@pytest.fixture(scope="module")
def expected(project: Path) -> dict[str, Any]:
    """What the store holds: the experiment id and, per run id, its name, param and metric."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None, "the pipeline created no MLflow experiment"
    runs = [r for r in client.search_runs([experiment.experiment_id]) if r.data.tags.get("task") == TASK]
    names = [r.info.run_name for r in runs]
    assert len(runs) == 2, f"expected a repro run and an experiment run of {TASK}, got {names}"
    by_id = {r.info.run_id: {"name": r.info.run_name, PARAM: r.data.params[PARAM], METRIC: r.data.metrics[METRIC]}
             for r in runs}
    exp_names = [r.data.tags["dvc_exp_name"] for r in runs if "dvc_exp_name" in r.data.tags]
    assert len(exp_names) == 1, "exactly one run should come from `dvc exp run`"
    assert sorted(v["name"] for v in by_id.values()) == sorted([TASK, f"{TASK}@{exp_names[0]}"])
    assert sorted(v[PARAM] for v in by_id.values()) == ["1", "2"]
    return {"experiment_id": experiment.experiment_id, "runs": by_id}


# --------------------------------------------------------------------------- the UI server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read().decode())


def serves_this_store(url: str, project: Path) -> bool:
    """True once ``/health`` answers and the server knows the project's experiment by its artifact
    location: another MLflow server on the same port (a race on the free port) does not count."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            if response.status != 200:
                return False
        query = urllib.parse.urlencode({"experiment_name": EXPERIMENT})
        experiment = get_json(f"{url}/api/2.0/mlflow/experiments/get-by-name?{query}")["experiment"]
    except (OSError, urllib.error.URLError, ValueError, KeyError):
        return False
    return experiment["artifact_location"] == (project / "mlartifacts").as_uri()


def stop(process: subprocess.Popen) -> None:
    """Stop the server and its workers (its own process group, started by us)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def ui_url(project: Path) -> Iterator[str]:
    """``mlflow ui`` on the project's store on a free port; stopped at teardown."""
    mlflow_cli = Path(sys.executable).parent / "mlflow"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    log_path = project / "mlflow_ui.log"
    for _attempt in range(3):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = [str(mlflow_cli), "ui", "--backend-store-uri", f"sqlite:///{project / 'mlflow.db'}",
                   "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        with open(log_path, "w") as log:
            process = subprocess.Popen(command, cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        try:
            deadline = time.monotonic() + WAIT_S
            while time.monotonic() < deadline and process.poll() is None and not serves_this_store(url, project):
                time.sleep(1)
            if process.poll() is None and serves_this_store(url, project):
                yield url
                return
            if "address already in use" in log_path.read_text():
                continue  # the free port was taken in between: try another
            pytest.fail(f"`{' '.join(command)}` did not serve the project's store within {WAIT_S} s "
                        f"(exit code {process.poll()}); log {log_path}:\n{log_path.read_text()[-3000:]}")
        finally:
            stop(process)
    pytest.fail(f"no free port for `mlflow ui` after 3 tries; last log {log_path}")


# --------------------------------------------------------------------------- the browser


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: apt-get install -y chromium chromium-driver (`make test` does it)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    # an explicit driver path: Selenium Manager never tries to download one
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    """Explicit waits that, on timeout, leave the page source and a screenshot for debugging."""

    def __init__(self, driver: Any, debug_dir: Path) -> None:
        self.driver = driver
        self.debug_dir = debug_dir

    def dump(self, label: str) -> str:
        self.debug_dir.mkdir(parents=True, exist_ok=True)
        html, png = self.debug_dir / f"{label}.html", self.debug_dir / f"{label}.png"
        html.write_text(self.driver.page_source, encoding="utf-8")
        self.driver.save_screenshot(str(png))
        return f"page source {html}, screenshot {png}, URL {self.driver.current_url}"

    def wait(self, condition: Callable[[Any], Any], what: str, timeout: float = WAIT_S) -> Any:
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.5).until(condition)
        except TimeoutException:
            raise AssertionError(f"the MLflow UI did not show {what} within {timeout} s; "
                                 f"{self.dump(what.split(':')[0].replace(' ', '_'))}") from None

    def find(self, css: str, what: str, timeout: float = WAIT_S) -> Any:
        from selenium.webdriver.common.by import By

        def visible(driver: Any) -> Any:
            elements = [e for e in driver.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()]
            return elements[0] if elements else False

        return self.wait(visible, what, timeout)

    def click(self, css_or_xpath: str, what: str, xpath: bool = False) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as EC

        locator = (By.XPATH if xpath else By.CSS_SELECTOR, css_or_xpath)
        self.wait(EC.element_to_be_clickable(locator), what).click()


def show_column(page: Page, name: str, autosize: bool = False) -> None:
    """Add a metric or param column to the runs table through its "Columns" selector; ``autosize``
    widens it to its content (ag-grid: a double click on the resize handle) for the screenshot."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    page.click("[data-testid='column-selection-dropdown']", "the Columns selector")
    search = page.find("[role='dialog'] input[placeholder='Search columns']", "the column search box")
    search.send_keys(Keys.CONTROL, "a")
    search.send_keys(name)
    # the tree node's text (split into highlighted parts while a search is typed), not its title attribute
    node = f"//*[@role='dialog']//span[contains(@class, 'tree-title')][normalize-space(.)='{name}']"
    page.click(node, f"column {name} in the Columns selector", xpath=True)
    page.driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    header = page.find(f"[role='columnheader'][col-id*='`{name}`']", f"the {name} column header")
    for handle in header.find_elements(By.CSS_SELECTOR, ".ag-header-cell-resize") if autosize else []:
        try:
            ActionChains(page.driver).double_click(handle).perform()
        except Exception:  # noqa: BLE001 - cosmetic only
            pass


def close_assistant(page: Page) -> None:
    """Close the MLflow Assistant side panel if it is open (more room for the table); best effort."""
    from selenium.webdriver.common.by import By

    for button in page.driver.find_elements(By.XPATH, "//button[@aria-label='Close']"):
        try:
            if button.is_displayed():
                button.click()
        except Exception:  # noqa: BLE001 - a panel that re-rendered or is already gone is fine
            pass


def cell_text(driver: Any, run_id: str, col_id: str) -> str | None:
    """The text of a run's cell (ag-grid rows carry the run id as ``row-id``), None if not rendered."""
    from selenium.webdriver.common.by import By

    css = f"[role='row'][row-id='{run_id}'] [role='gridcell'][col-id='{col_id}']"
    cells = driver.find_elements(By.CSS_SELECTOR, css)
    texts = [c.text.strip() for c in cells if c.is_displayed() and c.text.strip()]
    return texts[0] if texts else None


def shows_value(text: str | None, value: float) -> bool:
    """The UI's text is ``value``, exactly (``0.5``) or rounded to the decimals it shows (at least
    three: MLflow 3.17 shows the full float, and accuracies on 24 examples differ by 1/24)."""
    if not text:
        return False
    try:
        shown = float(text)
    except ValueError:
        return False
    decimals = len(text.partition(".")[2])
    return math.isclose(shown, value, abs_tol=1e-12) or (
        decimals >= 3 and math.isclose(shown, value, abs_tol=0.5 * 10**-decimals + 1e-12)
    )


# --------------------------------------------------------------------------- the check


def test_runs_table_shows_both_runs_with_params_and_metrics(
    project: Path, expected: dict[str, Any], ui_url: str, browser: Any
) -> None:
    page = Page(browser, project / "ui_debug")
    from pipeline.commands.ui import runs_page

    page_url = runs_page(ui_url, f"sqlite:///{project / 'mlflow.db'}", EXPERIMENT)
    assert page_url.endswith(f"/#/experiments/{expected['experiment_id']}/runs?workflowType=machine_learning")
    browser.get(page_url)
    runs = expected["runs"]
    names = [run_["name"] for run_ in runs.values()]
    name_col = "attributes.`Run Name`"

    def both_names(driver: Any) -> bool:
        return all(name in (cell_text(driver, run_id, name_col) or "").splitlines()
                   for run_id, name in ((i, r["name"]) for i, r in runs.items()))

    page.wait(both_names, f"run names: both runs {names} in the runs table")
    close_assistant(page)
    show_column(page, METRIC, autosize=True)
    show_column(page, PARAM)

    metric_col, param_col = f"metrics.`{METRIC}`", f"params.`{PARAM}`"

    def values_shown(driver: Any) -> bool:
        return all(shows_value(cell_text(driver, run_id, metric_col), run_[METRIC])
                   and cell_text(driver, run_id, param_col) == run_[PARAM] for run_id, run_ in runs.items())

    wanted = {r["name"]: {PARAM: r[PARAM], METRIC: r[METRIC]} for r in runs.values()}
    page.wait(values_shown, f"values: {PARAM} and {METRIC} of each run as stored {wanted}")
    shown = {r["name"]: (cell_text(browser, i, param_col), cell_text(browser, i, metric_col)) for i, r in runs.items()}
    print(f"MLflow UI shows {shown}")

    screenshot = project / "reports" / "mlflow_ui.png"
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(screenshot)), "Chromium saved no screenshot"
    assert screenshot.stat().st_size > 10_000, f"{screenshot} looks empty"
