"""REST v2 handlers: tokens, users, compute jobs and the scenario-backed downloads (§B2, §B3).

Media types (§B1.2): in strict mode JSON endpoints need ``Accept`` to name the v2 vendor type
explicitly (a bare ``*/*`` is refused with 406, since Insight calls the vendor type mandatory);
downloads (run log, zips) also take wildcards, because the documentation does not say which type
a client must ask for there. Bodies must be sent with the vendor type (415 otherwise); the
``computeJobRequest`` part may also be ``application/json`` (§A8).
"""

from __future__ import annotations

import asyncio
import datetime
import io
import json
import uuid
import zipfile
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, hdrs, web

from airflow_insight.emulator.app_keys import HUB_KEY, PREFIX_KEY
from airflow_insight.emulator.error_bodies import (
    DOCUMENT_NOT_FOUND,
    FILE_TOO_LARGE,
    INVALID_VALUE,
    ApiError,
    detail,
)
from airflow_insight.emulator.hub import Hub
from airflow_insight.emulator.jobs import Job
from airflow_insight.emulator.record import token_fingerprint
from airflow_insight.emulator.solving import refusal
from airflow_insight.emulator.timeline import cancel_job, run_job
from airflow_insight.emulator.tokens import Token, bearer_from_header, iso_utc
from airflow_insight.emulator.validation import validate_request
from airflow_insight.protocol.wire import (
    COMPUTE_JOB_REQUEST_PART,
    CONNECTION_ID_HEADER,
    PAYLOAD_PART,
    V2_JSON,
    V2_OCTET_STREAM,
    V2_PLAIN,
)

JSON_PART_TYPES = (V2_JSON, "application/json")
TEXT_TYPES = (V2_PLAIN, "text/plain")
ZIP_TYPES = (V2_OCTET_STREAM, "application/zip", "application/octet-stream")


# --------------------------------------------------------------------------- helpers


def _hub(request: web.Request) -> Hub:
    return request.app[HUB_KEY]


def _accepted(request: web.Request) -> list[str]:
    header = request.headers.get(hdrs.ACCEPT, "")
    return [item.split(";")[0].strip().lower() for item in header.split(",") if item.strip()]


def _negotiate(request: web.Request, offers: tuple[str, ...], *, wildcards: bool) -> str:
    """The first of ``offers`` the client accepts, else 406 (strict mode only)."""
    accepted = _accepted(request)
    for offer in offers:
        major = offer.split("/")[0] + "/*"
        if offer in accepted or (wildcards and (major in accepted or "*/*" in accepted)):
            return offer
    if not _hub(request).config.strict_media_types:
        return offers[0]
    raise ApiError(
        406,
        f"Accept must name one of {', '.join(offers)} (got {request.headers.get('Accept')!r})",
    )


def _require_body_type(request: web.Request, allowed: tuple[str, ...]) -> None:
    if not _hub(request).config.strict_media_types:
        return
    if request.content_type not in allowed:
        raise ApiError(
            415, f"Content-Type must be {' or '.join(allowed)} (got {request.content_type!r})"
        )


def _authenticate(request: web.Request) -> Token:
    token = _hub(request).tokens.check(bearer_from_header(request.headers.get(hdrs.AUTHORIZATION)))
    if token is None:
        raise ApiError(401, "missing, unknown or expired bearer token: mint a new one")
    return token


def _json_response(document: Any, status: int = 200, **kwargs: Any) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(document), content_type=V2_JSON, charset=None, **kwargs
    )


async def _read_json(request: web.Request) -> Any:
    body = await request.read()
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
        raise ApiError(422, f"body is not valid JSON: {exc}", inner_code=INVALID_VALUE) from exc


def _job(hub: Hub, job_id: str) -> Job:
    job = hub.jobs.get(job_id)
    if job is None:
        raise ApiError(404, f"no compute job with id {job_id!r}", inner_code=DOCUMENT_NOT_FOUND)
    return job


def _job_by_scenario(hub: Hub, scenario_id: str) -> Job:
    for job in hub.jobs.values():
        if job.scenario_id == scenario_id:
            return job
    raise ApiError(404, f"no scenario with id {scenario_id!r}", inner_code=DOCUMENT_NOT_FOUND)


# --------------------------------------------------------------------------- authentication


