"""The emulator server: one aiohttp app (REST + WebSocket on one port) on its own loop thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fnmatch
import logging
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any

from aiohttp import hdrs, web

from airflow_insight.emulator import faults as f
from airflow_insight.emulator import rest
from airflow_insight.emulator import web as web_client
from airflow_insight.emulator.airflow_connection import airflow_connection_json
from airflow_insight.emulator.app_keys import HUB_KEY, PREFIX_KEY
from airflow_insight.emulator.callbacks import STOPPED_BY_DELETE
from airflow_insight.emulator.config import EmulatorConfig
from airflow_insight.emulator.connections import handle_socket
from airflow_insight.emulator.error_bodies import ApiError, error_response
from airflow_insight.emulator.hub import Hub
from airflow_insight.emulator.record import Record, token_fingerprint
from airflow_insight.emulator.scripts import JobScript
from airflow_insight.emulator.sockets import CLOSE_GOING_AWAY
from airflow_insight.emulator.tokens import bearer_from_header
from airflow_insight.protocol.wire import (
    COMPUTE_JOB_MESSAGES_PATH,
    COMPUTE_JOBS_PATH,
    CONNECTION_ID_HEADER,
    CURRENT_USER_PATH,
    TOKEN_PATH,
    V2_JSON,
)

_log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

START_TIMEOUT_SECONDS = 10.0
SOCKET_PATH = "/" + COMPUTE_JOB_MESSAGES_PATH


def _relative_path(request: web.Request) -> str:
    prefix = request.app[PREFIX_KEY]
    path = request.path
    return path[len(prefix) :] or "/" if prefix and path.startswith(prefix) else path


def _record_request(hub: Hub, request: web.Request, path: str) -> None:
    headers = {
        name: request.headers[name]
        for name in (hdrs.ACCEPT, hdrs.CONTENT_TYPE, CONNECTION_ID_HEADER, "Prefer")
        if name in request.headers
    }
    token = bearer_from_header(request.headers.get(hdrs.AUTHORIZATION))
    if token is not None:
        headers[hdrs.AUTHORIZATION] = "Bearer " + token_fingerprint(token)
    hub.record.add(
        "http_request",
        {"method": request.method, "path": path, "query": dict(request.query), "headers": headers},
        connection_id=request.headers.get(CONNECTION_ID_HEADER),
    )


def _matcher(request: web.Request, path: str) -> Callable[[f.RestFault], bool]:
    def matches(fault: f.RestFault) -> bool:
        method_ok = fault.method in ("*", request.method)
        return method_ok and fnmatch.fnmatchcase(path, fault.path)

    return matches


async def _apply_delay(hub: Hub, request: web.Request, path: str) -> None:
    """Hold the answer (on the socket path too: a handshake accepted and never answered)."""
    delay = hub.faults.take(f.Delay, match=_matcher(request, path))
    if delay is not None:
        hub.record.add("fault", {"fault": "delay", "path": path, "seconds": delay.seconds})
        await asyncio.sleep(delay.seconds)


async def _hostile_answer(hub: Hub, request: web.Request, path: str) -> web.StreamResponse | None:
    """A 200 answer far too large, or one that trickles, when such a fault matches."""
    matches = _matcher(request, path)
    huge = hub.faults.take(f.HugeBody, match=matches)
    trickle = None if huge is not None else hub.faults.take(f.Trickle, match=matches)
    if huge is None and trickle is None:
        return None
    response = web.StreamResponse(headers={hdrs.CONTENT_TYPE: V2_JSON})
    await response.prepare(request)
    if huge is not None:
        hub.record.add("fault", {"fault": "huge-body", "path": path, "mb": huge.megabytes})
        chunk = b"x" * 2**20  # Streamed a MiB at a time: the emulator never holds the body.
        await response.write(b'{"pad": "')
        for _ in range(int(huge.megabytes)):
            await response.write(chunk)
    elif trickle is not None:
        hub.record.add("fault", {"fault": "trickle", "path": path, "seconds": trickle.seconds})
        for byte in b'{"pad": "' + b"x" * 10_000 + b'"}':
            await response.write(bytes([byte]))
            await asyncio.sleep(trickle.seconds)
    await response.write_eof()
    return response


async def _apply_http_faults(hub: Hub, request: web.Request, path: str) -> None:
    await _apply_delay(hub, request, path)
    error = hub.faults.take(f.HttpError, match=_matcher(request, path))
    if error is not None:
        hub.record.add("fault", {"fault": "http", "path": path, "status": error.status})
        headers: dict[str, str] = {}
        retry_after = error.retry_after_seconds
        if retry_after is None and error.status in (429, 503):
            retry_after = 1
        if retry_after is not None:
            headers[hdrs.RETRY_AFTER] = f"{retry_after:g}"
        raise ApiError(error.status, "error injected by the emulator", headers=headers)


@web.middleware
async def _middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record, inject faults, and turn every error into a v2 error body (§B1.4)."""
    hub = request.app[HUB_KEY]
    path = _relative_path(request)
    _record_request(hub, request, path)
    response: web.StreamResponse
    try:
        if path != SOCKET_PATH:
            await _apply_http_faults(hub, request, path)
        else:
            await _apply_delay(hub, request, path)
        hostile = None if path == SOCKET_PATH else await _hostile_answer(hub, request, path)
        response = hostile if hostile is not None else await handler(request)
    except ApiError as exc:
        response = exc.response()
    except web.HTTPException as exc:
        # aiohttp's own 404/405/413...: same body shape, keeping headers such as Allow.
        headers = {k: v for k, v in exc.headers.items() if k == hdrs.ALLOW}
        response = error_response(exc.status, exc.reason, headers=headers)
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception as exc:
        _log.exception("emulator handler failed")
        response = error_response(500, f"internal emulator error: {type(exc).__name__}")
    hub.record.add(
        "http_response", {"method": request.method, "path": path, "status": response.status}
    )
    return response


