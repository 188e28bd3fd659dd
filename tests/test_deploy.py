"""The deployment files, checked without a Docker engine or a cluster: compose validates, the
Kubernetes manifests render and validate, Prometheus accepts the rules, the images' build
steps work from the lockfile, and lists that must agree do (topics, settings, metrics,
commands)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from prometheus_client import REGISTRY

import ecrm_aggregator.metrics
import ecrm_collector.metrics
import ecrm_interaction.metrics
from ecrm_aggregator.settings import AggregatorSettings
from ecrm_collector.settings import CollectorSettings
from ecrm_embedded.deploy_artifacts import artifacts
from ecrm_interaction.settings import InteractionSettings
from ecrm_schemas.topics import ALL_TOPICS

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "deploy" / "compose"
K8S = ROOT / "deploy" / "k8s" / "base"
DOCKER = ROOT / "deploy" / "docker"
SERVICES = {"collector": "ecrm-collector", "aggregator": "ecrm-aggregator", "interaction": "ecrm-interaction"}
BIN = Path(sys.executable).parent
_ = (ecrm_aggregator.metrics, ecrm_collector.metrics, ecrm_interaction.metrics)  # registered on import


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is needed (make deploy-tools installs it)")
    return path


@pytest.fixture(scope="module")
def manifests() -> list[dict]:
    rendered = subprocess.run([_tool("kubectl"), "kustomize", str(K8S)], capture_output=True, text=True, check=True)
    return [d for d in yaml.safe_load_all(rendered.stdout) if d]


def _compose() -> dict:
    return yaml.safe_load((COMPOSE / "compose.yaml").read_text())


# --- compose ------------------------------------------------------------------------------


def test_the_compose_file_validates_and_refuses_missing_secrets(tmp_path) -> None:
    """As an operator runs it: deploy/compose with a .env made from .env.example."""
    project = tmp_path / "deploy" / "compose"
    shutil.copytree(COMPOSE, project)
    (project / ".env").write_text((COMPOSE / ".env.example").read_text())
    compose = [_tool("docker-compose"), "-f", str(project / "compose.yaml")]
    valid = subprocess.run([*compose, "--profile", "observability", "--profile", "load", "config", "-q"],
                           capture_output=True, text=True, cwd=project)  # fmt: skip
    assert valid.returncode == 0, valid.stderr
    (project / ".env").write_text("")
    missing = subprocess.run([*compose, "config", "-q"], capture_output=True, text=True, cwd=project)
    assert missing.returncode != 0 and "set CLICKHOUSE_PASSWORD" in missing.stderr


def test_compose_has_every_component_with_healthchecks_and_ordered_start() -> None:
    services = _compose()["services"]
    assert {
        "kafka",
        "clickhouse",
        "postgres",
        "mailpit",
        "prometheus",
        "grafana",
        "init",
        "init-postgres",
        "collector",
        "aggregator",
        "interaction",
        "loadgen",
    } <= set(services)
    for name in ("kafka", "clickhouse", "postgres", "mailpit", "prometheus", "grafana"):
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
    for name in ("collector", "aggregator", "interaction"):
        assert services[name]["depends_on"]["init"]["condition"] == "service_completed_successfully"
    assert services["interaction"]["depends_on"]["init-postgres"]["condition"] == "service_completed_successfully"
    assert services["init"]["command"] == ["ecrm topics create && ecrm migrate"]
    assert services["prometheus"]["profiles"] == ["observability"] and services["loadgen"]["profiles"] == ["load"]


def test_every_setting_a_service_reads_is_in_env_example() -> None:
    listed = set(re.findall(r"^([A-Z0-9_]+)=", (COMPOSE / ".env.example").read_text(), flags=re.MULTILINE))
    read = {n.upper() for s in (CollectorSettings, AggregatorSettings, InteractionSettings) for n in s.model_fields}
    assert read - listed == set(), f"settings missing from deploy/compose/.env.example: {sorted(read - listed)}"
    compose_only = {
        "COMPOSE_PROJECT_NAME",
        "ECRM_VERSION",
        "AGGREGATOR_REPLICAS",
        "POSTGRES_PASSWORD",
        "CLICKHOUSE_READER_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
        "INTERACTION_RULES_PATH",
        "LOADGEN_RATE",
        "LOADGEN_SECONDS",
    }
    assert listed - read - compose_only == set(), f"unknown variables in .env.example: {listed - read - compose_only}"
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", (COMPOSE / "compose.yaml").read_text()))
    assert used - listed == set(), f"compose.yaml uses variables .env.example does not list: {used - listed}"


# --- metrics, dashboards, alerts ---------------------------------------------------------


def _exported() -> set[str]:
    names = set()
    for collector in list(REGISTRY._collector_to_names):
        for metric in collector.describe() if hasattr(collector, "describe") else []:
            for suffix in ("", "_total", "_bucket", "_sum", "_count", "_created"):
                names.add(metric.name + suffix)
    return {n for n in names if n.startswith("ecrm_")}


def _metric_names(text: str) -> set[str]:
    return set(re.findall(r"\becrm_[a-z_]+\b", text))


def test_dashboards_and_alerts_use_only_metrics_the_services_export() -> None:
    exported = _exported()
    dashboard = json.loads((COMPOSE / "grafana" / "dashboards" / "ecrm-pipeline.json").read_text())
    used = {name for p in dashboard["panels"] for t in p["targets"] for name in _metric_names(t["expr"])}
    alerts = _metric_names((COMPOSE / "prometheus" / "alerts.yml").read_text())
    assert used and alerts
    assert used - exported == set(), f"the dashboard uses metrics no service exports: {used - exported}"
    assert alerts - exported == set(), f"alerts use metrics no service exports: {alerts - exported}"
    scraped = {
        j["job_name"] for j in yaml.safe_load((COMPOSE / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]
    }
    assert scraped == {"ecrm-collector", "ecrm-aggregator", "ecrm-interaction"}


def test_promtool_accepts_the_alerts_and_the_scrape_config(tmp_path) -> None:
    promtool = _tool("promtool")
    rules = subprocess.run([promtool, "check", "rules", str(COMPOSE / "prometheus" / "alerts.yml")],
                           capture_output=True, text=True)  # fmt: skip
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = (
        (COMPOSE / "prometheus" / "prometheus.yml")
        .read_text()
        .replace("/etc/prometheus/alerts.yml", str(COMPOSE / "prometheus" / "alerts.yml"))
    )
    (tmp_path / "prometheus.yml").write_text(config)
    checked = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                             capture_output=True, text=True)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr


# --- Kubernetes ---------------------------------------------------------------------------


def test_generated_deployment_files_are_up_to_date() -> None:
    stale = [
        str(p.relative_to(ROOT)) for p, content in artifacts().items() if not p.exists() or p.read_text() != content
    ]
    assert not stale, f"stale generated files (run `make manifests`): {stale}"


def test_the_manifests_render_and_validate_against_the_kubernetes_schemas(manifests) -> None:
    native = [d for d in manifests if d["kind"] not in ("KafkaTopic", "ServiceMonitor", "PrometheusRule")]
    for document in native:
        kubernetes_validate.validate(document, "1.32", strict=True)
    for document in manifests:
        labels = document["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/part-of") == "ecrm", document["metadata"]["name"]
        if document["kind"] != "Namespace":
            assert "app.kubernetes.io/name" in labels, document["metadata"]["name"]
    kinds = {d["kind"] for d in manifests}
    assert {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Job",
        "ConfigMap",
        "Secret",
        "KafkaTopic",
        "ServiceMonitor",
        "PrometheusRule",
    } <= kinds


def test_every_deployment_is_probed_bounded_and_unprivileged(manifests) -> None:
    deployments = {d["metadata"]["name"]: d for d in manifests if d["kind"] == "Deployment"}
    assert set(deployments) == {"ecrm-collector", "ecrm-aggregator", "ecrm-interaction"}
    budgets = {
        d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        for d in manifests
        if d["kind"] == "PodDisruptionBudget"
    }
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        [container] = pod["containers"]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert probe in container, f"{name} has no {probe}"
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert name in budgets, f"{name} has no PodDisruptionBudget"
    [hpa] = [d for d in manifests if d["kind"] == "HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "ecrm-collector"


def test_every_registry_topic_is_a_kafka_topic_resource(manifests) -> None:
    topics = {d["spec"]["topicName"]: d["spec"] for d in manifests if d["kind"] == "KafkaTopic"}
    assert set(topics) == {t.name for t in ALL_TOPICS}
    for topic in ALL_TOPICS:
        assert topics[topic.name]["partitions"] == topic.partitions
        assert topics[topic.name]["config"]["cleanup.policy"] == topic.cleanup_policy


# --- images -----------------------------------------------------------------------------


def _dockerfile(service: str) -> str:
    return (DOCKER / f"{service}.Dockerfile").read_text()


@pytest.mark.parametrize("service", SERVICES)
def test_each_image_is_pinned_unprivileged_healthchecked_and_built_from_the_lockfile(service) -> None:
    text = _dockerfile(service)
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base and re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base[1]), "pin the base image to a full version"
    assert "COPY pyproject.toml uv.lock" in text and "uv sync --frozen" in text
    assert re.search(r"^USER 10001", text, re.MULTILINE) and "HEALTHCHECK" in text
    assert text.count("FROM ") == 2, "multi-stage: a build stage and a slim runtime stage"


@pytest.mark.parametrize("service", SERVICES)
def test_each_image_builds_from_the_lockfile_with_its_own_files(service, tmp_path) -> None:
    """The Dockerfile's COPY and uv steps, run here: a missing file or dependency fails."""
    context, venv = tmp_path / "src", tmp_path / "venv"
    context.mkdir()
    for line in _dockerfile(service).splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            *sources, destination = line.split()[1:]
            for source in sources:
                target = context / destination / (Path(source).name if destination.endswith("/") and
                                                  not source.endswith("/") else "")  # fmt: skip
                if source.endswith("/"):
                    shutil.copytree(
                        ROOT / source,
                        context / destination,
                        dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("tests", "__pycache__"),
                    )
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(ROOT / source, target if not target.is_dir() else target / Path(source).name)
        elif line.startswith("RUN uv sync"):
            command = shlex.split(line.removeprefix("RUN "))
            environment = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
            environment |= {"UV_PROJECT_ENVIRONMENT": str(venv), "UV_LINK_MODE": "copy"}
            done = subprocess.run(
                [_tool("uv"), *command[1:]], cwd=context, capture_output=True, text=True, env=environment
            )
            assert done.returncode == 0, done.stderr[-2000:]
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", _dockerfile(service), re.MULTILINE)[1])
    assert (venv / "bin" / entrypoint[0]).exists()
    helped = subprocess.run([str(venv / "bin" / entrypoint[0]), "serve", "--help"], capture_output=True, text=True)
    assert helped.returncode == 0, helped.stderr[-2000:]


