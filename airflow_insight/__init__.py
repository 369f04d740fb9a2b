"""airflow-insight: run FICO Xpress Insight compute jobs from Apache Airflow."""
