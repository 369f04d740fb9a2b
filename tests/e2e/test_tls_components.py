"""The real components (api-server, scheduler, dag-processor, triggerer) against an emulator
serving https/wss with a private CA (``ca_bundle_path``), reached through the HTTP CONNECT proxy
``HTTPS_PROXY`` names, in both modes; and minted tokens redacted in the real task and trigger
logs, which the supervisors render with Airflow's masker.

Each task prints the token its own process minted through ``urllib3``'s logger (as a library's
debug log could): the blocking task after its job, the deferrable task before deferring, and its
trigger (in the triggerer) from a token minted there. Every such line must read ``Bearer ***``.
Slow (about a minute); ``INSIGHT_SKIP_E2E=1`` skips it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from connect_proxy import ConnectProxy
from support import unused_port
from test_real_components import (
    AIRFLOW,
    QUICK,
    _run_log_records,
    _ti_state,
    _trigger_log,
    _trigger_run,
    _wait,
)
from tls_certs import authority, server_certificate

from airflow_insight.emulator import DEMO_CLIENT_SECRET, Emulator, EmulatorConfig

pytestmark = [
    pytest.mark.skipif(os.environ.get("INSIGHT_SKIP_E2E") == "1", reason="INSIGHT_SKIP_E2E=1"),
    pytest.mark.timeout(400),
]

PROXY_VARIABLES = ("https_proxy", "http_proxy", "all_proxy", "no_proxy")
LEAK = "leaked header: Authorization: Bearer "
#: Imported by the DAG file and, by its class path, by the triggerer (on PYTHONPATH).
LEAK_MODULE = """
import asyncio
import logging

from airflow_insight.hooks.insight import InsightHook
from airflow_insight.operators.insight import InsightJobOperator
from airflow_insight.triggers.insight import InsightJobTrigger

LEAK = "LEAK_TEXT"


def leak(token):
    logging.getLogger("urllib3").warning("%s%s", LEAK, token)


class LeakingTrigger(InsightJobTrigger):
    def serialize(self):
        return "e2e_leak.LeakingTrigger", super().serialize()[1]

    async def run(self):
        # A token minted in this triggerer; the connection read on the loop, as triggers must.
        hook = InsightHook(self.insight_conn_id)
        await hook.aget_settings()
        leak(await asyncio.to_thread(lambda: hook.get_rest_client().current_token().value))
        async for event in super().run():
            yield event


class LeakingOperator(InsightJobOperator):
    def execute(self, context):
        result = super().execute(context)
        leak(self.hook.get_rest_client().current_token().value)
        return result

    def defer(self, *, trigger, **rest):
        leak(self.hook.get_rest_client().current_token().value)
        super().defer(trigger=LeakingTrigger(**trigger.serialize()[1]), **rest)
""".replace("LEAK_TEXT", LEAK)
DAG_FILE = """
import datetime
from airflow.sdk import dag
from e2e_leak import LeakingOperator

for name, deferrable in (("tls_blocking", False), ("tls_deferrable", True)):
    @dag(dag_id=name, schedule=None, start_date=datetime.datetime(2026, 1, 1), catchup=False)
    def _dag():
        LeakingOperator(task_id="solve", deferrable=deferrable, silence_limit_seconds=5.0,
                        execution_timeout=datetime.timedelta(minutes=5))
    globals()[name] = _dag()
