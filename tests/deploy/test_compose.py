"""docker-compose.yml is checked with the Compose tool (no engine needed) and against our settings."""

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import yaml

from custody_common.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ENV = {"S3_ACCESS_KEY": "k", "S3_SECRET_KEY": "s", "POSTGRES_PASSWORD": "p", "PATH": "/usr/bin:/bin"}


def _resolved() -> dict:
    tool = shutil.which("docker-compose")
    assert tool, "docker-compose is needed to check docker-compose.yml (make test installs it)"
    out = subprocess.run(
        [tool, "-f", str(ROOT / "docker-compose.yml"), "config"], env=ENV, capture_output=True, text=True, check=True
    )
    return yaml.safe_load(out.stdout)


def test_compose_file_is_valid_and_complete() -> None:
    config = _resolved()
    services = config["services"]
    assert {"postgres", "nats", "s3", "provision", "intake", "evidence", "audit"} <= set(services)
    for name, service in services.items():
        image = service.get("image", "")
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin an image tag"
        if name != "provision":
            assert "healthcheck" in service, f"{name} has no health check"
    for name in ("intake", "evidence", "audit"):
        deps = services[name]["depends_on"]
        assert deps["provision"]["condition"] == "service_completed_successfully"
        assert deps["postgres"]["condition"] == "service_healthy"
    assert {"postgres-data", "nats-data", "s3-data", "custody-keys"} <= set(config["volumes"])


def test_compose_uses_only_real_settings_and_commands() -> None:
    config = _resolved()
    fields = {f"CUSTODY_{name.upper()}" for name in Settings.model_fields}
    scripts = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])
    for name, service in config["services"].items():
        for key in service.get("environment", {}):
            if key.startswith("CUSTODY_"):
                assert key in fields, f"{name}: {key} is not a setting"
        command = service.get("command") or []
        if command and command[0].startswith("custody"):
            assert command[0] in scripts, f"{name}: {command[0]} is not a console script"


def test_compose_holds_no_secret() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for line in text.splitlines():
        if re.search(r"(PASSWORD|SECRET)[A-Z_]*:\s*\S", line):
            assert "${" in line, f"secret literal in docker-compose.yml: {line.strip()}"
