"""Benchmarks for airflow-insight, run against the bundled emulator on loopback.

One command runs them all, prints a table and writes every figure as JSON::

    .venv/bin/python -m benchmarks.run --quick --json bench-quick.json
    .venv/bin/python -m benchmarks.run --full --json bench-full.json

``--quick`` is a smoke run on small sizes (about a minute); ``--full`` gives the README's
numbers. Every figure in the JSON carries ``how`` (what was timed, from which clock) and its
``target``. Nothing here is imported by the package or by its tests except the smoke test.
"""
