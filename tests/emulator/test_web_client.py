"""The emulator's stand-in web client: the "Insight job" link, as the provider builds it, opens a
read-only page of the job on a real emulator (status, model status, run log, results link)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from airflow_insight.emulator import Emulator
from airflow_insight.links import job_ui_url
from emulator.support import job_request, mint, submit, wait_until

CHROMIUM = "/usr/bin/chromium"
#: Where a screenshot of the page goes when this environment variable names a folder.
SCREENSHOT_DIR_ENV = "INSIGHT_WEB_CLIENT_SCREENSHOTS"


def _submitted(emulator: Emulator, job_id: str) -> str:
    """Submit ``job_id``; the URL the operator's link would open (from the submit's document)."""
    response = submit(emulator, mint(emulator), job_request(job_id))
    assert response.status_code == 201, response.text
    return job_ui_url(emulator.base_url, job_id, response.json())


def _page(url: str) -> requests.Response:
    return requests.get(url, timeout=5)  # no token: a browser has none


def test_the_link_opens_the_jobs_page_with_status_run_log_and_results(emulator: Emulator) -> None:
    url = _submitted(emulator, "web-1")
    assert re.search(r"/insight/app/[^/]+/scenario/[^/]+$", url), url
    emulator.wait_for_status("web-1", {"COMPLETED"})
    page = _page(url)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    text = page.text
    assert "Compute job web-1" in text
    assert "<td class='status'>COMPLETED</td>" in text
    assert "<td>OK</td>" in text  # the model status
    for line in emulator.run_log("web-1"):
        assert line in text
    # A finished job's page does not reload itself.
    assert "http-equiv='refresh'" not in text
    results = _page(url + "/results.zip")
    assert results.status_code == 200
    assert zipfile.ZipFile(io.BytesIO(results.content)).namelist()
    assert "results.zip" in text


def test_a_running_job_reloads_and_has_no_results_yet(emulator: Emulator) -> None:
    url = _submitted(emulator, "slow-web")
    wait_until(lambda: bool(emulator.run_log("slow-web")))
    text = _page(url).text
    assert "http-equiv='refresh'" in text
    assert "none yet" in text
    assert _page(url + "/results.zip").status_code == 404


def test_the_app_and_home_pages_list_the_jobs(emulator: Emulator) -> None:
    url = _submitted(emulator, "web-2")
    app_url = url.rsplit("/scenario/", 1)[0]
    for listing in (app_url, emulator.base_url + "/insight/"):
        page = _page(listing)
        assert page.status_code == 200 and "web-2" in page.text
        assert url.split("://", 1)[1].split("/", 1)[1] in page.text  # links to the job page


def test_an_unknown_scenario_is_an_html_404(emulator: Emulator) -> None:
    page = _page(emulator.base_url + "/insight/app/a/scenario/nope")
    assert page.status_code == 404
    assert "No such compute job" in page.text


def test_the_pages_live_under_the_path_prefix(start_emulator: Callable[..., Emulator]) -> None:
    emulator = start_emulator(path_prefix="/gw")
    url = _submitted(emulator, "web-3")
    assert "/gw/insight/app/" in url
    assert _page(url).status_code == 200


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no {CHROMIUM}")
def test_chromium_renders_the_job_page(emulator: Emulator, tmp_path: Path) -> None:
    """The page in a real browser: Chromium's DOM holds the job's facts and its run log."""
    url = _submitted(emulator, "web-4")
    emulator.wait_for_status("web-4", {"COMPLETED"})
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert "Compute job web-4" in done.stdout, done.stderr[-2000:]
    assert "COMPLETED" in done.stdout
    target = Path(os.environ.get(SCREENSHOT_DIR_ENV, str(tmp_path)))
    shot = target / "emulator-job-page.png"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1100,800",
            f"--screenshot={shot}",
            url,
        ],
        capture_output=True,
        timeout=90,
    )
    assert shot.exists() and shot.stat().st_size > 1000
