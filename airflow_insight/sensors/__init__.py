"""Airflow sensors of the FICO Xpress Insight provider."""
