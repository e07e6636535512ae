"""The MLflow UI, checked in a real browser.

A tiny copy of the project whose Chinese task (on the tiny random BERT) trains a seed group
(``seeds: [1, 2]``) twice with different params (``dvc repro``, then
``dvc exp run -S tasks.zh_sentiment.epochs=1``): two parent runs (``zh_sentiment`` and
``zh_sentiment@<dvc experiment>``, tagged ``seed_group``), each with its two seed runs nested under it
(``zh_sentiment seed 1`` and ``zh_sentiment seed 2``, ``@<dvc experiment>`` for the experiment's), and
two versions of the registered model ``zh_sentiment``, the first holding the alias ``champion``. Then
``mlflow ui`` on the project's ``mlflow.db`` and headless Chromium driven by Selenium:

* the experiment's runs table lists both parent runs by name with their ``epochs`` param and
  ``test.accuracy`` as the store has them; each parent row has an expander, and expanding it shows
  its seed runs in the rows right below it, indented. The page is the address ``make ui`` prints
  (``pipeline.commands.ui.runs_page``: MLflow 3 opens on its GenAI pages without it). A screenshot
  of the expanded table is saved to the tested project's ``reports/mlflow_ui.png`` (the README's
  comes from the default run's store: ``python -m pipeline.commands.ui --screenshot``);
* the registered model's page (``#/models/zh_sentiment``) lists both versions, version 1 with the alias
  ``champion``; its screenshot is saved to ``reports/mlflow_models.png``.

On failure the page source and a screenshot are left in the project's ``ui_debug/`` and named in the
assertion message.

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
from ruamel.yaml import YAML

from tests.tiny_project import build_project, git_commit_all, run

pytestmark = pytest.mark.e2e

TASK = "zh_sentiment"
METRIC = "test.accuracy"
PARAM = "epochs"
#: a seed group: one parent run per training of the task, one run per seed nested under it
SEEDS = (1, 2)
#: the alias the evaluate stage gives a task's first registered version (pipeline.tracking.registry)
CHAMPION = "champion"
NAME_COL = "attributes.`Run Name`"
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
def project(module_tmp: Path, shared_data: Path, zh_vocab: Path) -> Path:
    project = build_project(module_tmp, shared_data, zh_vocab, {TASK: "text_classification"})
    yaml = YAML()
    params = yaml.load(project / "params.yaml")
    params["tasks"][TASK]["seeds"] = list(SEEDS)
    yaml.dump(params, project / "params.yaml")
    git_commit_all(project, "seed group")
    run(project, "dvc", "repro")
    git_commit_all(project, "lock")
    run(project, "dvc", "exp", "run", "-S", f"tasks.{TASK}.{PARAM}=1")
    return project


@pytest.fixture(scope="module")
def expected(project: Path) -> dict[str, Any]:
    """What the store holds: the experiment id; per parent run id, its name, param, metric and seed
    runs (run id: name); the versions of the registered model and their aliases."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None, "the pipeline created no MLflow experiment"
    runs = [r for r in client.search_runs([experiment.experiment_id]) if r.data.tags.get("task") == TASK]
    parents = [r for r in runs if "seed_group" in r.data.tags]
    names = [r.info.run_name for r in runs]
    assert len(parents) == 2, f"expected a repro run and an experiment run of {TASK}'s seed group, got {names}"
    exp_names = [r.data.tags["dvc_exp_name"] for r in parents if "dvc_exp_name" in r.data.tags]
    assert len(exp_names) == 1, "exactly one parent run should come from `dvc exp run`"
    by_id: dict[str, dict[str, Any]] = {}
    for parent in parents:
        suffix = f"@{parent.data.tags['dvc_exp_name']}" if "dvc_exp_name" in parent.data.tags else ""
        children = {r.info.run_id: r.info.run_name for r in runs
                    if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
        assert sorted(children.values()) == [f"{TASK} seed {seed}{suffix}" for seed in SEEDS], (
            f"{parent.info.run_name}: expected one nested run per seed {SEEDS}, got {sorted(children.values())}")
        by_id[parent.info.run_id] = {"name": parent.info.run_name, PARAM: parent.data.params[PARAM],
                                     METRIC: parent.data.metrics[METRIC], "children": children}
    assert len(runs) == len(parents) * (1 + len(SEEDS)), f"stray runs of {TASK}: {names}"
    assert sorted(v["name"] for v in by_id.values()) == sorted([TASK, f"{TASK}@{exp_names[0]}"])
    assert sorted(v[PARAM] for v in by_id.values()) == ["1", "2"]
    versions = sorted(str(v.version) for v in client.search_model_versions(f"name = '{TASK}'"))
    assert versions == ["1", "2"], f"expected two versions of registered model {TASK}, got {versions}"
    aliases = {alias: str(version) for alias, version in client.get_registered_model(TASK).aliases.items()}
    assert aliases == {CHAMPION: "1"}, f"version 1 of {TASK} should hold the alias {CHAMPION}, and only it: {aliases}"
    return {"experiment_id": experiment.experiment_id, "runs": by_id, "versions": versions, "aliases": aliases}


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
        from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            # a React re-render between finding an element and reading it: look again at the next poll
            return WebDriverWait(self.driver, timeout, poll_frequency=0.5,
                                 ignored_exceptions=(StaleElementReferenceException,)).until(condition)
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
    if autosize:
        autosize_column(page, header)


def autosize_column(page: Page, header: Any) -> None:
    """Widen a column to its content (ag-grid: a double click on its header's resize handle); cosmetic,
    for the screenshot: best effort."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    for handle in header.find_elements(By.CSS_SELECTOR, ".ag-header-cell-resize"):
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


def row_index(driver: Any, run_id: str) -> int | None:
    """The position of a run's row in the table as shown (ag-grid's ``row-index``), None if not rendered."""
    from selenium.webdriver.common.by import By

    rows = [r for r in driver.find_elements(By.CSS_SELECTOR, f"[role='row'][row-id='{run_id}']") if r.is_displayed()]
    return int(rows[0].get_attribute("row-index")) if rows else None


def name_left(driver: Any, run_id: str) -> int | None:
    """The x offset of a run's name link in the Run Name cell (its nesting indent), None if not rendered."""
    from selenium.webdriver.common.by import By

    css = f"[role='row'][row-id='{run_id}'] [role='gridcell'][col-id='{NAME_COL}'] a[href$='/runs/{run_id}']"
    links = [a for a in driver.find_elements(By.CSS_SELECTOR, css) if a.is_displayed()]
    return links[0].location["x"] if links else None


