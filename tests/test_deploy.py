"""deploy/compose.yaml and deploy/Dockerfile: docker cannot run here, so the files are checked
for what would break them: services and references that do not exist, picorigin settings and
extras that do not exist, command lines that picorigin's and Dask's own parsers refuse."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import click
import pytest
import yaml

from picorigin._cli import cli
from picorigin._settings import SETTINGS, resolve_settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"


def _interpolate(value):
    """Compose's ``${VAR:-default}`` / ``${VAR:?message}`` / ``${VAR}`` with no VAR set: the
    default, a stand-in for a required value, or empty."""
    if isinstance(value, str):
        value = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)
        value = re.sub(r"\$\{\w+:\?[^}]*\}", "required-value", value)
        return re.sub(r"\$\{\w+\}", "", value)
    if isinstance(value, list):
        return [_interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: _interpolate(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def compose() -> dict:
    return _interpolate(yaml.safe_load((DEPLOY / "compose.yaml").read_text()))


def _picorigin_services(compose: dict) -> dict[str, dict]:
    return {name: s for name, s in compose["services"].items() if "build" in s}


def _environment_variables() -> set[str]:
    """Every ``PICORIGIN_*`` variable picorigin reads: one per setting, and those its source
    names (the data folder, the model folder, the server's key and host names)."""
    names = {f"PICORIGIN_{s.name.upper()}" for s in SETTINGS}
    for path in (ROOT / "picorigin").rglob("*.py"):
        names |= set(re.findall(r"PICORIGIN_[A-Z][A-Z_]*[A-Z]", path.read_text()))
    return names


def test_every_part_of_the_deployment_is_a_service_with_a_pinned_image(compose):
    services = compose["services"]
    assert {"postgres", "etcd", "minio", "milvus", "scheduler", "worker", "index", "serve-a",
            "serve-b"} <= set(services)
    for name, service in services.items():
        if "build" in service:
            assert service["build"]["dockerfile"] == "deploy/Dockerfile"
            assert (DEPLOY / service["build"]["context"] / "deploy/Dockerfile").is_file()
        else:  # a third-party image: pinned to a version, never a moving tag
            tag = service["image"].rpartition(":")[2]
            assert re.search(r"\d", tag) and "/" not in tag, (name, service["image"])
        for other in service.get("depends_on", {}):
            assert other in services, (name, other)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith((".", "/")) or source in compose["volumes"], (name, volume)
    # Milvus standalone finds its etcd and MinIO under their service names.
    milvus = services["milvus"]["environment"]
    assert milvus["ETCD_ENDPOINTS"].split(":")[0] in services
    assert milvus["MINIO_ADDRESS"].split(":")[0] in services
    # Two serve replicas behind one catalog: the same settings, each its own port and data.
    a, b = services["serve-a"], services["serve-b"]
    assert a["environment"] == b["environment"] and a["ports"] != b["ports"]
    assert a["volumes"] != b["volumes"]


def test_every_picorigin_setting_named_exists_and_parses(compose):
    known = _environment_variables()
    seen = set()
    for name, service in _picorigin_services(compose).items():
        environment = service.get("environment", {})
        for variable, value in environment.items():
            if variable.startswith("PICORIGIN_"):
                assert variable in known, f"{name}: {variable} is no setting picorigin reads"
                seen.add(variable)
        settings = {v[len("PICORIGIN_"):].lower(): value for v, value in environment.items()
                    if v[len("PICORIGIN_"):].lower() in {s.name for s in SETTINGS}}
        resolve_settings(settings, environ={})  # each value parses as its setting's type
    assert {"PICORIGIN_CATALOG", "PICORIGIN_INDEX", "PICORIGIN_INGEST"} <= seen
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for variable in re.findall(r"PICORIGIN_[A-Z_]+", dockerfile):
        assert variable in known, f"Dockerfile: {variable} is no setting picorigin reads"


def test_the_settings_point_at_the_services(compose):
    services = compose["services"]
    environment = services["serve-a"]["environment"]
    catalog = urlsplit(environment["PICORIGIN_CATALOG"])
    postgres = services["postgres"]["environment"]
    assert catalog.scheme == "postgresql" and catalog.hostname in services
    assert (catalog.username, catalog.path.lstrip("/"), catalog.password) == (
        postgres["POSTGRES_USER"], postgres["POSTGRES_DB"], postgres["POSTGRES_PASSWORD"])
    index = urlsplit(environment["PICORIGIN_INDEX"])
    assert index.scheme == "milvus" and index.hostname == "milvus" and index.port == 19530
    ingest = urlsplit(environment["PICORIGIN_INGEST"])
    scheduler = services["scheduler"]["command"]
    assert ingest.scheme == "dask" and ingest.hostname == "scheduler"
    assert scheduler[scheduler.index("--port") + 1] == str(ingest.port)
    assert f"tcp://scheduler:{ingest.port}" in services["worker"]["command"]
    # The workers read the files the index command names: the same folder at the same path.
    assert [v for v in services["worker"]["volumes"] if v.endswith(":/photos:ro")] == [
        v for v in services["index"]["volumes"] if v.endswith(":/photos:ro")] != []


def test_every_command_line_parses(compose):
    """picorigin's commands through its own click parser, Dask's through Dask's."""
    from distributed.cli import dask_scheduler, dask_worker

    parsers = {"scheduler": dask_scheduler.main, "worker": dask_worker.main}
    for name, service in _picorigin_services(compose).items():
        line = [*service.get("entrypoint", []), *service["command"]]
        if line[0] == "dask":
            parsers[line[1]].make_context(f"dask {line[1]}", line[2:])
            continue
        assert line[0] == "picorigin", (name, line)
        command = cli.commands[line[1]]
        with click.Context(cli) as parent:
            command.make_context(line[1], line[2:], parent=parent)  # raises on a bad option


def test_the_image_installs_extras_that_exist():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    installed = re.findall(r"'\.\[([\w,-]+)\]'", dockerfile)
    assert installed
    for group in installed:
        for extra in group.split(","):
            assert extra in extras, f"Dockerfile installs picorigin[{extra}]: no such extra"
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.M):
        for path in source.split():
            assert (ROOT / path).exists(), path
