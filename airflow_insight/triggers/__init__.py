"""Airflow triggers of the FICO Xpress Insight provider."""