async def post_token(request: web.Request) -> web.Response:
    """POST /api/authentication/token: mint a token for {clientId, secret, maxAge}."""
    hub = _hub(request)
    _require_body_type(request, (V2_JSON,))
    preferred = (
        (V2_JSON, *TEXT_TYPES)
        if hub.config.token_response == "json"
        else (
            *TEXT_TYPES[::-1],
            V2_JSON,
        )
    )
    media_type = _negotiate(request, preferred, wildcards=True)
    body = await _read_json(request)
    if not isinstance(body, dict):
        raise ApiError(422, "body must be a BearerTokenRequest object", inner_code=INVALID_VALUE)
    client_id, secret, max_age = body.get("clientId"), body.get("secret"), body.get("maxAge")
    problems = []
    if not isinstance(client_id, str):
        problems.append(detail("clientId", "clientId must be a string"))
    if not isinstance(secret, str):
        problems.append(detail("secret", "secret must be a string"))
    if max_age is None:
        max_age = hub.config.token_max_age_cap_seconds
    if isinstance(max_age, bool) or not isinstance(max_age, int | float) or max_age <= 0:
        problems.append(detail("maxAge", "maxAge must be a positive number of seconds"))
    if problems:
        raise ApiError(422, "invalid token request", inner_code=INVALID_VALUE, details=problems)
    assert isinstance(client_id, str) and isinstance(secret, str)
    if not hub.tokens.credentials_match(client_id, secret):
        raise ApiError(401, "unknown client id or wrong secret")
    text, _ = hub.tokens.mint(client_id, float(max_age))
    hub.record.add("token_minted", {"clientId": client_id, "token": token_fingerprint(text)})
    if media_type == V2_JSON:
        return _json_response(text)
    return web.Response(text=text, content_type=media_type)


async def get_token(request: web.Request) -> web.Response:
    """GET /api/authentication/token: BearerTokenInfo of the caller's token."""
    _negotiate(request, (V2_JSON,), wildcards=False)
    token = _authenticate(request)
    return _json_response(
        {
            "access_token_expiration_time": iso_utc(token.expires_at_wall),
            "cn": token.client_id,
            "mail": f"{token.client_id}@example.invalid",
            "uid": token.user_id,
        }
    )


async def get_current_user(request: web.Request) -> web.Response:
    """GET /api/authentication/current-user: the user the token belongs to."""
    _negotiate(request, (V2_JSON,), wildcards=False)
    token = _authenticate(request)
    return _json_response(_owner(token))


def _owner(token: Token) -> dict[str, Any]:
    return {
        "objectType": "USER",
        "id": token.user_id,
        "url": f"/api/admin/users/{token.user_id}",
        "name": token.client_id,
        "username": token.client_id,
    }


# --------------------------------------------------------------------------- compute jobs


async def _read_part(part: BodyPartReader, budget: list[int]) -> bytes:
    chunks = []
    while chunk := await part.read_chunk(65536):
        budget[0] -= len(chunk)
        if budget[0] < 0:
            raise ApiError(413, "request body too large", inner_code=FILE_TOO_LARGE)
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_submission(request: web.Request) -> tuple[Any, bytes | None]:
    """The computeJobRequest document and the payload zip of a submission."""
    hub = _hub(request)
    limit = hub.config.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "request body too large", inner_code=FILE_TOO_LARGE)
    if request.content_type != "multipart/form-data":
        if not hub.config.strict_media_types and request.content_type in JSON_PART_TYPES:
            return await _read_json(request), None
        raise ApiError(415, "Content-Type must be multipart/form-data (§A8)")
    reader = await request.multipart()
    budget = [limit]
    document: Any = None
    payload: bytes | None = None
    while (part := await reader.next()) is not None:
        if isinstance(part, MultipartReader):
            raise ApiError(422, "nested multipart bodies are not accepted")
        data = await _read_part(part, budget)
        if part.name == COMPUTE_JOB_REQUEST_PART:
            document = _parse_request_part(hub, part, data)
        elif part.name == PAYLOAD_PART:
            payload = data
    if document is None:
        raise ApiError(
            422,
            f"the multipart body has no {COMPUTE_JOB_REQUEST_PART!r} part",
            inner_code=INVALID_VALUE,
            details=[detail(COMPUTE_JOB_REQUEST_PART, "required part missing")],
        )
    return document, payload


