"""Hook tests run without a metadata DB: connections come from AIRFLOW_CONN_* variables.

AIRFLOW_HOME must point at a scratch directory before anything imports Airflow, so the tests never
read or write a real Airflow installation.
"""

from __future__ import annotations

import os
import sys
import tempfile

if "airflow" not in sys.modules:
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="airflow-insight-hooks-")
