"""Start and stop a real `dagster dev` for end-to-end tests, and talk to it over GraphQL.

Every server gets its own `DAGSTER_HOME` (a copy of the project's
`.dagster/dagster.yaml`, plus `.nux/nux.yaml` so the UI shows no first-visit
modal), its own sample data, `cdm.yaml` and DuckDB file, and a free port on
127.0.0.1. `dagster dev` runs in its own process group; `stop()` sends SIGTERM
to `dagster dev`, then to the whole group, then SIGKILL to whatever is left, so
no webserver, daemon, code server or run worker outlives the test (and if the
test process dies first, `dagster dev` gets SIGTERM from the kernel).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DAGSTER_YAML = PROJECT_ROOT / ".dagster" / "dagster.yaml"
PRODUCTION_YAML = PROJECT_ROOT / "deploy" / "dagster.yaml"  # PostgreSQL storage
DEMO_CONFIG = PROJECT_ROOT / "cdm_assets" / "demo" / "cdm.yaml"
BIN = Path(sys.executable).parent

ASSET_JOB = "__ASSET_JOB"
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}
# What DuckDB says when a second process opens a file another one is writing.
LOCK_ERRORS = ("Could not set lock on file", "Conflicting lock")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_dagster_home(path: Path, instance_yaml: Path = DAGSTER_YAML) -> Path:
    """A fresh instance folder with the instance settings of `instance_yaml` (the project's
    `.dagster/dagster.yaml` unless given) and no first-visit modal."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(instance_yaml, path / "dagster.yaml")
    (path / ".nux").mkdir(exist_ok=True)
    (path / ".nux" / "nux.yaml").write_text("seen: 1\n")
    return path


def write_sample_project(
    workdir: Path, persons: int = 300, seed: int = 7, sources: Iterable[str] | None = None
) -> Path:
    """Sample landing files in `workdir/landing` and a `cdm.yaml` reading them; returns the config path.

    The config is the bundled demo config with its `../../data/` prefix dropped,
    so relative paths resolve against `workdir` and the tests follow the demo;
    `sources` keeps only those of its sources.
    """
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cdm_assets.sample",
            "--persons",
            str(persons),
            "--seed",
            str(seed),
            "--out",
            str(workdir),
        ],
        capture_output=True,
        text=True,
        cwd=workdir,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the sample generator failed:\n{result.stdout}\n{result.stderr}")
    document = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
    document["warehouse"]["duckdb_path"] = "cdm.duckdb"
    if sources is not None:
        document["sources"] = {name: document["sources"][name] for name in sources}
    for source in document["sources"].values():
        source["path"] = source["path"].removeprefix("../../data/")
    path = workdir / "cdm.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


# The assets DESIGN.md promises below the raw sources, whatever the config
# (`identity/match_model` since the second wave's contracts).
BELOW_RAW = {
    "raw/quarantine",
    "identity/source_lookup",
    "identity/match_model",
    "identity/identity_graph",
    "identity/customer_id_map",
    "identity/customer_id_history",
    "marts/customers",
    "marts/transactions",
    "marts/events",
    "marts/customer_metrics",
}


def expected_asset_keys(config_path: Path) -> set[str]:
    """The asset keys DESIGN.md promises for a config, as `raw/crm`-style strings, and the
    observed landing folder of each source (`landing/crm`)."""
    sources = yaml.safe_load(config_path.read_text(encoding="utf-8"))["sources"]
    return {f"raw/{name}" for name in sources} | {f"landing/{name}" for name in sources} | BELOW_RAW


class GraphQLError(RuntimeError):
    pass


class PortTaken(RuntimeError):
    pass


