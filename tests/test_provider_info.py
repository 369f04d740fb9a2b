"""The provider metadata Airflow discovers through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_insight.provider_info import get_provider_info

DISTRIBUTION = "airflow-insight"


def _module_paths() -> list[str]:
    info = get_provider_info()
    modules = [
        module
        for section in ("hooks", "operators", "sensors", "triggers")
        for entry in info[section]
        for module in entry["python-modules"]
    ]
    return modules


def _class_paths() -> list[str]:
    info = get_provider_info()
    return [entry["hook-class-name"] for entry in info["connection-types"]] + list(
        info["extra-links"]
    )


def test_required_keys_and_package_name_match_the_distribution() -> None:
    info = get_provider_info()
    assert {"package-name", "name", "description", "versions"} <= info.keys()
    dist = importlib.metadata.distribution(DISTRIBUTION)
    assert info["package-name"] == dist.metadata["Name"]
    assert info["versions"] == [dist.version]
    integration_names = {item["integration-name"] for item in info["integrations"]}
    for section in ("hooks", "operators", "sensors", "triggers"):
        assert {entry["integration-name"] for entry in info[section]} <= integration_names


def test_provider_info_matches_airflows_schemas() -> None:
    """Validate against the schemas shipped with the installed Airflow (runtime and yaml)."""
    import airflow
    import jsonschema

    airflow_dir = Path(airflow.__file__).parent
    info = get_provider_info()
    jsonschema.validate(info, json.loads((airflow_dir / "provider_info.schema.json").read_text()))
    yaml_schema = json.loads((airflow_dir / "provider.yaml.schema.json").read_text())
    for key in ("connection-types", "extra-links", "integrations"):
        jsonschema.validate(info[key], yaml_schema["properties"][key])


def test_entry_point_resolves_to_get_provider_info() -> None:
    entry_points = [
        ep
        for ep in importlib.metadata.entry_points(group="apache_airflow_provider")
        if ep.dist is not None and ep.dist.metadata["Name"] == DISTRIBUTION
    ]
    assert [ep.value for ep in entry_points] == ["airflow_insight.provider_info:get_provider_info"]
    assert entry_points[0].load() is get_provider_info


def test_provider_info_imports_nothing_heavy() -> None:
    code = (
        "import sys; import airflow_insight.provider_info; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('airflow', 'requests', 'websocket', 'websockets', 'aiohttp')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("module_name", _module_paths())
def test_listed_modules_import(module_name: str) -> None:
    importlib.import_module(module_name)


@pytest.mark.parametrize("class_path", _class_paths())
def test_listed_classes_import(class_path: str) -> None:
    module_name, _, class_name = class_path.rpartition(".")
    module = importlib.import_module(module_name)
    assert isinstance(getattr(module, class_name), type)


def test_airflow_providers_list_shows_the_provider(tmp_path: Path) -> None:
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    airflow_cli = str(Path(sys.executable).with_name("airflow"))
    result = subprocess.run(
        [airflow_cli, "providers", "list", "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    # Airflow 3.0 prints its plugin set-up lines on stdout before the JSON document.
    document = next(line for line in result.stdout.splitlines() if line.startswith("[{"))
    providers = {item["package_name"]: item for item in json.loads(document)}
    assert providers[DISTRIBUTION]["version"] == importlib.metadata.version(DISTRIBUTION)
