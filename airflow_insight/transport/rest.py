"""The Insight v2 REST client over ``requests``: tokens, compute jobs, run logs, downloads.

This is the one place where ``requests`` exceptions and HTTP error answers become
:mod:`airflow_insight.exceptions` types. It imports nothing from Airflow.

Token lifetime: the client asks for ``token_max_age_seconds`` and, right after minting, reads
``access_token_expiration_time`` from ``GET api/authentication/token``, because the server caps the
lifetime (15 minutes by default, §B2.3) and a token believed to live longer than it does would only
be noticed through 401s. That costs one small request per mint (every ten minutes or so). If the
GET fails or gives nothing usable, the requested lifetime is assumed and the 401 rule still covers
us: any call answered 401 mints a new token and is sent again once. When to mint, which lifetime
counts and the token itself belong to the core's :class:`~airflow_insight.protocol.auth.AuthFlow`;
this client sends the mint request under its lock.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Collection, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from airflow_insight.exceptions import (
    ConfigurationError,
    InsightError,
    JobNotFound,
    LocalProtocolError,
    RemoteProtocolError,
    ServerError,
)
from airflow_insight.protocol.auth import AuthFlow, after_refusal
from airflow_insight.protocol.submit import (
    CREATED_STATUSES,
    Created,
    Fail,
    Found,
    LookUp,
    Send,
    SubmitFlow,
    Wait,
)
from airflow_insight.protocol.submit import Step as SubmitStep
from airflow_insight.protocol.tokens import Token
from airflow_insight.protocol.wire import (
    COMPUTE_JOB_REQUEST_PART,
    COMPUTE_JOBS_PATH,
    CONNECTION_ID_HEADER,
    PAYLOAD_PART,
    TOKEN_PATH,
    V2_JSON,
    V2_OCTET_STREAM,
    V2_PLAIN,
    is_valid_job_id,
)
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport.bodies import BodyLimits, read_body
from airflow_insight.transport.errors import Operation, describe_error_body, error_for_status
from airflow_insight.transport.network import NetworkFailure, display_url, network_failure
from airflow_insight.transport.responses import (
    decode_text,
    expiry_epoch,
    json_object,
    json_or_none,
    token_text,
)
from airflow_insight.transport.retry import (
    RETRYABLE_STATUSES,
    RetryPolicy,
    parse_retry_after,
    wait_before_retry,
)
from airflow_insight.transport.secrets import announce_secret

log = logging.getLogger(__name__)

#: ``Token`` lives in the core; this module re-exports it for its callers.
__all__ = ["InsightRestClient", "Token"]

#: The token may come back as plain text or as a JSON string (§B9 #6).
TOKEN_ACCEPT = f"text/plain, {V2_JSON}"
#: Run logs: the vendor text type first; plain text and JSON (for error bodies) also welcome.
TEXT_ACCEPT = f"{V2_PLAIN}, text/plain, {V2_JSON}"
#: Downloads (results zip, attachments): any binary type, and JSON for error bodies.
BINARY_ACCEPT = f"{V2_OCTET_STREAM}, application/zip, application/octet-stream, {V2_JSON}"

_REDACTED = "[redacted]"


class InsightRestClient:
    """A client for one Insight server; safe to share between threads.

    ``clock`` (monotonic seconds) times the token, ``wall_clock`` (epoch seconds) reads the
    server's expiry and ``Retry-After`` dates, ``sleep`` waits between retries: all injectable so
    tests run without real waiting.
    """

    def __init__(
        self,
        settings: ConnectionSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        retry_policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if settings.verify_tls and settings.ca_bundle_path is not None:
            if not os.path.exists(settings.ca_bundle_path):
                raise ConfigurationError(
                    f"the CA bundle {settings.ca_bundle_path!r} (ca_bundle_path) does not exist;"
                    " fix the path in the connection extras"
                )
            self._verify: bool | str = settings.ca_bundle_path
        else:
            self._verify = settings.verify_tls
        self._settings = settings
        announce_secret(settings.client_secret)
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._policy = retry_policy or RetryPolicy()
        self._rng = rng or random.Random()
        self._timeout = (settings.connect_timeout_seconds, settings.read_timeout_seconds)
        self._session = requests.Session()
        # The token and when to mint one: the core's flow; this client performs the mint.
        self._auth = AuthFlow()
        self._token_lock = threading.Lock()

    # -- tokens -------------------------------------------------------------------------------

    def token(self, *, fresh: bool = False) -> Token:
        """Return the token for a request now, minting one when the flow says so (§A3): none
        yet, refresh due, or ``fresh`` asked for."""
        with self._token_lock:
            token = self._auth.token
            if token is None or self._auth.mint_due(self._clock(), fresh=fresh):
                token = self._mint_locked()
            return token

    def current_token(self) -> Token:
        """Return the cached token, minting a new one when missing or due for refresh."""
        return self.token()

    def refresh_token(self) -> Token:
        """Mint a new token now; REST calls use it from now on."""
        return self.token(fresh=True)

    def _renew_after_401(self, refused: Token) -> Token:
        with self._token_lock:
            token = self._auth.token
            if token is None or self._auth.refused(refused):
                token = self._mint_locked()
            return token

    def _mint_locked(self) -> Token:
        started = self._clock()
        started_wall = self._wall_clock()
        operation = Operation("requesting an Insight access token", is_token=True)
        response = self._call(
            "POST",
            TOKEN_PATH,
            operation,
            accept=TOKEN_ACCEPT,
            json_body=self._token_body(),
            authorized=False,
        )
        value = token_text(response)
        # Before anything (the expiry GET's library logging included) could print it.
        announce_secret(value)
        token = self._auth.minted(
            value,
            started_at=started,
            requested_seconds=float(self._settings.token_max_age_seconds),
            server_seconds=self._server_lifetime(value, started_wall),
        )
        log.info("Minted an Insight access token valid for %.1f s", token.lifetime_seconds)
        return token

    def _server_lifetime(self, value: str, minted_after_wall: float) -> float | None:
        """Ask the server when the new token expires; ``None`` when it cannot tell us.

        Measured from just before the mint request, so the result errs on the long side only by
        the clock difference between us and the server; ``maxAge`` caps it anyway.
        """
        try:
            response = self._send("GET", self._resolve(TOKEN_PATH), headers=_token_info(value))
        except NetworkFailure as failure:
            log.debug("Could not read the token expiry (%s); assuming maxAge", failure.error)
            return None
        expiry = None
        if response.status_code == 200:
            expiry = expiry_epoch(json_or_none(response))
        if expiry is None:
            log.debug("No usable token expiry (HTTP %s); assuming maxAge", response.status_code)
            return None
        remaining = expiry - minted_after_wall
        if remaining <= 0:
            log.warning(
                "The Insight server says the new token has already expired: the clocks of this"
                " machine and the server disagree; assuming the requested lifetime"
            )
            return None
        return remaining

    def _token_body(self) -> dict[str, Any]:
        settings = self._settings
        return {
            "clientId": settings.client_id,
            "secret": settings.client_secret,
            "maxAge": settings.token_max_age_seconds,
        }

    # -- one exchange, as it comes (the connection test) ---------------------------------------

    def token_request_once(self) -> requests.Response:
        """Send the token request once and return the answer as it comes, whatever its status:
        no retry, no redirect followed, nothing cached. A failure below HTTP raises the mapped
        error. For a health check that reads every answer itself."""
        data = json.dumps(self._token_body()).encode("utf-8")
        headers = {"Accept": TOKEN_ACCEPT, "Content-Type": V2_JSON}
        return self._once("POST", headers, data)

    def token_info_once(self, token_value: str) -> requests.Response:
        """Read ``token_value``'s details (``BearerTokenInfo``) once, as :meth:`token_request_once`
        sends the token request."""
        return self._once("GET", _token_info(token_value))

    def _once(
        self, method: str, headers: Mapping[str, str], data: bytes | None = None
    ) -> requests.Response:
        try:
            # A redirect (to a login page, say) would send the request elsewhere: it is an answer.
            url = self._resolve(TOKEN_PATH)
            return self._send(method, url, headers=headers, data=data, follow_redirects=False)
        except NetworkFailure as failure:
            failure.reraise()

    # -- compute jobs -------------------------------------------------------------------------

    def submit_job(
        self,
        request: Mapping[str, Any],
        payload: bytes | None = None,
        connection_id: str | None = None,
    ) -> dict[str, Any]:
        """Create a compute job (``POST api/compute-jobs``) and return its job document.

        Never resent blindly (:mod:`~airflow_insight.protocol.submit` decides, this method
        performs): after a 5xx, 429, timeout or connection failure the job is read back first and
        returned if it exists; only a job not found leads to a new submission, within the retry
        policy's bound (§A8). 409 and 422 raise :class:`~airflow_insight.exceptions.SubmitRejected`
        with ``status_code`` set, except a 409 to a resend when the job is then found: ours.
        """
        job_id = request.get("id")
        if not isinstance(job_id, str) or not is_valid_job_id(job_id):
            raise ConfigurationError(
                f"compute job id {job_id!r} must be 1 to 60 characters of A-Z a-z 0-9 _ . -"
            )
        operation = Operation(
            f"submitting compute job {job_id!r}", compute_job_id=job_id, is_submit=True
        )
        url = self._resolve(COMPUTE_JOBS_PATH)
        headers = {"Accept": V2_JSON}
        if connection_id:
            headers[CONNECTION_ID_HEADER] = connection_id
        request_json = json.dumps(dict(request)).encode("utf-8")

        def post(part_type: str) -> requests.Response:
            files = _multipart(request_json, part_type, payload, job_id)
            return self._send_authorized("POST", url, headers=headers, files=files)

        flow = SubmitFlow(job_id, next_delay=self._next_delay, resend_statuses=RETRYABLE_STATUSES)
        return self._perform_submit(flow, post, operation)

    def _perform_submit(
        self,
        flow: SubmitFlow,
        post: Callable[[str], requests.Response],
        operation: Operation,
    ) -> dict[str, Any]:
        """Perform the submit flow's steps until it ends; the flow decides each next one."""
        step = flow.start()
        failure: NetworkFailure | None = None  # the last send's, to raise chained to its cause
        while True:
            match step:
                case Send():
                    if step.note:
                        log.warning("%s", step.note)
                    try:
                        response = post(step.part_type)
                    except NetworkFailure as exc:
                        failure = exc
                        step = flow.no_answer(exc.error, outcome_unknown=exc.outcome_unknown)
                        continue
                    failure = None
                    step = self._submit_answered(flow, response, operation)
                    if isinstance(step, Created):
                        return self._created_job(response, flow.job_id)
                case LookUp():
                    existing = self._existing_job(flow.job_id)
                    step = flow.missing() if existing is None else flow.found(existing)
                case Wait():
                    self._pause(
                        step.delay_seconds, step.attempt, f"POST /{COMPUTE_JOBS_PATH}", step.why
                    )
                    step = flow.waited()
                case Found():
                    log.info("%s", step.note)
                    return step.document
                case Fail():
                    if failure is not None and step.error is failure.error:
                        failure.reraise()
                    raise step.error
                case Created():  # pragma: no cover - only a Send's answer creates (above)
                    raise LocalProtocolError("a submission was created without an answer")

    def _submit_answered(
        self, flow: SubmitFlow, response: requests.Response, operation: Operation
    ) -> SubmitStep:
        status = response.status_code
        error = None if status in CREATED_STATUSES else self._error_for(response, operation)
        return flow.answered(status, error)

    def _next_delay(self, attempt: int, retry_after_seconds: float | None) -> float | None:
        """The retry policy, for the submit flow: the wait before the next attempt, or None."""
        return wait_before_retry(self._policy, attempt, retry_after_seconds, self._rng)

    def get_job(self, job_id: str) -> dict[str, Any]:
        """Return the job document of ``job_id``; :class:`JobNotFound` when the server has none."""
        operation = Operation(f"reading compute job {job_id!r}", compute_job_id=job_id)
        response = self._call("GET", _job_path(job_id), operation)
        return json_object(response, operation.description)

    def cancel_job(self, job_id: str) -> None:
        """Delete (cancel) the job; a job that is already gone counts as done (§B9 #17)."""
        operation = Operation(f"cancelling compute job {job_id!r}", compute_job_id=job_id)
        self._call("DELETE", _job_path(job_id), operation, ok=(200, 202, 204, 404))

    def get_run_log(self, run_log_url: str, *, compute_job_id: str | None = None) -> str:
        """Return the whole run log as text; ``run_log_url`` may be server-relative (§A1)."""
        operation = Operation("fetching the run log", compute_job_id=compute_job_id)
        response = self._call("GET", run_log_url, operation, accept=TEXT_ACCEPT)
        return decode_text(response)

    def download(self, url: str, *, compute_job_id: str | None = None) -> bytes:
        """Return the bytes at ``url`` (e.g. the results zip); ``url`` may be server-relative."""
        operation = Operation(f"downloading {display_url(url)}", compute_job_id=compute_job_id)
        return self._call("GET", url, operation, accept=BINARY_ACCEPT).content

    def close(self) -> None:
        """Release the HTTP connections."""
        self._session.close()

    def __enter__(self) -> InsightRestClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _existing_job(self, job_id: str) -> dict[str, Any] | None:
        try:
            return self.get_job(job_id)
        except JobNotFound:
            return None

    def _created_job(self, response: requests.Response, job_id: str) -> dict[str, Any]:
        # An empty body (``Prefer: return=minimal``) or an unreadable one: the job exists, read it.
        document = json_or_none(response)
        return document if isinstance(document, dict) else self.get_job(job_id)

    # -- HTTP ---------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path_or_url: str,
        operation: Operation,
        *,
        accept: str = V2_JSON,
        json_body: Mapping[str, Any] | None = None,
        authorized: bool = True,
        ok: Collection[int] = (200,),
    ) -> requests.Response:
        """Send one logical request with retries; return the answer or raise the mapped error."""
        url = self._resolve(path_or_url)
        headers = {"Accept": accept}
        data = None
        if json_body is not None:
            headers["Content-Type"] = V2_JSON
            data = json.dumps(dict(json_body)).encode("utf-8")
        send = self._send_authorized if authorized else self._send
        what = f"{method} {urlsplit(url).path}"
        attempt = 0
        while True:
            attempt += 1
            try:
                response = send(method, url, headers=headers, data=data)
            except NetworkFailure as failure:
                delay = None
                if failure.retryable:
                    delay = wait_before_retry(self._policy, attempt, None, self._rng)
                if delay is None:
                    failure.reraise()
                self._pause(delay, attempt, what, str(failure.error))
                continue
            if response.status_code in ok:
                return response
            error = self._error_for(response, operation)
            if response.status_code in RETRYABLE_STATUSES and isinstance(error, ServerError):
                delay = wait_before_retry(
                    self._policy, attempt, error.retry_after_seconds, self._rng
                )
                if delay is not None:
                    self._pause(delay, attempt, what, f"HTTP {response.status_code}")
                    continue
            raise error

    def _send_authorized(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        data: bytes | None = None,
        files: Any = None,
    ) -> requests.Response:
        """Send with the current token; the 401 rule (:func:`~airflow_insight.protocol.auth.
        after_refusal`) decides whether a refusal gets a fresh token and one more try (§B1.1)."""
        token = self.current_token()
        refusals = 0
        while True:
            bearer = _bearer(headers, token)
            response = self._send(method, url, headers=bearer, data=data, files=files)
            again = after_refusal(refusals) if response.status_code == 401 else None
            if again is None:
                return response
            refusals = again
            log.info("The Insight server refused the access token (401); minting a new one")
            token = self._renew_after_401(token)

    def _send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        data: bytes | None = None,
        files: Any = None,
        follow_redirects: bool = True,
    ) -> requests.Response:
        """One HTTP exchange; ``requests`` exceptions become :class:`NetworkFailure`. The body
        is read within bounds (:mod:`.bodies`): a JSON answer's, or a run log's or download's."""
        started = time.monotonic()
        limits = BodyLimits.for_answer(
            json=headers.get("Accept") in (V2_JSON, TOKEN_ACCEPT),
            read_timeout_seconds=self._timeout[1],
        )
        try:
            response = self._session.request(
                method,
                url,
                headers=dict(headers),
                data=data,
                files=files,
                timeout=self._timeout,
                # Passed on every request: a session-level value loses to REQUESTS_CA_BUNDLE.
                verify=self._verify,
                stream=True,
                allow_redirects=follow_redirects,
            )
            read_body(response, limits, what=f"{method} {display_url(url)}", started=started)
            return response
        except requests.exceptions.RequestException as exc:
            raise network_failure(
                exc,
                base_url=self._settings.base_url,
                method=method,
                url=url,
                connect_timeout_seconds=self._timeout[0],
                read_timeout_seconds=self._timeout[1],
            ) from exc

    def _error_for(self, response: requests.Response, operation: Operation) -> InsightError:
        detail = describe_error_body(response.content)
        retry_after = parse_retry_after(response.headers.get("Retry-After"), self._wall_clock())
        return error_for_status(
            response.status_code,
            self._redact(detail) if detail else None,
            operation,
            retry_after_seconds=retry_after,
            server=self._settings.server_name,
        )

    def _redact(self, text: str) -> str:
        # Defence in depth: a server (or proxy) echoing our request must not leak it into messages.
        secrets = [self._settings.client_secret]
        if self._auth.token is not None:
            secrets.append(self._auth.token.value)
        for secret in secrets:
            if secret:
                text = text.replace(secret, _REDACTED)
        return text

    def _pause(self, delay: float, attempt: int, what: str, why: str) -> None:
        # DEBUG: a follower's outage lines, or the error after the last attempt, say it once.
        log.debug(
            "Insight %s failed (%s); retrying in %.2f s (attempt %d of %d)",
            what,
            why,
            delay,
            attempt + 1,
            self._policy.max_attempts,
        )
        self._sleep(delay)

    def _resolve(self, path_or_url: str) -> str:
        """Resolve against the base URL; refuse to send our token to any other server."""
        url = self._settings.url(path_or_url)
        if _origin(url) != _origin(self._settings.base_url):
            raise RemoteProtocolError(
                f"the Insight server gave the URL {display_url(url)}, which is on another server;"
                " refusing to send credentials there"
            )
        return url


def _token_info(token_value: str) -> dict[str, str]:
    """The headers that read a token's details (``GET api/authentication/token``)."""
    return {"Accept": V2_JSON, "Authorization": f"Bearer {token_value}"}


def _bearer(headers: Mapping[str, str], token: Token) -> dict[str, str]:
    return {**headers, "Authorization": f"Bearer {token.value}"}


def _multipart(
    request_json: bytes, part_type: str, payload: bytes | None, job_id: str
) -> dict[str, tuple[str | None, bytes, str]]:
    """The two parts of a submission (§A8, §B9 #16); the payload's file name ends with .zip."""
    parts: dict[str, tuple[str | None, bytes, str]] = {
        COMPUTE_JOB_REQUEST_PART: (None, request_json, part_type)
    }
    if payload is not None:
        parts[PAYLOAD_PART] = (f"{job_id}.zip", payload, "application/zip")
    return parts


def _job_path(job_id: str) -> str:
    return f"{COMPUTE_JOBS_PATH}/{quote(job_id, safe='')}"


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    default_port = {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), parts.port or default_port
