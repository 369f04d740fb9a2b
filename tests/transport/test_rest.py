"""InsightRestClient against the real emulator on 127.0.0.1 (port 0), faults injected there."""

from __future__ import annotations

import datetime
import io
import ipaddress
import logging
import select
import socket
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from support import StartEmulator

from airflow_insight.emulator import Emulator, EmulatorConfig, JobScript, faults
from airflow_insight.exceptions import (
    AuthenticationError,
    ConfigurationError,
    InsightError,
    InsightTimeout,
    JobNotFound,
    PermissionDenied,
    RemoteProtocolError,
    ServerError,
    SubmitRejected,
    TransportError,
)
from airflow_insight.protocol.wire import V2_JSON
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport.responses import expiry_epoch
from airflow_insight.transport.rest import InsightRestClient
from airflow_insight.transport.retry import RetryPolicy

CLIENT_ID = "test-client"
SECRET = "test-secret-Kq8vZ"
JOBS = "/api/compute-jobs"
TOKEN = "/api/authentication/token"
FAST = JobScript(
    name="fast",
    queued_seconds=0.01,
    status_step_seconds=0.01,
    log_lines=5,
    lines_per_second=0,
    completing_seconds=0.01,
)
SLOW = JobScript(name="slow", queued_seconds=30.0)


