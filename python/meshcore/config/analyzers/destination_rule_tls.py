"""IST0128 / IST0129: DestinationRule TLS that does not verify the server's certificate.

`tls.mode` SIMPLE or MUTUAL without `caCertificates` (nor a `credentialName` holding them)
accepts any server certificate, unless `insecureSkipVerify` says that is intended; checked
for the rule's traffic policy (IST0128) and each port-level setting (IST0129).
"""

from __future__ import annotations

from collections.abc import Iterator

from meshcore.config.analyzers.index import FieldPath, ResourceIndex
from meshcore.config.analyzers.messages import (
    NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL,
    NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL,
)
from meshcore.config.diagnostics import Diagnostic
from meshcore.config.networking import ClientTLSSettings, DestinationRule


def _unverified(tls: ClientTLSSettings | None) -> bool:
    if tls is None or tls.mode not in ("SIMPLE", "MUTUAL"):
        return False
    return not (tls.ca_certificates or tls.credential_name or tls.insecure_skip_verify)


class CaCertificateAnalyzer:
    """Checks if caCertificates is set when TLS is enabled."""

    name = "destinationrule.CaCertificateAnalyzer"
    description = "Checks if caCertificates is set when TLS is enabled"
    codes = ("IST0128", "IST0129")

    def analyze(self, index: ResourceIndex) -> Iterator[Diagnostic]:
        for dr in index.of(DestinationRule):
            policy = dr.spec.traffic_policy
            if policy is None:
                continue
            name, namespace, host = dr.metadata.name, dr.metadata.namespace, dr.spec.host
            if _unverified(policy.tls) and policy.tls is not None:
                message = (
                    f"DestinationRule {name} in namespace {namespace} has TLS mode set to "
                    f"{policy.tls.mode} but no caCertificates are set to validate server identity "
                    f"for host: {host}"
                )
                path: FieldPath = ("spec", "trafficPolicy", "tls", "mode")
                yield index.report(
                    dr, NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL, message, path
                )
            for position, setting in enumerate(policy.port_level_settings or []):
                if not _unverified(setting.tls) or setting.tls is None:
                    continue
                port = setting.port.number if setting.port else None
                message = (
                    f"DestinationRule {name} in namespace {namespace} has TLS mode set to "
                    f"{setting.tls.mode} but no caCertificates are set to validate server identity "
                    f"for host: {host} at port {port}"
                )
                path = ("spec", "trafficPolicy", "portLevelSettings", position, "tls", "mode")
                yield index.report(dr, NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL, message, path)