"""


Bed = tuple[Emulator, ConnectProxy, str, dict[str, str], Path]


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    """A TLS emulator, a CONNECT proxy to it and the four components; yields (emulator, proxy,
    api URL, auth headers, home)."""
    home = tmp_path_factory.mktemp("e2e-tls") / "airflow"
    for folder in ("dags", "pylib", "pki"):
        (home / folder).mkdir(parents=True)
    ca = authority(home / "pki", "private")
    served = server_certificate(home / "pki", ca, "insight")
    emulator = Emulator(
        EmulatorConfig(tls_cert_path=str(served.cert_path), tls_key_path=str(served.key_path))
    ).start()
    emulator.add_script("tls_*", QUICK)
    (home / "pylib" / "e2e_leak.py").write_text(LEAK_MODULE)
    (home / "dags" / "e2e_tls_dags.py").write_text(DAG_FILE)
    proxy = ConnectProxy().__enter__()
    port = unused_port()
    inherited = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARIABLES}
    env = {
        **inherited,
        # Only the Insight server is https: Airflow's own calls (http) do not use this proxy.
        "HTTPS_PROXY": proxy.url,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(home / "pylib"), os.environ.get("PYTHONPATH")])
        ),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API_AUTH__JWT_SECRET": "e2e-test-jwt-secret-" + "x" * 32,
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(unused_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(unused_port()),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW_CONN_INSIGHT_DEFAULT": emulator.airflow_connection_json(
            extra={"ca_bundle_path": str(ca.bundle)}
        ),
    }
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True)
    processes = [
        subprocess.Popen(
            [AIRFLOW, *command],
            env=env,
            start_new_session=True,
            stdout=(home / f"{command[0]}.out").open("wb"),
            stderr=subprocess.STDOUT,
        )
        for command in (
            ["api-server", "--port", str(port), "--workers", "1"],
            ["scheduler"],
            ["dag-processor"],
            ["triggerer"],
        )
    ]
    api = f"http://127.0.0.1:{port}"
    try:
        _wait(
            "the api-server", lambda: requests.get(f"{api}/api/v2/monitor/health", timeout=2).ok, 90
        )
        token = requests.get(f"{api}/auth/token", timeout=5).json()["access_token"]
        yield emulator, proxy, api, {"Authorization": f"Bearer {token}"}, home
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in processes:
            with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(process.pid, signal.SIGKILL)
        proxy.close()
        emulator.stop()


def _attempt_logs(home: Path, dag_id: str) -> str:
    """The task's attempt logs (the worker's part), without the trigger's streams."""
    return "\n".join(
        path.read_text(errors="replace")
        for path in sorted((home / "logs").rglob("attempt=*.log"))
        if f"dag_id={dag_id}" in path.parts
    )


def _leaked(log: str) -> list[str]:
    return [line for line in log.splitlines() if LEAK in line]


@pytest.mark.parametrize("dag_id", ["tls_blocking", "tls_deferrable"])
def test_a_job_over_tls_through_a_proxy_and_tokens_redacted_in_real_logs(
    bed: Bed, dag_id: str
) -> None:
    emulator, proxy, api, headers, home = bed
    assert emulator.base_url.startswith("https://")
    tunnels, sockets = len(proxy.targets), len(emulator.record.of_kind("ws_open"))
    run_id = _trigger_run(api, headers, dag_id)
    state = _wait(
        f"{dag_id} to end",
        lambda: (
            _ti_state(api, headers, dag_id, run_id) in ("success", "failed", "upstream_failed")
            and _ti_state(api, headers, dag_id, run_id)
        ),
        240,
    )
    assert state == "success", (home / "scheduler.out").read_text()[-3000:]
    # REST and every progress socket (the worker's, or the triggerer's) went through the proxy.
    opened = len(emulator.record.of_kind("ws_open")) - sockets
    assert opened >= 1
    assert len(proxy.targets) - tunnels >= opened + 1, proxy.targets
    assert set(proxy.targets) == {f"127.0.0.1:{emulator.port}"}
    job_ids = {e.compute_job_id for e in emulator.record.of_kind("subscribe")}
    (job_id,) = [job for job in job_ids if job and job.startswith(f"{dag_id}.")]
    task_log = _attempt_logs(home, dag_id)
    forwarded = task_log
    leaked = _leaked(task_log)
    if dag_id == "tls_deferrable":
        trigger_log = _trigger_log(home, dag_id, "solve")
        assert _run_log_records(trigger_log)  # followed over wss by the triggerer
        forwarded += trigger_log
        leaked_by_trigger = _leaked(trigger_log)
        assert len(leaked_by_trigger) == 1, trigger_log[-3000:]
        leaked += leaked_by_trigger
    for line in emulator.run_log(job_id):
        assert line in forwarded
    assert len(leaked) >= 1, task_log[-3000:]
    for line in leaked:
        assert f"{LEAK}***" in line, line
    secrets = (DEMO_CLIENT_SECRET, *list(emulator.hub.tokens._tokens))
    # The task and trigger logs (what the UI shows). Not the components' console: Airflow 3.3's
    # LocalExecutor also copies task logs to the scheduler's stdout without its masker.
    for path in (home / "logs").rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            for secret in secrets:
                assert secret not in text, f"{path.name}: {text[text.find(secret) - 300 :][:400]}"