def test_entrypoints_and_the_commands_deployments_run_exist() -> None:
    scripts = {}
    for service in SERVICES:
        project = tomllib.loads((ROOT / "services" / service / "pyproject.toml").read_text())["project"]
        scripts.update(project["scripts"])
        entrypoint = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", _dockerfile(service), re.MULTILINE)[1])
        assert entrypoint[0] in project["scripts"], f"{service}'s image runs {entrypoint[0]}, not one of its scripts"
    commands = [
        "ecrm topics create",
        "ecrm migrate",
        "ecrm-interaction migrate",
        "ecrm-collector loadgen",
        "ecrm-collector serve",
        "ecrm-aggregator serve",
        "ecrm-interaction serve",
    ]
    compose_init = _compose()["services"]["init"]["command"][0]
    assert all(c in commands for c in (part.strip() for part in compose_init.split("&&")))
    job = yaml.safe_load_all((K8S / "migrations-job.yaml").read_text())
    job_commands = [
        c for d in job for c in d["spec"]["template"]["spec"]["initContainers"][0]["command"][2].split("&&")
    ]
    assert {c.strip().split(" --")[0] for c in job_commands} <= set(commands)
    for command in commands:
        script, *args = command.split()
        assert script in scripts
        done = subprocess.run([str(BIN / script), *args, "--help"], capture_output=True, text=True)
        assert done.returncode == 0, f"{command}: {done.stderr[-500:]}"