def build_app(hub: Hub) -> web.Application:
    """The aiohttp application: every route under the configured path prefix."""
    prefix = hub.config.path_prefix.rstrip("/")
    app = web.Application(middlewares=[_middleware], client_max_size=hub.config.max_body_bytes)
    app[HUB_KEY] = hub
    app[PREFIX_KEY] = prefix
    jobs = f"{prefix}/{COMPUTE_JOBS_PATH}"
    scenario = prefix + "/api/scenarios/{scenario_id}"
    app.router.add_post(f"{prefix}/{TOKEN_PATH}", rest.post_token)
    app.router.add_get(f"{prefix}/{TOKEN_PATH}", rest.get_token)
    app.router.add_get(f"{prefix}/{CURRENT_USER_PATH}", rest.get_current_user)
    app.router.add_post(jobs, rest.post_compute_job)
    app.router.add_get(jobs, rest.list_compute_jobs)
    app.router.add_get(jobs + "/{job_id}", rest.get_compute_job)
    app.router.add_delete(jobs + "/{job_id}", rest.delete_compute_job)
    app.router.add_get(jobs + "/{job_id}/messages/{message_id}/file", rest.get_app_message_file)
    app.router.add_get(scenario + "/run-log", rest.get_run_log)
    app.router.add_get(scenario + "/job-metrics", rest.get_job_metrics)
    app.router.add_get(scenario + "/attachments/{attachment_id}/file", rest.get_attachment)
    app.router.add_get(f"{prefix}{SOCKET_PATH}", handle_socket)
    web_client.add_routes(app, hub, prefix)
    return app


