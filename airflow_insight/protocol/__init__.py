"""The sans-I/O core of the Insight protocol: messages, statuses, timing and bookkeeping.

Nothing in this package performs I/O, reads a clock, or imports a third-party library. The
drivers in :mod:`airflow_insight.transport` feed it text and the current time; the emulator
shares only the message codec (:mod:`.messages`) with the client.
"""
