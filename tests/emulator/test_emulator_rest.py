"""REST v2: tokens, users, compute jobs, downloads, media types and error bodies."""

from __future__ import annotations

import io
import json
import time
import zipfile
from typing import Any

import pytest
import requests

from airflow_insight.emulator import Emulator
from emulator.support import V2, auth, job_request, mint, submit, zip_of


def _error(response: requests.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith(V2)
    body = response.json()["error"]
    assert body["code"] == f"FICO-Platform-Http-{status}"
    assert body["timestamp"].endswith("Z")
    return dict(body)


def _token_post(emulator: Emulator, body: Any, **headers: str) -> requests.Response:
    merged = {"Accept": "text/plain", "Content-Type": V2, **headers}
    return requests.post(
        emulator.base_url + "/api/authentication/token",
        data=body if isinstance(body, str) else json.dumps(body),
        headers=merged,
        timeout=5,
    )


GOOD = {"clientId": "demo-client", "secret": "demo-secret", "maxAge": 60}

# --------------------------------------------------------------------------- tokens


def test_token_is_plain_text_by_default(emulator: Emulator) -> None:
    response = _token_post(emulator, GOOD)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert len(response.text) > 20 and '"' not in response.text


def test_token_as_json_string_when_configured(start_emulator: Any) -> None:
    emulator = start_emulator(token_response="json")
    response = _token_post(emulator, GOOD, Accept=f"text/plain, {V2}")
    assert response.headers["Content-Type"].startswith(V2)
    assert isinstance(response.json(), str)


def test_token_as_json_when_only_vendor_type_accepted(emulator: Emulator) -> None:
    response = _token_post(emulator, GOOD, Accept=V2)
    assert response.status_code == 200 and isinstance(response.json(), str)


@pytest.mark.parametrize(
    "body",
    [
        {"clientId": "demo-client", "secret": "wrong", "maxAge": 60},
        {"clientId": "nobody", "secret": "demo-secret", "maxAge": 60},
    ],
)
def test_bad_credentials_get_401(emulator: Emulator, body: dict[str, Any]) -> None:
    _error(_token_post(emulator, body), 401)


@pytest.mark.parametrize(
    "body",
    [
        "{not json",
        {"clientId": 1, "secret": "x"},
        {**GOOD, "maxAge": -5},
        [1, 2],
        "[" * 100_000 + "]" * 100_000,
    ],
)
def test_invalid_token_request_gets_422(emulator: Emulator, body: Any) -> None:
    _error(_token_post(emulator, body), 422)


def test_token_media_types_are_enforced(emulator: Emulator) -> None:
    _error(_token_post(emulator, GOOD, **{"Content-Type": "text/plain"}), 415)
    _error(_token_post(emulator, GOOD, Accept="image/png"), 406)


def test_relaxed_media_types(start_emulator: Any) -> None:
    emulator = start_emulator(strict_media_types=False)
    response = _token_post(emulator, GOOD, **{"Content-Type": "text/plain", "Accept": "x/y"})
    assert response.status_code == 200
    token = response.text
    got = requests.get(emulator.base_url + "/api/authentication/token", headers=auth(token, "*/*"))
    assert got.status_code == 200


def test_several_credential_pairs(start_emulator: Any) -> None:
    emulator = start_emulator(credentials={"a": "1", "b": "2"})
    assert _token_post(emulator, {"clientId": "b", "secret": "2", "maxAge": 5}).status_code == 200
    _error(_token_post(emulator, GOOD), 401)


def test_token_info_and_cap(start_emulator: Any) -> None:
    emulator = start_emulator(token_max_age_cap_seconds=30)
    token = mint(emulator, max_age=3600)
    info = requests.get(emulator.base_url + "/api/authentication/token", headers=auth(token))
    assert info.status_code == 200
    body = info.json()
    assert body["cn"] == "demo-client" and body["uid"]
    expiry = time.mktime(
        time.strptime(body["access_token_expiration_time"][:19], "%Y-%m-%dT%H:%M:%S")
    )
    assert expiry - time.mktime(time.gmtime()) <= 31


def test_current_user(emulator: Emulator, token: str) -> None:
    response = requests.get(
        emulator.base_url + "/api/authentication/current-user", headers=auth(token)
    )
    assert response.json()["objectType"] == "USER"
    assert response.json()["name"] == "demo-client"


def test_expired_and_unknown_tokens_get_401(start_emulator: Any) -> None:
    emulator = start_emulator()
    token = mint(emulator, max_age=0.1)
    time.sleep(0.2)
    url = emulator.base_url + "/api/compute-jobs/x"
    _error(requests.get(url, headers=auth(token)), 401)
    _error(requests.get(url, headers=auth("made-up")), 401)
    _error(requests.get(url, headers={"Accept": V2}), 401)


def test_tokens_never_recorded(emulator: Emulator, token: str) -> None:
    requests.get(emulator.base_url + "/api/compute-jobs/x", headers=auth(token))
    text = repr(emulator.record.entries())
    assert token not in text and "demo-secret" not in text
    authorization = emulator.record.requests("GET", "/api/compute-jobs/x")[0].data["headers"]
    assert authorization["Authorization"].startswith("Bearer tok-")


# --------------------------------------------------------------------------- compute jobs


def test_create_get_list_delete(emulator: Emulator, token: str) -> None:
    created = submit(emulator, token, job_request("job-1"))
    assert created.status_code == 201
    assert created.headers["Location"].endswith("/api/compute-jobs/job-1")
    assert created.json()["status"] == "QUEUED"
    document = emulator.wait_for_status("job-1", {"COMPLETED"})
    got = requests.get(emulator.base_url + "/api/compute-jobs/job-1", headers=auth(token))
    assert got.json() == document
    assert document["modelStatus"] == "OK" and document["objectType"] == "COMPUTE_JOB"
    scenario = document["scenario"]["id"]
    assert document["runLogUrl"] == f"/api/scenarios/{scenario}/run-log"
    listed = requests.get(
        emulator.base_url + "/api/compute-jobs",
        params={"scenarioId": scenario, "page": 0, "size": 5},
        headers=auth(token),
    ).json()
    assert [job["id"] for job in listed["content"]] == ["job-1"]
    none = requests.get(
        emulator.base_url + "/api/compute-jobs", params={"scenarioId": "x"}, headers=auth(token)
    ).json()
    assert none["content"] == []
    url = emulator.base_url + "/api/compute-jobs/job-1"
    assert requests.delete(url, headers=auth(token)).status_code == 204
    _error(requests.get(url, headers=auth(token)), 404)
    _error(requests.delete(url, headers=auth(token)), 404)


def test_list_paging_and_bad_page(emulator: Emulator, token: str) -> None:
    for n in range(3):
        assert submit(emulator, token, job_request(f"p-{n}")).status_code == 201
    url = emulator.base_url + "/api/compute-jobs"
    page = requests.get(url, params={"page": 1, "size": 2}, headers=auth(token)).json()
    assert len(page["content"]) == 1 and page["totalElements"] == 3 and page["last"]
    _error(requests.get(url, params={"size": 0}, headers=auth(token)), 422)
    _error(requests.get(url, params={"page": "x"}, headers=auth(token)), 422)


def test_prefer_minimal_and_application_json_part(emulator: Emulator, token: str) -> None:
    response = submit(
        emulator,
        token,
        job_request("min-1"),
        part_type="application/json",
        headers={"Prefer": "return=minimal"},
    )
    assert response.status_code == 201 and response.content == b""
    assert response.headers["Location"]


def test_duplicate_id_gets_409(emulator: Emulator, token: str) -> None:
    assert submit(emulator, token, job_request("dup")).status_code == 201
    _error(submit(emulator, token, job_request("dup")), 409)


@pytest.mark.parametrize(
    ("document", "target"),
    [
        (job_request("bad id!"), "id"),
        (job_request("x" * 61), "id"),
        ({"computeJobType": "SOLVER"}, "id"),
        (job_request("ok", computeJobType="PYTHON"), "computeJobType"),
        (job_request("ok", runLogMessages="yes"), "runLogMessages"),
        (job_request("ok", execution={"threads": 0}), "execution.threads"),
        (job_request("ok", execution={"threads": 257}), "execution.threads"),
        (job_request("ok", execution={"priority": 101}), "execution.priority"),
        (job_request("ok", execution={"executionService": "NOPE"}), "execution.executionService"),
        (job_request("ok", solver={"action": "DANCE"}), "solver.action"),
        (job_request("ok", solver={"problemType": "QP"}), "solver.problemType"),
        (job_request("ok", solver={"flags": ["FAST"]}), "solver.flags"),
        (job_request("ok", solver={"controls": [1]}), "solver.controls"),
        (
            job_request("ok", solver={"action": "IIS", "resultsToInclude": ["SOLUTION"]}),
            "solver.resultsToInclude",
        ),
        (job_request("ok", solver={"resultsToInclude": ["IIS"]}), "solver.resultsToInclude"),
    ],
)
def test_validation_gets_422_naming_the_field(
    emulator: Emulator, token: str, document: dict[str, Any], target: str
) -> None:
    body = _error(submit(emulator, token, document), 422)
    assert target in [item["target"] for item in body["details"]]
    assert body["innerError"]["code"] == "FICO-Platform-Validation-InvalidValue"


def test_full_valid_request_and_runlog_spelling(emulator: Emulator, token: str) -> None:
    document = {
        "id": "full.job_1",
        "computeJobType": "MOSEL",
        "runlogMessages": True,
        "dependency": "my attachment.zip",
        "execution": {"executionService": "PRIMARY", "threads": 4, "priority": -100},
        "solver": {
            "action": "OPTIMIZE",
            "problemType": "MIP",
            "flags": ["DUAL"],
            "controls": {"XPRS_MAXTIME": "-1800"},
            "resultsToInclude": ["SOLUTION", "ATTRIBUTES"],
            "callbacks": [],
        },
    }
    created = submit(emulator, token, document).json()
    assert created["runLogMessages"] is True
    assert created["solver"]["controls"] == {"XPRS_MAXTIME": "-1800"}
    assert created["execution"]["threads"] == 4


def test_bad_bodies(emulator: Emulator, token: str) -> None:
    _error(submit(emulator, token, "{nope"), 422)
    _error(submit(emulator, token, "[1]"), 422)
    _error(submit(emulator, token, job_request("p1"), part_type="text/plain"), 415)
    _error(submit(emulator, token, job_request("p2"), payload=b"not a zip"), 422)
    url = emulator.base_url + "/api/compute-jobs"
    plain = requests.post(url, json=job_request("p3"), headers=auth(token))
    _error(plain, 415)
    no_part = requests.post(url, files={"other": ("a", b"b")}, headers=auth(token))
    _error(no_part, 422)
    _error(submit(emulator, token, job_request("p4"), headers={"Accept": "*/*"}), 406)


def test_oversized_body_gets_413(start_emulator: Any) -> None:
    emulator = start_emulator(max_body_bytes=10_000)
    token = mint(emulator)
    response = submit(emulator, token, job_request("big"), payload=b"x" * 20_000)
    _error(response, 413)
    assert submit(emulator, token, job_request("small")).status_code == 201


def test_unknown_path_and_method_get_error_bodies(emulator: Emulator, token: str) -> None:
    _error(requests.get(emulator.base_url + "/api/nothing", headers=auth(token)), 404)
    response = requests.put(emulator.base_url + "/api/compute-jobs/x", headers=auth(token))
    _error(response, 405)
    assert "GET" in response.headers["Allow"]


def test_downloads(emulator: Emulator, token: str) -> None:
    payload = zip_of({"model.txt": "data"})
    submit(emulator, token, job_request("dl"), payload=payload)
    document = emulator.wait_for_status("dl", {"COMPLETED"})
    base = emulator.base_url
    log = requests.get(base + document["runLogUrl"], headers=auth(token, "text/plain"))
    assert log.status_code == 200 and log.text.splitlines() == emulator.run_log("dl")
    vendor = requests.get(base + document["runLogUrl"], headers=auth(token, "text/*"))
    assert vendor.status_code == 200
    results = requests.get(base + document["resultUrl"], headers=auth(token, "application/zip"))
    assert results.headers["Content-Disposition"] == 'attachment; filename="dl-results.zip"'
    with zipfile.ZipFile(io.BytesIO(results.content)) as archive:
        assert json.loads(archive.read("solution-status.json")) == {"dl": "Optimal"}
    got = requests.get(base + document["payloadUrl"], headers=auth(token, "*/*"))
    assert got.content == payload
    metrics = requests.get(base + document["jobMetricsUrl"], headers=auth(token)).json()
    assert metrics["computeJobId"] == "dl"
    _error(requests.get(base + document["runLogUrl"], headers=auth(token, "image/png")), 406)
    scenario = document["scenario"]["id"]
    _error(requests.get(f"{base}/api/scenarios/nope/run-log", headers=auth(token, "*/*")), 404)
    wrong = f"{base}/api/scenarios/{scenario}/attachments/nope/file"
    _error(requests.get(wrong, headers=auth(token, "*/*")), 404)


def test_run_log_not_available_while_queued(start_emulator: Any) -> None:
    emulator = start_emulator()
    from emulator.support import JobScript

    emulator.add_script("q", JobScript(queued_seconds=30))
    token = mint(emulator)
    submit(emulator, token, job_request("q"))
    scenario = emulator.job("q")["scenario"]["id"]  # type: ignore[index]
    url = f"{emulator.base_url}/api/scenarios/{scenario}/run-log"
    _error(requests.get(url, headers=auth(token, "text/plain")), 404)


def test_path_prefix(start_emulator: Any) -> None:
    emulator = start_emulator(path_prefix="/insight")
    assert emulator.base_url.endswith("/insight")
    token = mint(emulator)
    assert submit(emulator, token, job_request("pre")).status_code == 201
    document = emulator.wait_for_status("pre", {"COMPLETED"})
    # Server-relative URLs carry no prefix; the client resolves them against its base URL.
    assert document["runLogUrl"].startswith("/api/")
    log = requests.get(emulator.base_url + document["runLogUrl"], headers=auth(token, "*/*"))
    assert log.status_code == 200
    root = emulator.base_url.removesuffix("/insight")
    _error(requests.get(root + "/api/compute-jobs/pre", headers=auth(token)), 404)
    assert emulator.record.requests("POST", "/api/compute-jobs")


def test_handler_crash_is_a_500_with_error_body(emulator: Emulator, token: str) -> None:
    submit(emulator, token, job_request("crash"))
    emulator.hub.jobs["crash"].request["execution"] = object()  # break the document on purpose
    response = requests.get(emulator.base_url + "/api/compute-jobs/crash", headers=auth(token))
    _error(response, 500)
    after = requests.get(emulator.base_url + "/api/compute-jobs/none", headers=auth(token))
    assert after.status_code == 404  # the server survived
