"""deploy/: the Kubernetes manifests against the Kubernetes API schemas (kubernetes-validate ships
them, so no cluster and no network), the compose file and the Dockerfile."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from kubernetes_validate import utils as k8s

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
K8S_VERSION = "1.30"  # the oldest Kubernetes these manifests are meant for

MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def all_docs() -> list[dict]:
    return [d for path in MANIFESTS for d in docs(path)]


def by_kind(kind: str, name: str) -> dict:
    return next(d for d in all_docs() if d["kind"] == kind and d["metadata"]["name"] == name)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid_kubernetes(path):
    for doc in docs(path):
        k8s.validate(doc, K8S_VERSION, strict=True)  # strict: unknown fields are errors too


def test_the_validator_does_catch_mistakes():
    statefulset = by_kind("StatefulSet", "aftersale-worker")
    statefulset["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    with pytest.raises(k8s.ValidationError):
        k8s.validate(statefulset, K8S_VERSION, strict=True)


def test_kustomization_applies_everything_but_the_example_secret():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in MANIFESTS if "example" not in p.name)


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def test_workers_keep_name_disk_and_probes():
    statefulset = by_kind("StatefulSet", "aftersale-worker")
    pod = statefulset["spec"]["template"]["spec"]
    worker = pod["containers"][0]
    env = env_of(worker)
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["AFTERSALE_INSTANCE_ID"]["value"] == "$(POD_NAME)"
    # Other workers forward requests to WEB_HOST: it must resolve through the headless service.
    assert env["WEB_HOST"]["value"].startswith(f"$(POD_NAME).{statefulset['spec']['serviceName']}.")
    headless = by_kind("Service", statefulset["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    data_mount = next(m for m in worker["volumeMounts"] if m["name"] == "data")
    assert data_mount["mountPath"] == env["AFTERSALE_DATA_DIR"]["value"]
    assert [t["metadata"]["name"] for t in statefulset["spec"]["volumeClaimTemplates"]] == ["data"]
    assert worker["livenessProbe"]["httpGet"]["path"] == "/health"
    assert worker["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert env["AFTERSALE_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "aftersale-kafka"
    assert worker["envFrom"] == [
        {"configMapRef": {"name": by_kind("ConfigMap", "aftersale-config")["metadata"]["name"]}}
    ]
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_no_secret_values_in_the_config_map():
    data = by_kind("ConfigMap", "aftersale-config")["data"]
    assert not [k for k in data if re.search(r"PASSWORD|SECRET|TOKEN", k)]


def known_settings() -> set[str]:
    """Every environment variable the code reads: AFTERSALE_*, KAFKA_BOOTSTRAP_SERVERS, and the two
    Faust settings the deployment sets (WEB_BIND, WEB_HOST are read by Faust itself)."""
    source = "\n".join(p.read_text() for d in ("streams", "connectors") for p in (REPO / d).rglob("*.py"))
    return set(re.findall(r'"((?:AFTERSALE|KAFKA)_[A-Z0-9_]+)"', source)) | {"WEB_BIND", "WEB_HOST"}


def deployed_env_names() -> set[str]:
    names = set()
    for doc in all_docs():
        if doc["kind"] == "ConfigMap":
            names |= set(doc["data"])
        for container in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            names |= {n for n in env_of(container) if not n.startswith("POD_")}
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    for name, service in compose["services"].items():
        if name != "kafka":  # the broker's own KAFKA_* settings
            names |= set(service.get("environment") or {})
    return names


def test_every_variable_the_deployment_sets_is_read_by_the_code():
    assert deployed_env_names() - known_settings() == set()


def test_compose_runs_kafka_in_kraft_mode_and_every_aftersale_process():
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    commands = {name: s["command"][0] for name, s in services.items() if name != "kafka"}
    assert sorted(set(commands.values())) == ["ingest", "sender", "topics", "worker"]
    for name in commands:
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
        assert services[name]["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    workers = [s for s in services.values() if s.get("command", [""])[0] == "worker"]
    assert len({w["environment"]["AFTERSALE_INSTANCE_ID"] for w in workers}) == len(workers) >= 2


def test_dockerfile_is_slim_python_non_root_and_installs_the_project():
    lines = [
        l.strip()
        for l in (REPO / "deploy" / "Dockerfile").read_text().splitlines()
        if l.strip() and not l.strip().startswith("#")
    ]
    assert lines[0] == "FROM python:3.11-slim"
    assert any(l.startswith("RUN pip install") and " ." in l for l in lines)
    user = next(l.split()[1] for l in lines if l.startswith("USER "))
    assert user.split(":")[0] not in ("root", "0")
    assert not [l for l in lines if re.search(r"\b(java|jdk|jre|openjdk)\b", l, re.I)]
    assert lines[-2:] == ['ENTRYPOINT ["aftersale"]', 'CMD ["worker", "--loglevel", "info"]']
