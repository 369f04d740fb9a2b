"""The operator over https/wss with a private CA under ``dag.test()``, both modes, straight and
through the HTTP CONNECT proxy ``HTTPS_PROXY`` names (``NO_PROXY`` honoured); and each way a
certificate is rejected failing the task at once, with its own advice, despite retries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from connect_proxy import ConnectProxy
from dag_support import load_dags
from tls_certs import authority, server_certificate

from airflow_insight.emulator import Emulator, EmulatorConfig
from airflow_insight.emulator.airflow_connection import airflow_connection_json

DAGS = load_dags("insight_tls_dags")
MODES = ["tt_blocking", "tt_deferrable"]
#: Each rejection: the server certificate to serve, and words of its own advice.
CASES = {
    "wrong CA": ("other", "not signed by a CA this machine trusts"),
    "expired": ("expired", "outside its validity dates"),
    "host-name mismatch": ("elsewhere", "not issued for 127.0.0.1"),
}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Emulator]]]:
    """The private CA's bundle, and an emulator serving each certificate."""
    directory = tmp_path_factory.mktemp("pki")
    ca = authority(directory, "private")
    certificates = {
        "good": server_certificate(directory, ca, "good"),
        "other": server_certificate(directory, authority(directory, "other"), "other"),
        "expired": server_certificate(directory, ca, "expired", expired=True),
        "elsewhere": server_certificate(directory, ca, "elsewhere", hosts=("insight.example",)),
    }
    running = {
        name: Emulator(
            EmulatorConfig(tls_cert_path=str(cert.cert_path), tls_key_path=str(cert.key_path))
        ).start()
        for name, cert in certificates.items()
    }
    yield ca.bundle, running
    for emulator in running.values():
        emulator.stop()


def _connect(monkeypatch: pytest.MonkeyPatch, emulator: Emulator, ca_bundle: Path) -> None:
    extra = {"ca_bundle_path": str(ca_bundle)}
    monkeypatch.setenv(
        "AIRFLOW_CONN_INSIGHT_DEFAULT", airflow_connection_json(emulator.base_url, extra=extra)
    )


@pytest.mark.parametrize("dag_id", MODES)
def test_a_job_over_https_and_wss_with_a_private_ca(
    dag_id: str,
    servers: tuple[Path, dict[str, Emulator]],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    ca_bundle, running = servers
    emulator = running["good"]
    _connect(monkeypatch, emulator, ca_bundle)
    run = getattr(DAGS, dag_id).test()
    output = capfd.readouterr()
    assert run.state == "success", output.out[-3000:]
    (job_id,) = [job for job in list(emulator.hub.jobs) if job.startswith(f"{dag_id}.")]
    # The job was followed over the socket (wss), not only read over REST.
    subscribed = [entry.compute_job_id for entry in emulator.record.of_kind("subscribe")]
    assert job_id in subscribed


@pytest.mark.parametrize("bypass", [False, True], ids=["HTTPS_PROXY", "NO_PROXY"])
@pytest.mark.parametrize("dag_id", MODES)
def test_a_job_through_a_connect_proxy(
    dag_id: str,
    bypass: bool,
    servers: tuple[Path, dict[str, Emulator]],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    ca_bundle, running = servers
    emulator = running["good"]
    _connect(monkeypatch, emulator, ca_bundle)
    for name in ("https_proxy", "http_proxy", "HTTP_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with ConnectProxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1" if bypass else "")
        sockets_before = len(emulator.record.of_kind("ws_open"))
        run = getattr(DAGS, dag_id).test()
        output = capfd.readouterr()
        assert run.state == "success", output.out[-3000:]
        sockets = len(emulator.record.of_kind("ws_open")) - sockets_before
        assert sockets >= 1
        if bypass:
            assert proxy.targets == []
        else:
            # REST's tunnels, and one for each progress socket opened (the worker's or the
            # trigger's): every one to the emulator.
            assert set(proxy.targets) == {f"127.0.0.1:{emulator.port}"}
            assert len(proxy.targets) >= sockets + 1, proxy.targets


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("dag_id", MODES)
def test_a_rejected_certificate_fails_the_task_at_once_with_its_advice(
    dag_id: str,
    case: str,
    servers: tuple[Path, dict[str, Emulator]],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    ca_bundle, running = servers
    which, advice = CASES[case]
    _connect(monkeypatch, running[which], ca_bundle)
    run = getattr(DAGS, dag_id).test()
    output = capfd.readouterr().out
    assert run.state == "failed", output[-3000:]
    assert advice in output and "not retried" in output, output[-3000:]
    (ti,) = run.get_task_instances()
    assert (ti.state, ti.try_number) == ("failed", 1)  # retries=3, none used
