"""Command line: ``python -m airflow_insight.emulator`` / ``insight-emulator``.

Fault specs for ``--fault`` are described in :mod:`airflow_insight.emulator.faults`. The server
(and so aiohttp, the ``emulator`` extra) is imported only once the arguments are read, so an
install without the extra gets a one-line answer naming it instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import re
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from airflow_insight.emulator.config import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    WEB_CLIENT_PATH,
    EmulatorConfig,
)
from airflow_insight.emulator.faults import __doc__ as FAULTS_DOC
from airflow_insight.emulator.faults import parse_fault
from airflow_insight.emulator.scripts import NAMED_SCRIPTS, JobScript
from airflow_insight.exceptions import ConfigurationError
from airflow_insight.protocol.messages import CURRENT_SPELLING, LEGACY_SPELLING

if TYPE_CHECKING:
    from airflow_insight.emulator.server import Emulator

#: What to tell a user whose install lacks the emulator's dependency.
MISSING_EXTRA = (
    "the emulator needs aiohttp, which comes with the 'emulator' extra: "
    'pip install "airflow-insight[emulator]" (or "airflow-insight[solver]" for real solves too)'
)


def plain_text(doc: str) -> str:
    """A reST docstring as plain text for ``--help``: no roles, no literal markup, no ``::``."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", doc)
    text = re.sub(r"``([^`]+)``", r"\1", text)
    return re.sub(r"::$", ":", text, flags=re.MULTILINE).strip() + "\n"


def _fault_specs(doc: str) -> str:
    """The part of the faults module's docstring a command-line user needs."""
    start = doc.find("Specs for ``--fault``")
    return doc[start:] if start >= 0 else doc


def _script(name: str) -> JobScript:
    try:
        return NAMED_SCRIPTS[name]
    except KeyError:
        raise ConfigurationError(
            f"unknown script {name!r}; choose from {', '.join(NAMED_SCRIPTS)}"
        ) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="insight-emulator",
        description="Run the bundled FICO Xpress Insight emulator (REST v2 + progress WebSocket).",
        epilog=plain_text(_fault_specs(FAULTS_DOC or "")),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1")
    add("--port", type=int, default=8765, help="0 picks any free port")
    add("--path-prefix", default="", help='serve every route under it, e.g. "/insight"')
    add("--client-id", action="append", help=f"default {DEMO_CLIENT_ID} (repeatable)")
    add("--client-secret", action="append", help="one per --client-id")
    add("--tls-cert", help="PEM certificate: serve https/wss")
    add("--tls-key", help="PEM private key for --tls-cert")
    add("--script", default="demo", help=f"default job script: {', '.join(NAMED_SCRIPTS)}")
    add(
        "--rule",
        action="append",
        default=[],
        metavar="GLOB=NAME",
        help="run jobs whose id matches GLOB with script NAME (later rules win)",
    )
    add("--fault", action="append", default=[], metavar="SPEC", help="inject a fault (see below)")
    add("--ping-interval", type=float, default=30.0, metavar="S")
    add("--pong-timeout", type=float, default=300.0, metavar="S")
    add("--token-cap", type=float, default=900.0, metavar="S", help="max token lifetime")
    add("--token-json", action="store_true", help="answer tokens as a JSON string")
    add("--json-pings", action="store_true", help="send JSON PING messages, not ping frames")
    add(
        "--legacy-fields",
        action="store_true",
        help="spell resultsUrl, metricsUrl, prettyStatus, endLine (2020 documentation)",
    )
    add("--relaxed-media-types", action="store_true", help="no 406/415 on media types")
    add("--no-runlog-completed", action="store_true", help="never send RUNLOG_COMPLETED")
    add(
        "--simulate-solves",
        action="store_true",
        help="without xpress, run model payloads as canned, clearly labelled SIMULATED solves "
        "(default: refuse them, naming the extra to install)",
    )
    add(
        "--app-message-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="fail a job whose APP_MESSAGE gets no answer within S seconds",
    )
    add(
        "--no-app-message-resend",
        action="store_true",
        help="do not re-send an unanswered APP_MESSAGE after SUBSCRIBE (it then times out)",
    )
    add(
        "--forget-finished-after",
        type=float,
        default=3600.0,
        metavar="S",
        help="forget finished jobs S seconds after they end (0 keeps them)",
    )
    return parser


def _credentials(args: argparse.Namespace) -> dict[str, str]:
    ids = args.client_id or []
    secrets = args.client_secret or []
    if len(ids) != len(secrets):
        raise ConfigurationError("give one --client-secret per --client-id")
    if not ids:
        return {DEMO_CLIENT_ID: DEMO_CLIENT_SECRET}
    return dict(zip(ids, secrets, strict=True))


def _has_aiohttp() -> bool:
    try:
        importlib.import_module("aiohttp")
    except ImportError:
        return False
    return True


def build(argv: Sequence[str] | None = None) -> Emulator:
    """An emulator configured from command-line arguments (not started)."""
    from airflow_insight.emulator.server import Emulator

    args = _parser().parse_args(argv)
    config = EmulatorConfig(
        host=args.host,
        port=args.port,
        path_prefix=args.path_prefix,
        credentials=_credentials(args),
        token_max_age_cap_seconds=args.token_cap,
        token_response="json" if args.token_json else "text",
        ping_interval_seconds=args.ping_interval,
        pong_timeout_seconds=args.pong_timeout,
        json_pings=args.json_pings,
        spelling=LEGACY_SPELLING if args.legacy_fields else CURRENT_SPELLING,
        strict_media_types=not args.relaxed_media_types,
        default_script=_script(args.script),
        tls_cert_path=args.tls_cert,
        tls_key_path=args.tls_key,
        send_runlog_completed=not args.no_runlog_completed,
        simulate_solves=args.simulate_solves,
        app_message_timeout_seconds=args.app_message_timeout,
        resend_app_messages_on_subscribe=not args.no_app_message_resend,
        forget_finished_jobs_after_seconds=args.forget_finished_after or None,
        # Nobody can read the record of a command-line emulator: keep it small.
        record_messages=False,
        record_limit=10_000,
    )
    emulator = Emulator(config)
    for rule in args.rule:
        pattern, sep, name = rule.partition("=")
        if not sep:
            raise ConfigurationError(f"--rule needs GLOB=NAME, got {rule!r}")
        emulator.add_script(pattern, _script(name))
    emulator.inject(*(parse_fault(spec) for spec in args.fault))
    return emulator


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until interrupted (Ctrl-C or SIGTERM)."""
    if not _has_aiohttp():
        _parser().parse_args(argv)  # --help still works, and bad options are still named
        print(f"insight-emulator: {MISSING_EXTRA}", file=sys.stderr)
        return 2
    try:
        emulator = build(argv)
        emulator.start()
    except (ConfigurationError, OSError) as exc:
        print(f"insight-emulator: {exc}", file=sys.stderr)
        return 2
    print(f"Insight emulator listening on {emulator.base_url}", flush=True)
    print(f"WebSocket: {emulator.websocket_url}", flush=True)
    # The job pages answer the provider's "Insight job" link (see emulator/web.py).
    print(f"Job pages: {emulator.base_url}{WEB_CLIENT_PATH}/", flush=True)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