class Emulator:
    """The Insight emulator, serving on its own event loop in a background thread."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.record = Record(self.config.record_limit)
        self.hub = Hub(self.config, self.record)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._pending_expiries: list[f.ExpireTokens] = []

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Emulator:
        """Start serving; returns once the port is listening."""
        if self._thread is not None:
            raise RuntimeError("the emulator is already running")
        started: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._serve, args=(started,), name="insight-emulator", daemon=True
        )
        self._thread.start()
        try:
            self._port = started.result(timeout=START_TIMEOUT_SECONDS)
        except BaseException:
            self._thread.join(timeout=START_TIMEOUT_SECONDS)
            self._thread = None
            raise
        return self

    def _serve(self, started: concurrent.futures.Future[int]) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            port = loop.run_until_complete(self._listen())
        except BaseException as exc:
            started.set_exception(exc)
            loop.close()
            return
        for fault in self._pending_expiries:
            loop.call_later(fault.after_seconds, self.hub.expire_tokens)
        started.set_result(port)
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _listen(self, port: int | None = None) -> int:
        self._runner = web.AppRunner(
            build_app(self.hub), access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(
            self._runner,
            self.config.host,
            self.config.port if port is None else port,
            ssl_context=self._ssl_context(),
        )
        await site.start()
        server = site._server  # aiohttp exposes the bound address only here
        assert isinstance(server, asyncio.Server)
        bound: int = server.sockets[0].getsockname()[1]
        return bound

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.config.tls_cert_path:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.config.tls_cert_path, self.config.tls_key_path)
        return context

    def stop(self) -> None:
        """Close every socket, stop every job and the server; safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10.0)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10.0)
        self._thread = None
        self._loop = None

    async def _shutdown(self) -> None:
        for job in self.hub.jobs.values():
            if job.task is not None:
                job.task.cancel()
            if job.session is not None:
                job.session.interrupt(STOPPED_BY_DELETE)  # no solve thread outlives the emulator
        for task in list(self.hub.background):
            task.cancel()
        closing = [
            connection.link.shut_down(CLOSE_GOING_AWAY, b"emulator stopping")
            for connection in list(self.hub.connections.values())
        ]
        await asyncio.gather(*closing, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()

    def restart(self, down_seconds: float = 1.0) -> None:
        """Restart the server as a crash and a restart would, keeping what its database keeps.

        Every socket is cut (no close frame) and the port stops listening for ``down_seconds``,
        then listens again on the same port. Jobs (which keep running), tokens, rules and faults
        survive, as a real server's stored jobs and signed tokens would.
        """
        loop = self._loop
        if loop is None or self._port is None:
            raise RuntimeError("the emulator is not running")
        done = asyncio.run_coroutine_threadsafe(self._restart(self._port, down_seconds), loop)
        done.result(timeout=down_seconds + 30.0)

    async def _restart(self, port: int, down_seconds: float) -> None:
        self._drop_sockets(None)
        if self._runner is not None:
            await self._runner.cleanup()
        self.record.add("restart", {"down_seconds": down_seconds})
        await asyncio.sleep(down_seconds)
        await self._listen(port)

    def drop_sockets(self, close_code: int | None = None) -> int:
        """Drop every open socket now (abort, or close with ``close_code``); how many."""
        dropped: int = self._call(lambda: self._drop_sockets(close_code))
        return dropped

    def _drop_sockets(self, close_code: int | None) -> int:
        connections = list(self.hub.connections.values())
        for connection in connections:
            connection.drop(close_code)
        return len(connections)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ addresses

    @property
    def port(self) -> int:
        """The TCP port being served."""
        if self._port is None:
            raise RuntimeError("the emulator is not running")
        return self._port

    @property
    def base_url(self) -> str:
        """``http(s)://HOST:PORT`` plus the path prefix, without a trailing slash."""
        scheme = "https" if self.config.tls_cert_path else "http"
        prefix = self.config.path_prefix.rstrip("/")
        return f"{scheme}://{self.config.host}:{self.port}{prefix}"

    def airflow_connection_json(
        self, *, client_secret: str | None = None, extra: Mapping[str, Any] | None = None
    ) -> str:
        """This emulator as an Airflow ``insight`` connection, JSON form of ``AIRFLOW_CONN_<ID>``.

        Logs in with the first configured credentials (the demo pair by default);
        ``client_secret`` overrides the secret, e.g. to make a connection the server refuses.
        """
        client_id, secret = next(iter(self.config.credentials.items()))
        return airflow_connection_json(
            self.base_url,
            client_id=client_id,
            client_secret=secret if client_secret is None else client_secret,
            extra=extra,
        )

    @property
    def websocket_url(self) -> str:
        """The progress WebSocket's URL."""
        return "ws" + self.base_url.removeprefix("http") + SOCKET_PATH

    # ------------------------------------------------------------------ control

    def add_script(self, pattern: str, script: JobScript) -> None:
        """Run jobs whose id matches ``pattern`` (fnmatch) with ``script``; later rules win."""
        self.hub.add_rule(pattern, script)

    def open_gate(self, name: str) -> None:
        """Release every job held by a script's ``hold`` of this name (and all later ones)."""
        self._call(lambda: self.hub.open_gate(name))

    def inject(self, *faults: f.Fault) -> None:
        """Arm faults for every matching request, socket or job (see :mod:`.faults`)."""
        for fault in faults:
            if isinstance(fault, f.ExpireTokens):
                self._expire_tokens_later(fault)
            else:
                self.hub.faults.add(fault)

    def _expire_tokens_later(self, fault: f.ExpireTokens) -> None:
        loop = self._loop
        if loop is None:
            self._pending_expiries.append(fault)
            return
        if fault.after_seconds <= 0:
            self._call(self.hub.expire_tokens)  # done when inject returns
            return
        loop.call_soon_threadsafe(loop.call_later, fault.after_seconds, self.hub.expire_tokens)

    def clear_faults(self) -> None:
        """Disarm every fault armed with :meth:`inject`."""
        self.hub.faults.clear()

    def _call(self, function: Callable[[], Any]) -> Any:
        loop = self._loop
        if loop is None:
            raise RuntimeError("the emulator is not running")

        async def run() -> Any:
            return function()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=10.0)

    def job(self, job_id: str) -> dict[str, Any] | None:
        """A snapshot of the job document as GET would return it, or None."""
        result: dict[str, Any] | None = self._call(
            lambda: None if job_id not in self.hub.jobs else self.hub.jobs[job_id].document()
        )
        return result

    def run_log(self, job_id: str) -> list[str]:
        """A copy of the job's run-log lines so far (empty for an unknown job)."""
        result: list[str] = self._call(
            lambda: list(self.hub.jobs[job_id].log) if job_id in self.hub.jobs else []
        )
        return result

    def connection_ids(self) -> list[str]:
        """The ids of the sockets open now."""
        result: list[str] = self._call(lambda: list(self.hub.connections))
        return result

    def wait_for_status(
        self, job_id: str, statuses: set[str] | frozenset[str], timeout_seconds: float = 10.0
    ) -> dict[str, Any]:
        """Block until the job's status is in ``statuses``; its document, or TimeoutError."""
        deadline = time.monotonic() + timeout_seconds
        while True:
            document = self.job(job_id)
            if document is not None and document["status"] in statuses:
                return document
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id!r} did not reach {sorted(statuses)}")
            time.sleep(0.01)
