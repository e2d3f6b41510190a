"""MeshConfig from Istio's meshConfig YAML."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from meshcore.config import MeshConfig, load_mesh_config


def test_defaults() -> None:
    mesh = MeshConfig()
    assert (mesh.trust_domain, mesh.root_namespace) == ("cluster.local", "istio-system")
    assert mesh.outbound_traffic_policy.mode == "ALLOW_ANY"


@pytest.mark.parametrize(
    "text",
    [
        "trustDomain: example.org\noutboundTrafficPolicy: {mode: REGISTRY_ONLY}\n"
        "defaultHttpRetryPolicy: {attempts: 2, perTryTimeout: 1s}\n"
        "accessLogFile: /dev/stdout\naccessLogEncoding: JSON\n",
        "meshConfig:\n  trustDomain: example.org\n  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n"
        "  defaultHttpRetryPolicy: {attempts: 2, perTryTimeout: 1s}\n"
        "  accessLogFile: /dev/stdout\n  accessLogEncoding: JSON\n",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\n"
        "data:\n  mesh: |\n    trustDomain: example.org\n    outboundTrafficPolicy:\n"
        "      mode: REGISTRY_ONLY\n    defaultHttpRetryPolicy: {attempts: 2, perTryTimeout: 1s}\n"
        "    accessLogFile: /dev/stdout\n    accessLogEncoding: JSON\n",
    ],
    ids=["bare", "wrapped", "configmap"],
)
def test_load_shapes(tmp_path: Path, text: str) -> None:
    (tmp_path / "mesh.yaml").write_text(text)
    mesh = load_mesh_config(tmp_path / "mesh.yaml")
    assert mesh.trust_domain == "example.org"
    assert mesh.outbound_traffic_policy.mode == "REGISTRY_ONLY"
    assert mesh.default_http_retry_policy is not None
    assert mesh.default_http_retry_policy.attempts == 2
    assert (mesh.access_log_file, mesh.access_log_encoding) == ("/dev/stdout", "JSON")


@pytest.mark.parametrize("text", ["outboundTrafficPolicy: {mode: SOMETIMES}", "trustDomian: x"])
def test_rejects_bad_values(tmp_path: Path, text: str) -> None:
    (tmp_path / "mesh.yaml").write_text(text)
    with pytest.raises(ValidationError):
        load_mesh_config(tmp_path / "mesh.yaml")
