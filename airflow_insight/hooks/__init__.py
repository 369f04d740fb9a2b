"""Airflow hooks for FICO Xpress Insight."""