class Sleeps:
    """A ``sleep`` that records the delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """This module's own credentials and a job that ends at once; ``start_emulator`` and
    ``emulator`` (the shared fixtures) start from it."""
    return EmulatorConfig(credentials={CLIENT_ID: SECRET}, default_script=FAST)


def settings_for(url: str, **overrides: Any) -> ConnectionSettings:
    options: dict[str, Any] = {
        "base_url": url,
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "connect_timeout_seconds": 2.0,
        "read_timeout_seconds": 5.0,
        **overrides,
    }
    return ConnectionSettings(**options)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_client(sleeps: Sleeps) -> Iterator[Callable[..., InsightRestClient]]:
    clients: list[InsightRestClient] = []

    def make(
        url: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        **overrides: Any,
    ) -> Any:
        policy = RetryPolicy(max_attempts=5, base_delay_seconds=0.01, max_delay_seconds=0.05)
        client = InsightRestClient(
            settings_for(url, **overrides),
            clock=clock,
            wall_clock=wall_clock,
            sleep=sleeps,
            retry_policy=policy,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def requests_to(emulator: Emulator, method: str, path: str) -> list[Any]:
    return list(emulator.record.requests(method=method, path=path))


def job_request(job_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": job_id, "computeJobType": "SOLVER", "runLogMessages": False, **fields}


def small_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("problem.lp", "minimize\n obj: x\nend\n")
    return buffer.getvalue()


def wait_until_terminal(client: InsightRestClient, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        document = client.get_job(job_id)
        if document["status"] in ("COMPLETED", "FAILED", "CANCELLED", "DELETED"):
            return document
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} did not finish")


# -- tokens -----------------------------------------------------------------------------------


def test_token_is_minted_once_and_cached(emulator: Emulator, make_client: Any) -> None:
    client = make_client(emulator.base_url)
    first = client.current_token()
    assert client.current_token() is first
    with pytest.raises(JobNotFound):
        client.get_job("not-there")
    assert client.current_token() is first
    assert len(requests_to(emulator, "POST", TOKEN)) == 1
    assert first.value not in repr(first)
    assert first.lifetime_seconds == pytest.approx(900, abs=1)


@pytest.mark.parametrize("form", ["text", "json"])
def test_token_as_text_or_json_string(
    start_emulator: StartEmulator, make_client: Any, form: str
) -> None:
    emulator = start_emulator(token_response=form)
    client = make_client(emulator.base_url)
    token = client.current_token()
    assert token.value and '"' not in token.value and token.value == token.value.strip()
    with pytest.raises(JobNotFound):  # the token works for a REST call (404 is past auth)
        client.get_job("nope")


def test_server_cap_is_learned_and_token_refreshed_at_two_thirds(
    start_emulator: StartEmulator, make_client: Any
) -> None:
    emulator = start_emulator(token_max_age_cap_seconds=3.0)
    clock = Clock()
    # The client's wall clock stands still, so the lifetime it learns is the server's stated
    # expiry less this moment, whatever the machine's load made the mint take.
    minted_after = time.time()
    client = make_client(
        emulator.base_url, clock=clock, wall_clock=lambda: minted_after, token_max_age_seconds=900
    )
    first = client.current_token()
    server_expiry = _server_expiry(emulator, first.value)
    assert server_expiry < minted_after + 900  # the server capped it
    # The server's expiry, not the 900 s asked for.
    assert first.lifetime_seconds == pytest.approx(server_expiry - minted_after)
    assert first.expires_at == pytest.approx(1000.0 + first.lifetime_seconds)
    clock.now += first.lifetime_seconds * 2 / 3 - 0.05
    assert client.current_token() is first
    clock.now += 0.1
    second = client.current_token()
    assert second is not first and second.value != first.value
    assert len(requests_to(emulator, "POST", TOKEN)) == 2


def _server_expiry(emulator: Emulator, token: str) -> float:
    """When the server says ``token`` expires (epoch seconds), asked as the client asks."""
    response = requests.get(
        emulator.base_url + TOKEN,
        headers={"Accept": V2_JSON, "Authorization": f"Bearer {token}"},
        timeout=5,
    )
    expiry = expiry_epoch(response.json())
    assert expiry is not None, response.text
    return expiry


def test_refresh_token_mints_a_token_rest_then_uses(emulator: Emulator, make_client: Any) -> None:
    client = make_client(emulator.base_url)
    first = client.current_token()
    second = client.refresh_token()
    assert second.value != first.value
    assert client.current_token() is second


def test_401_remints_once_and_retries(emulator: Emulator, make_client: Any) -> None:
    client = make_client(emulator.base_url)
    client.submit_job(job_request("remint-1"))
    first = client.current_token()
    emulator.inject(faults.ExpireTokens())
    assert client.get_job("remint-1")["id"] == "remint-1"
    assert client.current_token() is not first
    assert len(requests_to(emulator, "POST", TOKEN)) == 2


def test_401_after_a_fresh_token_is_an_authentication_error(
    emulator: Emulator, make_client: Any
) -> None:
    client = make_client(emulator.base_url)
    client.current_token()
    emulator.inject(faults.HttpError(method="GET", path=f"{JOBS}/*", status=401, times=2))
    with pytest.raises(AuthenticationError, match="check the client id"):
        client.get_job("any")
    assert len(requests_to(emulator, "POST", TOKEN)) == 2  # re-minted exactly once
    assert len(requests_to(emulator, "GET", f"{JOBS}/any")) == 2


def test_bad_credentials_are_an_authentication_error(emulator: Emulator, sleeps: Sleeps) -> None:
    client = InsightRestClient(
        ConnectionSettings(emulator.base_url, CLIENT_ID, "wrong-secret-123"), sleep=sleeps
    )
    with pytest.raises(AuthenticationError) as caught:
        client.get_job("any")
    assert "check the client id (login) and secret (password)" in str(caught.value)
    assert "wrong-secret-123" not in str(caught.value)
    assert sleeps.delays == []  # not retried
    client.close()


def test_missing_token_endpoint_points_at_the_url(emulator: Emulator, make_client: Any) -> None:
    client = make_client(emulator.base_url + "/wrong-prefix")
    with pytest.raises(ConfigurationError, match="path prefix") as caught:
        client.current_token()
    assert "404" in str(caught.value)


# -- error mapping and retries ----------------------------------------------------------------


def test_403_is_permission_denied_and_not_retried(
    emulator: Emulator, make_client: Any, sleeps: Sleeps
) -> None:
    client = make_client(emulator.base_url)
    emulator.inject(faults.HttpError(method="GET", path=f"{JOBS}/*", status=403))
    with pytest.raises(PermissionDenied, match="administrator"):
        client.get_job("x")
    assert sleeps.delays == []


def test_500_is_a_server_error_and_not_retried(
    emulator: Emulator, make_client: Any, sleeps: Sleeps
) -> None:
    client = make_client(emulator.base_url)
    emulator.inject(faults.HttpError(method="GET", path=f"{JOBS}/*", status=500))
    with pytest.raises(ServerError) as caught:
        client.get_job("x")
    assert caught.value.status_code == 500
    assert sleeps.delays == []


def test_429_retry_after_is_honoured(emulator: Emulator, make_client: Any, sleeps: Sleeps) -> None:
    client = make_client(emulator.base_url)
    client.submit_job(job_request("busy-1"))
    emulator.inject(
        faults.HttpError(method="GET", path=f"{JOBS}/*", status=429, times=2, retry_after_seconds=2)
    )
    assert client.get_job("busy-1")["id"] == "busy-1"
    assert sleeps.delays == [2.0, 2.0]
    assert len(requests_to(emulator, "GET", f"{JOBS}/busy-1")) == 3


def test_502_is_retried_with_growing_backoff_then_given_up(
    emulator: Emulator, make_client: Any, sleeps: Sleeps
) -> None:
    # The emulator adds Retry-After only to 429 and 503; a 502 shows the backoff schedule.
    client = make_client(emulator.base_url)
    emulator.inject(faults.HttpError(method="GET", path=f"{JOBS}/*", status=502, times=None))
    with pytest.raises(ServerError) as caught:
        client.get_job("x")
    assert caught.value.status_code == 502
    assert len(sleeps.delays) == 4  # five attempts in all
    assert len(requests_to(emulator, "GET", f"{JOBS}/x")) == 5
    assert 0.005 <= sleeps.delays[0] <= 0.01 and sleeps.delays[-1] <= 0.05


def test_too_long_retry_after_gives_the_error_back(
    emulator: Emulator, make_client: Any, sleeps: Sleeps
) -> None:
    client = make_client(emulator.base_url)
    emulator.inject(
        faults.HttpError(method="GET", path=f"{JOBS}/*", status=503, retry_after_seconds=3600)
    )
    with pytest.raises(ServerError) as caught:
        client.get_job("x")
    assert caught.value.retry_after_seconds == 3600
    assert sleeps.delays == []


def test_connection_refused_is_retried_then_a_transport_error(
    make_client: Any, sleeps: Sleeps
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = make_client(f"http://127.0.0.1:{port}")
    with pytest.raises(TransportError) as caught:
        client.current_token()
    assert "check the host and port" in str(caught.value)
    assert len(sleeps.delays) == 4


def test_read_timeout_is_an_insight_timeout(emulator: Emulator, make_client: Any) -> None:
    client = make_client(emulator.base_url, read_timeout_seconds=0.2)
    client.current_token()
    emulator.inject(faults.Delay(method="GET", path=f"{JOBS}/*", seconds=1.0))
    with pytest.raises(InsightTimeout, match="read_timeout_seconds"):
        client.get_job("slow")


# -- compute jobs -----------------------------------------------------------------------------


def test_submit_get_run_log_download_and_cancel(
    start_emulator: StartEmulator, make_client: Any
) -> None:
    emulator = start_emulator(path_prefix="/insight")
    assert emulator.base_url.endswith("/insight")
    client = make_client(emulator.base_url)
    document = client.submit_job(job_request("full-1"), payload=small_zip())
    assert document["id"] == "full-1"
    done = wait_until_terminal(client, "full-1")
    assert done["status"] == "COMPLETED"
    # Server-relative URLs come without the prefix; the client keeps it (§A1).
    assert done["runLogUrl"].startswith("/api/")
    log_text = client.get_run_log(done["runLogUrl"], compute_job_id="full-1")
    assert "run-log line 4" in log_text
    results = client.download(done["resultUrl"], compute_job_id="full-1")
    assert results[:2] == b"PK"
    client.cancel_job("full-1")
    with pytest.raises(JobNotFound) as caught:
        client.get_job("full-1")
    assert caught.value.compute_job_id == "full-1"
    client.cancel_job("full-1")  # already gone: fine


def test_submit_sends_the_connection_id_header(emulator: Emulator, make_client: Any) -> None:
    client = make_client(emulator.base_url)
    client.submit_job(job_request("hdr-1"), connection_id="conn-abc")
    (request,) = requests_to(emulator, "POST", JOBS)
    assert request.connection_id == "conn-abc"


def test_cancel_running_job(start_emulator: StartEmulator, make_client: Any) -> None:
    emulator = start_emulator(default_script=SLOW)
    client = make_client(emulator.base_url)
    client.submit_job(job_request("run-1"))
    client.cancel_job("run-1")
    assert wait_until_terminal(client, "run-1")["status"] == "CANCELLED"


def test_submit_after_503_reads_the_job_then_submits_exactly_once_more(
    emulator: Emulator, make_client: Any, sleeps: Sleeps
) -> None:
    client = make_client(emulator.base_url)
    emulator.inject(faults.HttpError(method="POST", path=JOBS, status=503))
    document = client.submit_job(job_request("after-503"))
    assert document["id"] == "after-503"
    assert len(requests_to(emulator, "POST", JOBS)) == 2
    assert len(requests_to(emulator, "GET", f"{JOBS}/after-503")) >= 1
    assert emulator.job("after-503") is not None
    assert len(sleeps.delays) == 1


def test_submit_whose_request_timed_out_is_checked_then_sent_again(
    emulator: Emulator, make_client: Any
) -> None:
    # The emulator holds the POST past the read timeout; the job was not created, so the GET
    # answers 404 and the client submits again: one job in the end, no 409.
    client = make_client(emulator.base_url, read_timeout_seconds=0.3)
    client.current_token()
    emulator.inject(faults.Delay(method="POST", path=JOBS, seconds=0.6))
    document = client.submit_job(job_request("slow-post"))
    assert document["id"] == "slow-post"
    assert len(requests_to(emulator, "POST", JOBS)) == 2
    assert len(requests_to(emulator, "GET", f"{JOBS}/slow-post")) == 1


class RequestHoldingProxy:
    """A TCP proxy in front of the emulator that holds the first submission until released.

    It stands in for a slow proxy or network: the client's request times out, the job is not
    there yet when the client reads it back, and only afterwards does the held request reach the
    server and create the job.
    """

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.release = threading.Event()
        self.delivered = threading.Event()
        self._holding = threading.Lock()
        self._held_one = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _hold_this_one(self, data: bytes) -> bool:
        with self._holding:
            if self._held_one or not data.startswith(b"POST /api/compute-jobs "):
                return False
            self._held_one = True
            return True

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self._upstream_port))
        held: bytearray | None = None
        with client, upstream:
            while held is None or not self.release.is_set():
                ready, _, _ = select.select([client, upstream], [], [], 0.05)
                for side in ready:
                    data = side.recv(65536)
                    if not data and held is None:
                        return
                    if side is upstream:
                        client.sendall(data)
                    elif held is None and self._hold_this_one(data):
                        held = bytearray(data)
                    elif held is not None:
                        held += data
                    else:
                        upstream.sendall(data)
        self._deliver(bytes(held))

    def _deliver(self, request: bytes) -> None:
        with socket.create_connection(("127.0.0.1", self._upstream_port), timeout=5.0) as upstream:
            upstream.sendall(request)
            upstream.recv(65536)  # any answer means the server has handled it: the job exists
        self.delivered.set()

    def close(self) -> None:
        self._listener.close()


def test_409_to_a_resend_returns_the_job_our_first_request_created(
    emulator: Emulator, sleeps: Sleeps
) -> None:
    # The first POST is held past the read timeout; the GET finds no job yet; while the client
    # waits to resend, the held POST creates the job, so the resend gets 409: the job is ours.
    port = int(emulator.base_url.rsplit(":", 1)[1])
    proxy = RequestHoldingProxy(port)

    def sleep_then_release(seconds: float) -> None:
        sleeps(seconds)
        proxy.release.set()
        assert proxy.delivered.wait(5.0)

    policy = RetryPolicy(max_attempts=5, base_delay_seconds=0.01, max_delay_seconds=0.05)
    settings = settings_for(f"http://127.0.0.1:{proxy.port}", read_timeout_seconds=0.3)
    try:
        with InsightRestClient(settings, sleep=sleep_then_release, retry_policy=policy) as client:
            document = client.submit_job(job_request("held-post"))
    finally:
        proxy.close()
    assert document["id"] == "held-post"
    assert len(requests_to(emulator, "POST", JOBS)) == 2
    assert len(sleeps.delays) == 1


class AnswerDroppingProxy:
    """A TCP proxy in front of the emulator that swallows the answer to the first submission.

    The emulator cannot lose a response after creating the job, so this stands in for the proxy
    or network that does: the job exists, but the client sees its connection close.
    """

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.dropped = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self._upstream_port))
        submitting = False
        with client, upstream:
            while True:
                ready, _, _ = select.select([client, upstream], [], [], 5.0)
                if not ready:
                    return
                for side in ready:
                    data = side.recv(65536)
                    if not data:
                        return
                    if side is client:
                        if data[:1].isalpha():  # a request line starts a new request
                            submitting = data.startswith(b"POST /api/compute-jobs ")
                        upstream.sendall(data)
                    elif submitting and self.dropped == 0:
                        self.dropped += 1
                        return  # the job exists upstream; the client never hears of it
                    else:
                        client.sendall(data)

    def close(self) -> None:
        self._listener.close()


def test_submit_that_went_through_is_found_not_repeated(
    emulator: Emulator, make_client: Any
) -> None:
    port = int(emulator.base_url.rsplit(":", 1)[1])
    proxy = AnswerDroppingProxy(port)
    try:
        client = make_client(f"http://127.0.0.1:{proxy.port}")
        document = client.submit_job(job_request("lost-answer"))
    finally:
        proxy.close()
    assert proxy.dropped == 1
    assert document["id"] == "lost-answer"
    assert len(requests_to(emulator, "POST", JOBS)) == 1  # found by GET, not sent again
    assert len(requests_to(emulator, "GET", f"{JOBS}/lost-answer")) == 1


def test_submit_gives_up_after_bounded_503s(
    emulator: Emulator, make_client: Any, sleeps: Sleeps
) -> None:
    client = make_client(emulator.base_url)
    emulator.inject(faults.HttpError(method="POST", path=JOBS, status=503, times=None))
    with pytest.raises(ServerError):
        client.submit_job(job_request("never"))
    assert len(requests_to(emulator, "POST", JOBS)) == 5
    assert emulator.job("never") is None


def test_submit_after_500_reads_the_job_but_does_not_resend(
    emulator: Emulator, make_client: Any, sleeps: Sleeps
) -> None:
    client = make_client(emulator.base_url)
    emulator.inject(faults.HttpError(method="POST", path=JOBS, status=500))
    with pytest.raises(ServerError) as caught:
        client.submit_job(job_request("after-500"))
    assert caught.value.status_code == 500
    assert len(requests_to(emulator, "POST", JOBS)) == 1
    assert len(requests_to(emulator, "GET", f"{JOBS}/after-500")) == 1
    assert sleeps.delays == []


def test_duplicate_id_is_409(emulator: Emulator, make_client: Any, sleeps: Sleeps) -> None:
    client = make_client(emulator.base_url)
    client.submit_job(job_request("dup-1"))
    with pytest.raises(SubmitRejected, match="already exists") as caught:
        client.submit_job(job_request("dup-1"))
    assert caught.value.status_code == 409
    assert sleeps.delays == []


def test_invalid_request_is_422(emulator: Emulator, make_client: Any) -> None:
    client = make_client(emulator.base_url)
    request = job_request("bad-1", execution={"executionService": "NO-SUCH-SERVICE"})
    with pytest.raises(SubmitRejected, match="invalid") as caught:
        client.submit_job(request)
    assert caught.value.status_code == 422
    assert emulator.job("bad-1") is None


def test_injected_409_and_422_faults(emulator: Emulator, make_client: Any) -> None:
    client = make_client(emulator.base_url)
    for status in (409, 422):
        emulator.inject(faults.HttpError(method="POST", path=JOBS, status=status))
        with pytest.raises(SubmitRejected) as caught:
            client.submit_job(job_request(f"fault-{status}"))
        assert caught.value.status_code == status


def test_415_on_the_request_part_falls_back_to_application_json(
    emulator: Emulator, make_client: Any
) -> None:
    client = make_client(emulator.base_url)
    part_types: list[bytes] = []

    def note_part_type(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        body = response.request.body
        if isinstance(body, bytes) and b'name="computeJobRequest"' in body:
            part_types.append(body.split(b"Content-Type: ", 1)[1].split(b"\r\n", 1)[0])

    client._session.hooks["response"].append(note_part_type)  # observe what went on the wire
    emulator.inject(faults.HttpError(method="POST", path=JOBS, status=415))
    assert client.submit_job(job_request("fallback-1"))["id"] == "fallback-1"
    assert len(requests_to(emulator, "POST", JOBS)) == 2
    assert part_types == [b"application/vnd.com.fico.xpress.insight.v2+json", b"application/json"]


def test_invalid_job_id_is_refused_before_sending(emulator: Emulator, make_client: Any) -> None:
    client = make_client(emulator.base_url)
    with pytest.raises(ConfigurationError, match="1 to 60 characters"):
        client.submit_job(job_request("bad id!"))
    assert requests_to(emulator, "POST", JOBS) == []


def test_urls_on_another_server_get_no_token(emulator: Emulator, make_client: Any) -> None:
    client = make_client(emulator.base_url)
    with pytest.raises(RemoteProtocolError, match="another server"):
        client.get_run_log("http://203.0.113.9/api/scenarios/x/run-log")


# -- TLS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA) and its key."""
    # Airflow depends on cryptography, so it is always here: no skip that could hide these tests.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "airflow-insight test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_emulator(start_emulator: StartEmulator, certificate: tuple[Path, Path]) -> Emulator:
    cert_path, key_path = certificate
    emulator = start_emulator(tls_cert_path=str(cert_path), tls_key_path=str(key_path))
    assert emulator.base_url.startswith("https://")
    return emulator


