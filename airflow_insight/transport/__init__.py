"""The only code that touches the network: REST over ``requests`` and the WebSocket drivers.

Third-party exceptions are mapped into :mod:`airflow_insight.exceptions` here, once. Nothing in
this package imports Airflow.
"""
