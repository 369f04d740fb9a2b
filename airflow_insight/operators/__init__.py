"""Airflow operators for FICO Xpress Insight."""