def test_tls_with_the_ca_bundle(
    tls_emulator: Emulator, make_client: Any, certificate: tuple[Path, Path]
) -> None:
    client = make_client(tls_emulator.base_url, ca_bundle_path=str(certificate[0]))
    assert client.submit_job(job_request("tls-1"))["id"] == "tls-1"


def test_tls_without_the_ca_bundle_is_a_clear_transport_error(
    tls_emulator: Emulator, make_client: Any, sleeps: Sleeps
) -> None:
    client = make_client(tls_emulator.base_url)
    with pytest.raises(TransportError) as caught:
        client.current_token()
    message = str(caught.value)
    assert "TLS" in message and "certificate" in message and "ca_bundle_path" in message
    assert sleeps.delays == []  # a certificate problem does not go away by retrying


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_verification_can_be_switched_off(tls_emulator: Emulator, make_client: Any) -> None:
    client = make_client(tls_emulator.base_url, verify_tls=False)
    assert client.submit_job(job_request("tls-off"))["id"] == "tls-off"


def test_missing_ca_bundle_is_a_configuration_error() -> None:
    settings = settings_for("https://127.0.0.1:1", ca_bundle_path="/no/such/bundle.pem")
    with pytest.raises(ConfigurationError, match="ca_bundle_path"):
        InsightRestClient(settings)


# -- secrets ----------------------------------------------------------------------------------


def test_secrets_and_tokens_never_reach_messages_or_logs(
    emulator: Emulator, make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(emulator.base_url)
    tokens = [client.current_token().value]
    messages: list[str] = []
    emulator.inject(faults.ExpireTokens())
    client.submit_job(job_request("secret-1"))
    tokens.append(client.current_token().value)
    for status in (401, 403, 409, 422, 429, 500, 503):
        emulator.inject(faults.HttpError(method="GET", path=f"{JOBS}/*", status=status, times=9))
        try:
            client.get_job("secret-1")
        except InsightError as exc:
            messages.append(str(exc))
        tokens.append(client.current_token().value)
    bad = InsightRestClient(settings_for(emulator.base_url, client_secret="other-secret-X"))
    with pytest.raises(AuthenticationError) as caught:
        bad.current_token()
    messages.append(str(caught.value))
    bad.close()
    assert len(messages) == 8
    for text in [*messages, caplog.text]:
        for secret in [SECRET, "other-secret-X", *tokens]:
            assert secret not in text
