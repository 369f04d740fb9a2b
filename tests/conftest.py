"""Session set-up for every test folder: a scratch Airflow home, before anything imports Airflow.

Airflow reads its configuration once, at its first import, and pytest may import it from any
folder's conftest or test module first; so the environment is set here, in the root conftest,
which pytest loads before all others. Only ``tests/airflow`` migrates the SQLite metadata DB in it.

It also registers the shared fixtures (``support.fixtures``) for every folder.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

_HOME = tempfile.mkdtemp(prefix="airflow-insight-tests-")
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
os.environ["AIRFLOW_HOME"] = _HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
# dag.test() serializes DAGs from the DAGs folder, so the test DAGs live in a file there.
_TEST_DAGS = os.path.join(os.path.dirname(__file__), "airflow", "dags")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = _TEST_DAGS
os.environ["INSIGHT_TEST_RESULTS_DIR"] = os.path.join(_HOME, "results")

pytest_plugins = ("support.fixtures",)
