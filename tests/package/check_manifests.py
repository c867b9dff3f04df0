#!/usr/bin/python3
"""The container recipe and Kubernetes manifests, checked without a cluster: every YAML
document parses, each kind has what draining needs (readiness on /healthz, a grace period
longer than the configured shutdown_timeout_ms plus the preStop pause, a disruption budget,
a Service selecting the pods), and the ConfigMap's pgmux.toml passes `pgmux --check-config`.
    tests/package/check_manifests.py PGMUX_BINARY"""
import pathlib
import subprocess
import sys
import tempfile
import tomllib

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]


def main():
    binary = sys.argv[1]
    docs = {}
    for path in sorted((ROOT / "packaging" / "kubernetes").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            docs[doc["kind"]] = doc
    missing = {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget"} - docs.keys()
    assert not missing, f"missing kinds: {missing}"

    config_text = docs["ConfigMap"]["data"]["pgmux.toml"]
    config = tomllib.loads(config_text)
    with tempfile.NamedTemporaryFile("w", suffix=".toml") as f:
        f.write(config_text)
        f.flush()
        r = subprocess.run([binary, "--config", f.name, "--check-config"],
                           capture_output=True, text=True)
        assert r.returncode == 0, f"ConfigMap's pgmux.toml: {r.stdout}{r.stderr}"

    pod = docs["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    metrics_port = int(config["pgmux"]["metrics_listen"].rsplit(":", 1)[1])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == metrics_port, "probe port is not metrics_listen's"
    assert ports["postgres"] == config["pgmux"]["listen_port"]
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    drain_s = config["pgmux"]["shutdown_timeout_ms"] / 1000
    grace = pod["terminationGracePeriodSeconds"]
    assert grace > pause + drain_s, f"grace {grace} s <= preStop {pause} s + drain {drain_s} s"
    labels = docs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    for kind in ("Service", "PodDisruptionBudget"):
        selector = docs[kind]["spec"]["selector"]
        selector = selector.get("matchLabels", selector)
        assert selector.items() <= labels.items(), f"{kind} does not select the pods"
    assert docs["Service"]["spec"]["sessionAffinity"] == "ClientIP"

    dockerfile = (ROOT / "packaging" / "Dockerfile").read_text()
    assert "FROM debian:bookworm" in dockerfile and "USER 10001" in dockerfile
    assert pod["securityContext"]["runAsUser"] == 10001, "runAsNonRoot needs a numeric user"
    print(f"check_manifests: OK ({len(docs)} kinds; grace {grace} s > preStop {pause} s + "
          f"drain {drain_s:.0f} s; ConfigMap config valid)")


if __name__ == "__main__":
    main()
