"""Where the emulator's aiohttp handlers find the hub and the path prefix.

Kept apart from the hub so the hub (and everything below it) stays free of aiohttp.
"""

from __future__ import annotations

from aiohttp import web

from airflow_insight.emulator.hub import Hub

#: The emulator's shared state, for every handler.
HUB_KEY: web.AppKey[Hub] = web.AppKey("hub")
#: The configured path prefix (no trailing slash).
PREFIX_KEY = web.AppKey("prefix", str)
