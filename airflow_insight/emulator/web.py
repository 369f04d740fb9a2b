"""A small read-only stand-in for the Insight web client: the pages the "Insight job" link opens.

The provider's extra link points at ``{server}/insight/app/{app_id}/scenario/{scenario_id}``
(:mod:`airflow_insight.links`), falling back to the app page and ``/insight/``. Against a real
server that is the web client; against the emulator these handlers answer it, so a link clicked
while developing a DAG locally shows the job: its status, model status and execution attempt,
the run log so far, and a download link for the results once it completed. A job page that is
not finished reloads itself every two seconds.

No login, unlike the real web client: the emulator is a local development server and the pages
only read. No Insight web-client behaviour is imitated beyond that.
"""

from __future__ import annotations

import html

from aiohttp import web

from airflow_insight.emulator.config import WEB_CLIENT_PATH
from airflow_insight.emulator.hub import Hub
from airflow_insight.emulator.jobs import COMPUTE_INTERFACE_APP_ID, Job

#: How often an unfinished job's page reloads itself.
REFRESH_SECONDS = 2

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #1d2433; }
h1 { font-size: 1.4em; } .note { color: #5b6473; font-size: .9em; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { padding: .3em .9em .3em 0; text-align: left; vertical-align: top; }
th { color: #5b6473; font-weight: normal; }
.status { font-weight: bold; }
pre { background: #f3f5f8; border: 1px solid #d8dde6; padding: .8em; max-height: 32em;
      overflow: auto; font-size: .85em; }
"""


def add_routes(app: web.Application, hub: Hub, prefix: str) -> None:
    """Serve the web-client pages under ``prefix`` (the emulator's path prefix)."""
    base = f"{prefix}{WEB_CLIENT_PATH}"
    pages = _Pages(hub, base)
    app.router.add_get(f"{base}/", pages.job_list)
    app.router.add_get(base + "/app/{app_id}", pages.job_list)
    app.router.add_get(base + "/app/{app_id}/scenario/{scenario_id}", pages.job_page)
    app.router.add_get(base + "/app/{app_id}/scenario/{scenario_id}/results.zip", pages.results)


class _Pages:
    """The handlers, bound to the emulator's hub and the web client's base path."""

    def __init__(self, hub: Hub, base: str) -> None:
        self._hub = hub
        self._base = base

    async def job_list(self, request: web.Request) -> web.Response:
        """The app (or home) page: every job the emulator holds, newest last, each linked."""
        rows = "".join(
            f"<tr><td><a href='{html.escape(self._job_href(job))}'>{html.escape(job.id)}</a></td>"
            f"<td class='status'>{html.escape(job.status)}</td>"
            f"<td>{html.escape(job.model_status or '')}</td></tr>"
            for job in self._hub.jobs.values()
        )
        table = (
            "<table><tr><th>Compute job</th><th>Status</th><th>Model status</th></tr>"
            f"{rows}</table>"
            if rows
            else "<p>No compute jobs yet.</p>"
        )
        return _page("Compute jobs", table)

    async def job_page(self, request: web.Request) -> web.Response:
        """One job: status, model status, attempts, run log, results link."""
        job = self._by_scenario(request.match_info["scenario_id"])
        if job is None:
            return _not_found(request.match_info["scenario_id"], self._base)
        results = (
            f"<a href='{html.escape(self._job_href(job))}/results.zip'>results.zip</a>"
            if job.result_url is not None
            else "none yet"
        )
        facts = (
            "<table>"
            f"<tr><th>Compute job</th><td>{html.escape(job.id)}</td></tr>"
            f"<tr><th>Status</th><td class='status'>{html.escape(job.status)}</td></tr>"
            f"<tr><th>Model status</th><td>{html.escape(job.model_status or 'none')}</td></tr>"
            f"<tr><th>Execution attempt</th><td>{job.execution_attempts}</td></tr>"
            f"<tr><th>Results</th><td>{results}</td></tr>"
            "</table>"
        )
        log = "".join(html.escape(line) + "\n" for line in job.log) or "(no run log yet)"
        refresh = None if job.terminal else REFRESH_SECONDS
        body = f"{facts}<h2>Run log ({len(job.log)} lines)</h2><pre>{log}</pre>"
        return _page(f"Compute job {job.id}", body, refresh_seconds=refresh)

    async def results(self, request: web.Request) -> web.Response:
        """The results zip of a completed job, for the page's download link."""
        job = self._by_scenario(request.match_info["scenario_id"])
        if job is None or job.result_url is None or job.results_zip is None:
            raise web.HTTPNotFound(reason="no results for this scenario")
        disposition = f'attachment; filename="{job.id}-results.zip"'
        return web.Response(
            body=job.results_zip,
            content_type="application/zip",
            headers={"Content-Disposition": disposition},
        )

    def _by_scenario(self, scenario_id: str) -> Job | None:
        return next((j for j in self._hub.jobs.values() if j.scenario_id == scenario_id), None)

    def _job_href(self, job: Job) -> str:
        return f"{self._base}/app/{COMPUTE_INTERFACE_APP_ID}/scenario/{job.scenario_id}"


def _page(title: str, body: str, *, refresh_seconds: int | None = None) -> web.Response:
    refresh = f"<meta http-equiv='refresh' content='{refresh_seconds}'>" if refresh_seconds else ""
    text = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)} · Insight emulator</title>{refresh}"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{body}"
        "<p class='note'>Insight emulator: a read-only stand-in for the Insight web client.</p>"
        "</body></html>"
    )
    return web.Response(text=text, content_type="text/html")


def _not_found(scenario_id: str, base: str) -> web.Response:
    response = _page(
        "No such compute job",
        f"<p>The emulator holds no job with scenario {html.escape(scenario_id)} (finished jobs"
        f" are forgotten after an hour). <a href='{html.escape(base)}/'>All jobs</a></p>",
    )
    response.set_status(404)
    return response
