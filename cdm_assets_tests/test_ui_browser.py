"""The Dagster UI of a real `dagster dev`, driven by headless Chromium.

The global lineage shows every asset of DESIGN.md, an asset materialises on
demand from its page, and the lineage is saved to `docs/lineage.png` for the
README.

The graph draws asset *names* (`source_lookup`) inside group boxes (`identity`)
and middle-truncates long names (`customer_…_history`), so full keys are
checked against the GraphQL API and the asset catalog (`/assets`, which links
every asset by its full key), and the names and groups on the lineage itself.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest

from cdm_assets_tests.dagster_server import PROJECT_ROOT, dagster_dev, expected_asset_keys

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1600, "height": 1000}
SCREENSHOT = PROJECT_ROOT / "docs" / "lineage.png"

# Bounding boxes of the drawn asset nodes and of the visible part of the graph.
GRAPH_BOXES_JS = """() => {
  const nodes = [...document.querySelectorAll('svg foreignObject')].filter(e => e.textContent.trim());
  let viewport = nodes[0].closest('svg').parentElement;
  while (viewport && getComputedStyle(viewport).overflow !== 'hidden') viewport = viewport.parentElement;
  const boxes = nodes.map(e => e.getBoundingClientRect());
  const v = viewport.getBoundingClientRect();
  return {
    nodes: [Math.min(...boxes.map(b => b.left)), Math.min(...boxes.map(b => b.top)),
            Math.max(...boxes.map(b => b.right)), Math.max(...boxes.map(b => b.bottom))],
    viewport: [v.left, v.top, v.right, v.bottom],
  };
}"""


# Zoomed out, the graph draws "minimal" nodes whose colours come from CSS variables.
# Every node drawn, and as many green (materialised) as there are built assets; the landing
# folders are observed, and drawn in the colour of an observation.
ALL_NODES_MATERIALISED_JS = """([count, built]) => {
  const boxes = [...document.querySelectorAll('svg foreignObject [style*="--minimal-bg"]')];
  const green = boxes.filter(b => b.getAttribute('style').includes('--color-background-green'));
  return boxes.length === count && green.length === built;
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with dagster_dev(tmp_path_factory.mktemp("ui_browser")) as server:
        yield server


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        # `make test` installs Chromium where it may (as root with apt-get); elsewhere the
        # browser tests are skipped with the reason, except in CI, which never skips them.
        missing = f"{CHROMIUM} is missing: install Debian's chromium package (make system-packages, as root)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(missing)
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        yield page
    finally:
        context.close()


GROUPS = ("landing", "raw", "identity", "marts", "quality")


def group_of(key: str) -> str:
    """The group of an asset: its key's first part (the schema), but the quarantine report,
    downstream of the marts, in a group of its own."""
    return "quality" if key == "raw/quarantine" else key.split("/")[0]


def open_lineage(page, server) -> None:
    """The global lineage with every group expanded."""
    page.goto(f"{server.url}/asset-groups")
    page.get_by_text("Materialize all").wait_for()
    assert page.get_by_text("Join the Dagster community").count() == 0, "first-visit modal shown"
    asset = page.locator("svg foreignObject").get_by_text("source_lookup", exact=True)
    page.locator("svg foreignObject").get_by_text("raw", exact=True).first.wait_for()
    if asset.count() == 0:
        # Larger graphs start with collapsed groups; ⌥E expands them all (the UI's own shortcut).
        page.keyboard.press("Alt+e")
        page.locator("svg foreignObject").get_by_text("crm", exact=True).first.wait_for()
        # The UI draws only the nodes in view: zoom until the whole graph fits.
        fit_graph(page)
        asset.wait_for()


def drawn_asset_names(page) -> list[str]:
    """Names drawn on asset nodes (group boxes, drawn as foreignObjects too, are told apart by the caller)."""
    texts = page.locator("svg foreignObject").evaluate_all(
        "elements => elements.map(e => e.firstElementChild ? e.firstElementChild.innerText : '')"
    )
    return [text.strip().splitlines()[0].strip() for text in texts if text.strip()]


def name_matches(drawn: str, name: str) -> bool:
    if "…" in drawn:  # middle-truncated: customer_…_history
        head, tail = drawn.split("…", 1)
        return name.startswith(head) and name.endswith(tail) and len(name) > len(head) + len(tail)
    return drawn == name


def test_the_lineage_shows_every_asset_of_the_design(server, page):
    expected = expected_asset_keys(server.config_path)
    assert server.asset_keys() == expected
    groups = server.graphql("{ assetNodes { assetKey { path } groupName } }")["assetNodes"]
    assert {"/".join(node["assetKey"]["path"]): node["groupName"] for node in groups} == {
        key: group_of(key) for key in expected
    }

    page.set_viewport_size({"width": 1600, "height": 3000})  # the catalog only renders the rows in view
    page.goto(f"{server.url}/assets")
    page.locator("a[href='/assets/marts/customers']").first.wait_for()
    linked = set(page.locator("a[href^='/assets/']").evaluate_all("links => links.map(a => a.getAttribute('href'))"))
    assert {f"/assets/{key}" for key in expected} <= linked
    for key in expected:
        assert page.get_by_text(key.replace("/", " / "), exact=True).count() >= 1, key

    page.set_viewport_size(VIEWPORT)
    open_lineage(page, server)
    drawn = drawn_asset_names(page)
    for group in GROUPS:
        assert group in drawn, f"group box {group} not drawn"
    node_labels = [label for label in drawn if label not in GROUPS]
    names = sorted(key.split("/")[1] for key in expected)
    assert len(node_labels) == len(names), node_labels
    unmatched = [name for name in names if not any(name_matches(label, name) for label in node_labels)]
    assert unmatched == [], f"not drawn on the lineage: {unmatched} (drawn: {node_labels})"


def test_the_columns_of_the_golden_customers_are_described_in_the_ui(server, page):
    page.goto(f"{server.url}/assets/marts/customers")
    # the overview's column table: names with their descriptions (from cdm's column catalogue)
    page.get_by_text("email_sha256", exact=True).first.wait_for()
    page.get_by_text("SHA-256 (hex) of the email trimmed and lower-cased, for activation").first.wait_for()
    assert page.get_by_text("the stable Customer ID: kept across runs, merges keep the older id").count() >= 1


def test_the_quarantine_asset_shows_its_rows_by_source_and_category(server, page):
    page.goto(f"{server.url}/assets/raw/quarantine")
    page.get_by_text("rows_by_source_and_category", exact=True).first.wait_for()
    # the sample's corruptions: a duplicate CRM id (raw load) and an unknown currency (transactions mart)
    page.get_by_text("duplicate record id", exact=True).first.wait_for()
    page.get_by_text("unknown currency", exact=True).first.wait_for()
    assert page.get_by_text("quality", exact=True).count() >= 1  # its group


def test_the_cluster_sizes_of_the_id_map_render_as_plots(server, page):
    page.set_viewport_size({"width": 1600, "height": 2400})
    page.goto(f"{server.url}/assets/identity/customer_id_map")
    page.get_by_text("clusters/size_1", exact=True).first.wait_for()
    page.get_by_role("button", name="Plots").click()
    for bucket in ("clusters/size_1", "clusters/size_2", "clusters/size_5_9", "clusters/size_10_up"):
        page.get_by_text(bucket, exact=True).first.wait_for()
    page.wait_for_function("() => document.querySelectorAll('canvas').length >= 6")  # one chart per number


def test_an_asset_materialises_on_demand_from_its_page(server, page):
    page.goto(f"{server.url}/assets/raw/crm")
    run_id = launch_from_ui(page, page.locator("button").filter(has_text=re.compile(r"^\s*Materialize\s*$")))

    assert server.wait_for_runs([run_id], timeout=300) == {run_id: "SUCCESS"}
    data = server.graphql(
        """query Run($runId: ID!) { runOrError(runId: $runId) { ... on Run {
             assetSelection { path } tags { key value } } } }""",
        {"runId": run_id},
    )["runOrError"]
    assert [key["path"] for key in data["assetSelection"]] == [["raw", "crm"]]
    assert {"key": "dagster/from_ui", "value": "true"} in data["tags"]

    page.goto(f"{server.url}/runs/{run_id}")
    page.get_by_text("Success", exact=True).first.wait_for()

    # what depends on raw/crm follows by declarative automation: one run of the sensor upstream_updates
    launched_at = server.graphql(
        """query Run($runId: ID!) { runOrError(runId: $runId) { ... on Run { creationTime } } }""", {"runId": run_id}
    )["runOrError"]["creationTime"]
    deadline = time.monotonic() + 240
    while not (follow := [r for r in server.runs(tags={"dagster/sensor_name": "upstream_updates"})
                          if r["creationTime"] > launched_at]):  # fmt: skip
        assert time.monotonic() < deadline, "no automation run after raw/crm was materialised"
        time.sleep(3)
    assert server.wait_for_runs([follow[0]["runId"]], timeout=300) == {follow[0]["runId"]: "SUCCESS"}
    followed = server.graphql(
        """query Run($runId: ID!) { runOrError(runId: $runId) { ... on Run { assetSelection { path } } } }""",
        {"runId": follow[0]["runId"]},
    )["runOrError"]["assetSelection"]
    assert {"identity/source_lookup", "identity/customer_id_map", "marts/customers"} <= {
        "/".join(key["path"]) for key in followed
    }


def test_the_lineage_screenshot_shows_every_asset_materialised(server, page):
    server.wait_until_idle(timeout=300)  # headless materialisation + the sensors' first runs
    open_lineage(page, server)
    # Materialise everything once more from the UI, so that no asset shows as out of sync with
    # its upstream (e.g. after the on-demand run of raw/crm in the test above).
    # "Materialize all (18)": every asset but the landing folders, which are observed
    materialize_all = page.locator("button").filter(has_text=re.compile(r"^\s*Materialize all \(\d+\)\s*$"))
    run_id = launch_from_ui(page, materialize_all)
    assert server.wait_for_runs([run_id], timeout=300) == {run_id: "SUCCESS"}
    runs = server.wait_until_idle(timeout=300)
    assert {run["status"] for run in runs} == {"SUCCESS"}
    nodes = server.graphql("{ assetNodes { assetKey { path } assetMaterializations(limit: 1) { runId } } }")[
        "assetNodes"
    ]
    latest_run = {
        "/".join(node["assetKey"]["path"]): [m["runId"] for m in node["assetMaterializations"]] for node in nodes
    }
    assert latest_run == {
        key: [] if key.startswith("landing/") else [run_id] for key in expected_asset_keys(server.config_path)
    }

    page.get_by_text("Hide navigation").click()
    page.get_by_role("button", name="panel_show_right", exact=True).click()  # hide the asset sidebar
    fit_graph(page)
    # Nodes are drawn grey until their live data (latest materialisation) has loaded, then green.
    built = [key for key in latest_run if not key.startswith("landing/")]
    page.wait_for_function(ALL_NODES_MATERIALISED_JS, arg=[len(nodes), len(built)], timeout=60_000)
    assert page.get_by_text("Join the Dagster community").count() == 0
    SCREENSHOT.parent.mkdir(exist_ok=True)
    partial = SCREENSHOT.with_suffix(".partial.png")
    page.screenshot(path=str(partial), type="png")
    shutil.move(partial, SCREENSHOT)
    assert SCREENSHOT.stat().st_size > 20_000


def launch_from_ui(page, button) -> str:
    """Click a button that launches a run; returns the run id the UI got back."""
    with page.expect_response(
        lambda response: "/graphql" in response.url and "LaunchPipelineExecution" in (response.request.post_data or "")
    ) as launched:
        button.click()
    result = launched.value.json()["data"]["launchPipelineExecution"]
    assert result["__typename"] == "LaunchRunSuccess", result
    run_id = result["run"]["id"]
    page.get_by_text(f"Launched run {run_id[:8]}").wait_for()
    return run_id


def fit_graph(page, margin: float = 30) -> None:
    """Zoom so that the whole graph just fits the visible graph area, then centre it by dragging."""

    def measure():
        box = page.evaluate(GRAPH_BOXES_JS)
        nodes, view = box["nodes"], box["viewport"]
        fits = (
            nodes[2] - nodes[0] <= view[2] - view[0] - 2 * margin
            and nodes[3] - nodes[1] <= view[3] - view[1] - 2 * margin
        )
        return nodes, view, fits

    def zoom(direction: str) -> None:
        page.get_by_role("button", name=direction, exact=True).click()
        page.wait_for_timeout(400)

    for _ in range(10):
        if measure()[2]:
            break
        zoom("zoom_out")
    for _ in range(10):
        zoom("zoom_in")
        if not measure()[2]:
            zoom("zoom_out")
            break
    nodes, view, fits = measure()
    assert fits, (nodes, view)
    dx = (view[0] + view[2] - nodes[0] - nodes[2]) / 2
    dy = (view[1] + view[3] - nodes[1] - nodes[3]) / 2
    x, y = view[0] + 5, view[3] - 5  # an empty corner of the canvas
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y + dy, steps=10)
    page.mouse.up()
    page.wait_for_timeout(500)
    nodes, view, _ = measure()
    assert view[0] <= nodes[0] and nodes[2] <= view[2] and view[1] <= nodes[1] and nodes[3] <= view[3], (nodes, view)