def _parse_request_part(hub: Hub, part: BodyPartReader, data: bytes) -> Any:
    media = part.headers.get(hdrs.CONTENT_TYPE, "").split(";")[0].strip().lower()
    if hub.config.strict_media_types and media not in JSON_PART_TYPES:
        raise ApiError(
            415, f"the {COMPUTE_JOB_REQUEST_PART} part must be {' or '.join(JSON_PART_TYPES)}"
        )
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
        raise ApiError(
            422,
            f"{COMPUTE_JOB_REQUEST_PART} is not valid JSON: {exc}",
            inner_code=INVALID_VALUE,
            details=[detail(COMPUTE_JOB_REQUEST_PART, "not valid JSON")],
        ) from exc


def _check_payload(payload: bytes | None) -> None:
    if payload is None:
        return
    if not zipfile.is_zipfile(io.BytesIO(payload)):
        raise ApiError(
            422,
            "the payload part is not a zip file",
            inner_code=INVALID_VALUE,
            details=[detail(PAYLOAD_PART, "must be a zip file")],
        )


async def post_compute_job(request: web.Request) -> web.Response:
    """POST /api/compute-jobs: create a job (201 + Location), routed to its connection-id."""
    hub = _hub(request)
    media_type = _negotiate(request, (V2_JSON,), wildcards=False)
    token = _authenticate(request)
    document, payload = await _read_submission(request)
    normalised, problems = validate_request(document, hub.config.execution_services)
    if problems:
        raise ApiError(
            422, "the compute job request is invalid", inner_code=INVALID_VALUE, details=problems
        )
    _check_payload(payload)
    job_id = normalised["id"]
    if job_id in hub.jobs:
        raise ApiError(409, f"a compute job with id {job_id!r} already exists")
    cannot_solve = refusal(hub.script_for(job_id), normalised, payload)
    if cannot_solve is not None and not hub.config.simulate_solves:
        # The emulator never pretends: no solver, no "Optimal" for a model.
        raise ApiError(
            422,
            f"this emulator cannot run job {job_id!r}: {cannot_solve}",
            inner_code=INVALID_VALUE,
            details=[detail(PAYLOAD_PART, "holds a model, and the emulator has no solver")],
        )
    normalised["owner"] = _owner(token)
    job = _create_job(hub, request, normalised, payload)
    location = str(request.url.with_path(f"{request.app[PREFIX_KEY]}/api/compute-jobs/{job_id}"))
    headers = {hdrs.LOCATION: location}
    if "return=minimal" in request.headers.get("Prefer", ""):
        return web.Response(status=201, headers=headers)
    response = _json_response(job.document(), status=201, headers=headers)
    response.content_type = media_type
    return response


def _create_job(
    hub: Hub, request: web.Request, normalised: dict[str, Any], payload: bytes | None
) -> Job:
    job_id = normalised["id"]
    script = hub.script_for(job_id)
    job = Job(
        id=job_id,
        request=normalised,
        script=script,
        payload=payload,
        run_log_messages=normalised["runLogMessages"],
    )
    connection_id = request.headers.get(CONNECTION_ID_HEADER)
    known = connection_id is not None and connection_id in hub.connections
    # An unknown connection-id is ignored: the job then waits for a SUBSCRIBE (§A4).
    job.connection_id = connection_id if known else None
    hub.jobs[job_id] = job
    for fault in script.faults:
        hub.faults.add(fault, job_scope=job_id)
    hub.record.add(
        "job_created",
        {"script": script.name, "connectionId": connection_id, "connectionKnown": known},
        connection_id=connection_id if known else None,
        compute_job_id=job_id,
    )
    # The initial status is pushed too (§B9 #10 leaves it open; a client must accept it).
    hub.set_status(job, "QUEUED")
    job.task = asyncio.get_running_loop().create_task(run_job(hub, job))
    return job


async def get_compute_job(request: web.Request) -> web.Response:
    """GET /api/compute-jobs/{id}: the job document."""
    _negotiate(request, (V2_JSON,), wildcards=False)
    _authenticate(request)
    return _json_response(_job(_hub(request), request.match_info["job_id"]).document())


async def delete_compute_job(request: web.Request) -> web.Response:
    """DELETE /api/compute-jobs/{id}: cancel a running job (202) or remove a finished one (204)."""
    hub = _hub(request)
    _authenticate(request)
    job = _job(hub, request.match_info["job_id"])
    hub.record.add("delete", {"status": job.status}, compute_job_id=job.id)
    if job.terminal:
        del hub.jobs[job.id]
        hub.faults.clear(job_scope=job.id)
        return web.Response(status=204)
    if job.status != "CANCELLING":
        task = cancel_job(hub, job)
        hub.background.add(task)
        task.add_done_callback(hub.background.discard)
    return web.Response(status=202)