def expand(page: Page, parent_id: str, parent_name: str, children: dict[str, str]) -> None:
    """Click the expander of a parent run's row; its runs (``children``: run id to name) must then
    show, by name, in the rows right below it, indented further than its own name."""
    expander = f"[role='row'][row-id='{parent_id}'] [role='gridcell'][col-id='{NAME_COL}'] button"
    page.click(expander, f"the expander of parent run {parent_name}")

    def nested(driver: Any) -> bool:
        parent_row, parent_left = row_index(driver, parent_id), name_left(driver, parent_id)
        if parent_row is None or parent_left is None:
            return False
        below = {row_index(driver, child) for child in children}
        return (below == set(range(parent_row + 1, parent_row + 1 + len(children)))
                and all(name in (cell_text(driver, child, NAME_COL) or "").splitlines()
                        for child, name in children.items())
                and all((name_left(driver, child) or 0) > parent_left for child in children))

    page.wait(nested, f"seed runs: {sorted(children.values())} nested below {parent_name} once expanded")


def version_aliases(driver: Any, version: str) -> list[str] | None:
    """The aliases the registered model's version table shows for ``version`` (its Aliases cell's
    ``@ <alias>`` tags), None while the version's row or the Aliases column is not rendered."""
    import re

    from selenium.webdriver.common.by import By

    table = driver.find_elements(By.CSS_SELECTOR, "[data-testid='model-version-table']")
    if not table:
        return None
    headers = [h.text.strip() for h in table[0].find_elements(By.CSS_SELECTOR, "[role='columnheader']")]
    if "Aliases" not in headers:
        return None
    link = f"a[href$='/models/{TASK}/versions/{version}']"
    for row in table[0].find_elements(By.CSS_SELECTOR, "[role='row']"):
        if row.find_elements(By.CSS_SELECTOR, link):
            cells = row.find_elements(By.CSS_SELECTOR, "[role='cell']")
            if len(cells) != len(headers):
                return None
            return re.findall(r"@\s*(\S+)", cells[headers.index("Aliases")].text)
    return None


# --------------------------------------------------------------------------- the check


def test_runs_table_shows_both_runs_with_params_metrics_and_nested_seed_runs(
    project: Path, expected: dict[str, Any], ui_url: str, browser: Any
) -> None:
    page = Page(browser, project / "ui_debug")
    from pipeline.commands.ui import runs_page

    page_url = runs_page(ui_url, f"sqlite:///{project / 'mlflow.db'}", EXPERIMENT)
    assert page_url.endswith(f"/#/experiments/{expected['experiment_id']}/runs?workflowType=machine_learning")
    browser.get(page_url)
    runs = expected["runs"]
    names = [run_["name"] for run_ in runs.values()]

    def both_names(driver: Any) -> bool:
        return all(name in (cell_text(driver, run_id, NAME_COL) or "").splitlines()
                   for run_id, name in ((i, r["name"]) for i, r in runs.items()))

    page.wait(both_names, f"run names: both runs {names} in the runs table")
    # the parents are listed with their seed runs collapsed under them
    shown_children = [name for run_ in runs.values() for child, name in run_["children"].items()
                      if row_index(browser, child) is not None]
    assert not shown_children, (f"seed runs {shown_children} are shown before their parent is expanded; "
                                f"{page.dump('children_before_expanding')}")
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

    for run_id, run_ in runs.items():
        expand(page, run_id, run_["name"], run_["children"])
    nesting = {r["name"]: [((cell_text(browser, c, NAME_COL) or "").splitlines() or [""])[-1] for c in r["children"]]
               for r in runs.values()}
    print(f"MLflow UI nests {nesting}")
    autosize_column(page, page.find(f"[role='columnheader'][col-id='{NAME_COL}']", "the Run Name column header"))

    screenshot = project / "reports" / "mlflow_ui.png"
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(screenshot)), "Chromium saved no screenshot"
    assert screenshot.stat().st_size > 10_000, f"{screenshot} looks empty"


def test_registered_model_page_lists_the_versions_and_the_champion_alias(
    project: Path, expected: dict[str, Any], ui_url: str, browser: Any
) -> None:
    page = Page(browser, project / "ui_debug")
    browser.get(f"{ui_url}/#/models/{TASK}")
    versions = expected["versions"]
    wanted = {version: sorted(a for a, v in expected["aliases"].items() if v == version) for version in versions}

    def aliases_shown(driver: Any) -> bool:
        return {version: version_aliases(driver, version) for version in versions} == wanted

    page.wait(aliases_shown, f"model versions: {TASK}'s versions with their aliases {wanted} in its version table")
    print(f"MLflow UI shows versions of {TASK} with aliases {wanted}")
    close_assistant(page)

    screenshot = project / "reports" / "mlflow_models.png"
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(screenshot)), "Chromium saved no screenshot"
    assert screenshot.stat().st_size > 10_000, f"{screenshot} looks empty"