class DagsterDev:
    """One `dagster dev` process group serving the project for a test module."""

    def __init__(
        self, workdir: Path, config_path: Path, duckdb_path: Path, dagster_home: Path, env: dict[str, str] | None = None
    ):
        self.extra_env = env or {}
        self.workdir = workdir
        self.config_path = config_path
        self.duckdb_path = duckdb_path
        self.dagster_home = dagster_home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "dagster-dev.log"
        self.process: subprocess.Popen | None = None
        self.location_name = ""
        self.repository_name = ""

    # -- lifecycle ---------------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        env = {
            **os.environ,
            "DAGSTER_HOME": str(self.dagster_home),
            "CDM_CONFIG": str(self.config_path),
            "CDM_DUCKDB_PATH": str(self.duckdb_path),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        return env

    def start(self, timeout: float = 180, attempts: int = 3) -> DagsterDev:
        for attempt in range(1, attempts + 1):
            with open(self.log_path, "ab") as log:
                # A new session: its own process group, which stop() signals as a whole.
                self.process = subprocess.Popen(
                    [
                        str(BIN / "dagster"),
                        "dev",
                        "-w",
                        str(PROJECT_ROOT / "workspace.yaml"),
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(self.port),
                    ],
                    cwd=self.workdir,
                    env=self.environment(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    preexec_fn=_default_interrupts,
                )
            try:
                self._wait_until_ready(timeout)
                return self
            except PortTaken:
                self.stop()
                if attempt == attempts:
                    raise
                self.port = free_port()  # another process took the port between choosing and binding it
                self.url = f"http://127.0.0.1:{self.port}"
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                if "address already in use" in self.log_tail().lower():
                    raise PortTaken(f"port {self.port} is taken")
                raise RuntimeError(f"dagster dev exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/server_info", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"dagster dev did not answer on {self.url} in {timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.5)
        # Make sure the server on the port is this one (its instance is our DAGSTER_HOME).
        info = self.graphql("{ instance { info } }")["instance"]["info"] or ""
        if str(self.dagster_home) not in info or self.process.poll() is not None:
            raise PortTaken(f"port {self.port} is served by another process:\n{self.log_tail()}")
        # The webserver answers before the code location has loaded: wait for the repository.
        while True:
            data = self.graphql(
                """{ workspaceOrError { __typename ... on Workspace { locationEntries { name
                     locationOrLoadError { __typename ... on RepositoryLocation { repositories { name } }
                                           ... on PythonError { message } } } } } }"""
            )
            entries = data["workspaceOrError"].get("locationEntries") or []
            for entry in entries:
                location = entry["locationOrLoadError"] or {}
                if location.get("__typename") == "RepositoryLocation":
                    self.location_name = entry["name"]
                    self.repository_name = location["repositories"][0]["name"]
                    return
                if location.get("__typename") == "PythonError":
                    raise RuntimeError(f"code location {entry['name']} failed to load: {location['message']}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"code location did not load in {timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.5)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, then SIGKILL for whatever is left of the process group.

        `dagster dev` first gets SIGTERM alone: it then stops its webserver,
        daemon and code servers itself (signalled all at once, its code-server
        manager restarts a code server it sees exit). Then the whole group gets
        SIGTERM (run workers, stragglers) and, after a grace period, SIGKILL.
        """
        process, self.process = self.process, None
        if process is None:
            return
        _signal_process(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _group_alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        _signal_group(process.pid, signal.SIGKILL)
        if process.poll() is None:
            process.wait(timeout=10)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    # -- GraphQL -----------------------------------------------------------------------------

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 60) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read())
        if payload.get("errors"):
            raise GraphQLError(json.dumps(payload["errors"], indent=1))
        return payload["data"]

    def asset_keys(self) -> set[str]:
        data = self.graphql("{ assetNodes { assetKey { path } } }")
        return {"/".join(node["assetKey"]["path"]) for node in data["assetNodes"]}

    def asset_checks(self, asset_keys: Iterable[str]) -> list[dict]:
        """Check handles (`{assetKey: {path}, name}`) of the given assets, as the UI passes them."""
        wanted = set(asset_keys)
        data = self.graphql(
            """{ assetNodes { assetKey { path }
                 assetChecksOrError { ... on AssetChecks { checks { name } } } } }"""
        )
        handles = []
        for node in data["assetNodes"]:
            key = "/".join(node["assetKey"]["path"])
            if key in wanted:
                for check in (node["assetChecksOrError"] or {}).get("checks", []):
                    handles.append({"assetKey": {"path": node["assetKey"]["path"]}, "name": check["name"]})
        return handles

    def launch_assets(self, asset_keys: Iterable[str], tags: dict[str, str] | None = None) -> str:
        """Launch one run of the asset job for these assets and their checks; returns the run id."""
        keys = sorted(set(asset_keys))
        selector = {
            "repositoryLocationName": self.location_name,
            "repositoryName": self.repository_name,
            "pipelineName": ASSET_JOB,
            "assetSelection": [{"path": key.split("/")} for key in keys],
            "assetCheckSelection": self.asset_checks(keys),
        }
        data = self.graphql(
            """mutation Launch($executionParams: ExecutionParams!) {
                 launchPipelineExecution(executionParams: $executionParams) {
                   __typename
                   ... on LaunchRunSuccess { run { runId } }
                   ... on PythonError { message }
                   ... on RunConfigValidationInvalid { errors { message } }
                   ... on Error { message }
                 } }""",
            {
                "executionParams": {
                    "selector": selector,
                    "mode": "default",
                    "runConfigData": {},
                    "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]},
                }
            },
        )
        result = data["launchPipelineExecution"]
        if result["__typename"] != "LaunchRunSuccess":
            raise GraphQLError(f"launch failed: {result}")
        return result["run"]["runId"]

    def runs(self, tags: dict[str, str] | None = None, limit: int = 100) -> list[dict]:
        """Newest first: runId, status, tags, startTime, endTime."""
        data = self.graphql(
            """query Runs($filter: RunsFilter, $limit: Int) {
                 runsOrError(filter: $filter, limit: $limit) {
                   __typename
                   ... on Runs { results { runId status startTime endTime creationTime
                                            tags { key value } } }
                   ... on PythonError { message } } }""",
            {"filter": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]}, "limit": limit},
        )
        runs = data["runsOrError"]
        if runs["__typename"] != "Runs":
            raise GraphQLError(str(runs))
        for run in runs["results"]:
            run["tags"] = {tag["key"]: tag["value"] for tag in run["tags"]}
        return runs["results"]

    def run_status(self, run_id: str) -> str:
        data = self.graphql(
            """query Run($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run { status } } }""",
            {"runId": run_id},
        )
        return data["runOrError"]["status"]

    def wait_for_runs(self, run_ids: Iterable[str], timeout: float = 180) -> dict[str, str]:
        """Wait until every run has finished; returns their final statuses."""
        pending = set(run_ids)
        statuses: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        while pending:
            for run_id in sorted(pending):
                status = self.run_status(run_id)
                if status in FINISHED:
                    statuses[run_id] = status
                    pending.discard(run_id)
            if not pending:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"runs still not finished after {timeout:.0f}s: "
                    f"{ {r: self.run_status(r) for r in pending} }\n{self.log_tail()}"
                )
            time.sleep(1)
        return statuses

    def wait_until_idle(self, timeout: float = 300) -> list[dict]:
        """Wait until every sensor has ticked and no run is queued, starting or running; returns all runs.

        A sensor requests its runs inside its tick, so once every sensor has
        ticked, the runs of those first ticks exist and this waits for them too.
        """
        deadline = time.monotonic() + timeout
        self.wait_for_sensor_ticks(timeout)
        while True:
            runs = self.runs(limit=200)
            if all(run["status"] in FINISHED for run in runs):
                return runs
            if time.monotonic() > deadline:
                busy = [(r["runId"], r["status"]) for r in runs if r["status"] not in FINISHED]
                raise TimeoutError(f"runs still active after {timeout:.0f}s: {busy}\n{self.log_tail()}")
            time.sleep(1)

    def sensor_ticks(self) -> dict[str, list[dict]]:
        """Recent ticks of every sensor, newest first: status, runIds, skipReason."""
        data = self.graphql(
            """query Sensors($selector: RepositorySelector!) {
                 sensorsOrError(repositorySelector: $selector) { __typename
                   ... on Sensors { results { name sensorState { status
                       ticks(limit: 20) { status runIds skipReason timestamp error { message } } } } } } }""",
            {"selector": {"repositoryLocationName": self.location_name, "repositoryName": self.repository_name}},
        )
        return {s["name"]: s["sensorState"]["ticks"] for s in data["sensorsOrError"]["results"]}

    def run_events(self, run_id: str) -> list[dict]:
        """A run's event log: __typename, message, timestamp (ms), stepKey and error of every event."""
        events: list[dict] = []
        cursor = None
        while True:
            data = self.graphql(
                """query Logs($runId: ID!, $cursor: String) {
                     logsForRun(runId: $runId, afterCursor: $cursor) { __typename
                       ... on EventConnection { cursor hasMore events { __typename
                           ... on MessageEvent { message timestamp stepKey }
                           ... on ErrorEvent { error { message stack causes { message stack } } }
                       } }
                       ... on PythonError { message } } }""",
                {"runId": run_id, "cursor": cursor},
            )
            connection = data["logsForRun"]
            if connection["__typename"] != "EventConnection":
                raise GraphQLError(str(connection))
            events.extend(connection["events"])
            cursor = connection["cursor"]
            if not connection["hasMore"]:
                return events

    def run_log_text(self, run_id: str) -> str:
        """Every message of a run's event log, error messages, stacks and causes included."""
        parts = []
        for event in self.run_events(run_id):
            parts.append(event.get("message") or "")
            error = event.get("error")
            if error:
                parts.append(error["message"] + "".join(error.get("stack") or []))
                for cause in error.get("causes") or []:
                    parts.append(cause["message"] + "".join(cause.get("stack") or []))
        return "\n".join(parts)

    def step_intervals(self, run_id: str) -> list[tuple[float, float, str]]:
        """(start, end, step key) of every step of a run that started, in seconds since the epoch."""
        started: dict[str, float] = {}
        intervals = []
        for event in self.run_events(run_id):
            kind, step = event["__typename"], event.get("stepKey")
            if kind == "ExecutionStepStartEvent":
                started[step] = float(event["timestamp"]) / 1000
            elif kind in ("ExecutionStepSuccessEvent", "ExecutionStepFailureEvent") and step in started:
                intervals.append((started.pop(step), float(event["timestamp"]) / 1000, step))
        return intervals

    def materialize_headless(self, timeout: float = 300) -> None:
        """What `make run` does before serving: `dagster asset materialize -m cdm_assets --select '*'`."""
        result = subprocess.run(
            [str(BIN / "dagster"), "asset", "materialize", "-m", "cdm_assets", "--select", "*"],
            cwd=self.workdir,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(f"headless materialisation failed:\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}")

    def wait_for_sensor_ticks(self, timeout: float = 120) -> dict[str, list[dict]]:
        """Wait until the daemon has finished evaluating every sensor at least once."""
        deadline = time.monotonic() + timeout
        while True:
            ticks = self.sensor_ticks()
            if ticks and all(any(tick["status"] != "STARTED" for tick in sensor) for sensor in ticks.values()):
                return ticks
            if time.monotonic() > deadline:
                unevaluated = sorted(
                    name for name, sensor in ticks.items() if all(tick["status"] == "STARTED" for tick in sensor)
                )
                raise TimeoutError(f"sensors not evaluated after {timeout:.0f}s: {unevaluated}\n{self.log_tail()}")
            time.sleep(1)

    def instance_log_text(self) -> str:
        """The `dagster dev` output plus every captured compute log (run workers' stdout/stderr)."""
        parts = [self.log_text()]
        for path in sorted(self.dagster_home.rglob("*")):
            if path.is_file() and path.suffix in (".out", ".err", ".log"):
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)


def _default_interrupts() -> None:
    """In the child, before exec: take SIGINT/SIGTERM back to their defaults, and ask for a
    SIGTERM if the test process dies without stopping the server.

    A process started from a background job inherits an ignored SIGINT, and
    `dagster dev` maps SIGTERM onto the SIGINT handler: it would then ignore both.
    The death signal follows the *thread* that started the server: start servers
    from the main thread (as pytest fixtures do).
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform == "linux":
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _signal_process(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:  # the group is empty
        pass


def _group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process is still in the process group."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


@contextmanager
def dagster_dev(
    tmp_dir: Path,
    persons: int = 300,
    seed: int = 7,
    sources: Iterable[str] | None = None,
    materialize_first: bool = True,
    instance_yaml: Path = DAGSTER_YAML,
    env: dict[str, str] | None = None,
) -> Iterator[DagsterDev]:
    """Sample data, config, instance and a running `dagster dev` in tmp_dir; always stopped afterwards.

    Like `make run`, everything is materialised headless before the server starts
    (`materialize_first`). Whatever the landing folders hold at start-up, each
    landing sensor's first tick requests a run: `wait_until_idle()` waits for those.
    `instance_yaml` and `env` choose another instance, e.g. `deploy/dagster.yaml` with
    its `DAGSTER_PG_*` variables.
    """
    workdir = tmp_dir / "project"
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = write_sample_project(workdir, persons=persons, seed=seed, sources=sources)
    home = make_dagster_home(tmp_dir / "dagster_home", instance_yaml)
    server = DagsterDev(workdir, config_path, workdir / "cdm.duckdb", home, env)
    if materialize_first:
        server.materialize_headless()
    try:
        yield server.start()
    finally:
        server.stop()