def _int_query(request: web.Request, name: str, default: int, minimum: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ApiError(
            422,
            f"query parameter {name} must be an integer >= {minimum}",
            inner_code=INVALID_VALUE,
            details=[detail(name, f"must be an integer >= {minimum}")],
        )
    return value


async def list_compute_jobs(request: web.Request) -> web.Response:
    """GET /api/compute-jobs?scenarioId=&page=&size=: a page of jobs (0 or 1 per scenario)."""
    hub = _hub(request)
    _negotiate(request, (V2_JSON,), wildcards=False)
    _authenticate(request)
    page = _int_query(request, "page", 0, 0)
    size = min(_int_query(request, "size", 20, 1), hub.config.max_page_size)
    scenario_id = request.query.get("scenarioId")
    jobs = [j for j in hub.jobs.values() if scenario_id is None or j.scenario_id == scenario_id]
    content = [job.document() for job in jobs[page * size : (page + 1) * size]]
    total_pages = (len(jobs) + size - 1) // size
    return _json_response(
        {
            "content": content,
            "number": page,
            "size": size,
            "numberOfElements": len(content),
            "totalElements": len(jobs),
            "totalPages": total_pages,
            "first": page == 0,
            "last": page >= total_pages - 1,
        }
    )


async def get_app_message_file(request: web.Request) -> web.Response:
    """GET /api/compute-jobs/{id}/messages/{messageId}/file: an INTSOL message's incumbent."""
    media_type = _negotiate(request, (*TEXT_TYPES, "application/octet-stream"), wildcards=True)
    _authenticate(request)
    job = _job(_hub(request), request.match_info["job_id"])
    data = job.app_message_files.get(request.match_info["message_id"])
    if data is None:
        raise ApiError(404, "no file for that message", inner_code=DOCUMENT_NOT_FOUND)
    return web.Response(body=data, content_type=media_type)


# --------------------------------------------------------------------------- scenario downloads


async def get_run_log(request: web.Request) -> web.Response:
    """GET /api/scenarios/{sid}/run-log: the whole run log so far, as text."""
    media_type = _negotiate(request, TEXT_TYPES, wildcards=True)
    _authenticate(request)
    job = _job_by_scenario(_hub(request), request.match_info["scenario_id"])
    if not job.run_log_published:
        raise ApiError(404, "the run log exists once the job has left QUEUED")
    return web.Response(text=job.run_log_text(), content_type=media_type)


async def get_attachment(request: web.Request) -> web.Response:
    """GET /api/scenarios/{sid}/attachments/{aid}/file: the payload or the results zip."""
    media_type = _negotiate(request, ZIP_TYPES, wildcards=True)
    _authenticate(request)
    job = _job_by_scenario(_hub(request), request.match_info["scenario_id"])
    attachment_id = request.match_info["attachment_id"]
    if attachment_id == job.payload_attachment_id and job.payload is not None:
        body, name = job.payload, f"{job.id}-payload.zip"
    elif attachment_id == job.result_attachment_id and job.result_url is not None:
        assert job.results_zip is not None
        body, name = job.results_zip, f"{job.id}-results.zip"
    else:
        raise ApiError(404, f"no attachment {attachment_id!r}", inner_code=DOCUMENT_NOT_FOUND)
    disposition = f'attachment; filename="{name}"'
    return web.Response(
        body=body, content_type=media_type, headers={hdrs.CONTENT_DISPOSITION: disposition}
    )


async def get_job_metrics(request: web.Request) -> web.Response:
    """GET /api/scenarios/{sid}/job-metrics: a small metrics document (format undocumented)."""
    _negotiate(request, (V2_JSON,), wildcards=False)
    _authenticate(request)
    job = _job_by_scenario(_hub(request), request.match_info["scenario_id"])
    return _json_response(
        {
            "computeJobId": job.id,
            "status": job.status,
            "executionAttempts": job.execution_attempts,
            "runLogLines": len(job.log),
            "timestamp": iso_utc(datetime.datetime.now(datetime.UTC)),
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, job.scenario_id)),
        }
    )
