"""The message types the analyzers report, with Istio's codes, levels and wording.

Texts follow `istio/istio` `pkg/config/analysis/msg/messages.yaml`; meshcore's own checks
(where Istio has no analyzer) use `MC01xx` codes. A message's `message` is the complete text
istioctl prints after the origin, so the title of the type is not repeated by the CLI.
"""

from __future__ import annotations

import json

from meshcore.config.diagnostics import Level, MessageType

REFERENCED_RESOURCE_NOT_FOUND = MessageType(
    "IST0101", "ReferencedResourceNotFound", Level.ERROR, "Referenced resource not found"
)
CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS = MessageType(
    "IST0109",
    "ConflictingMeshGatewayVirtualServiceHosts",
    Level.ERROR,
    "Conflicting hosts on VirtualServices associated with mesh gateway",
)
VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED = MessageType(
    "IST0112",
    "VirtualServiceDestinationPortSelectorRequired",
    Level.ERROR,
    "A VirtualService routes to a service with more than one port exposed, but does not "
    "specify which to use.",
)
PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION = MessageType(
    "IST0118",
    "PortNameIsNotUnderNamingConvention",
    Level.INFO,
    "Port name is not under naming convention. Protocol detection is applied to the port.",
)
NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL = MessageType(
    "IST0128",
    "NoServerCertificateVerificationDestinationLevel",
    Level.WARNING,
    "No caCertificates are set in DestinationRule, this results in no verification of "
    "presented server certificate.",
)
NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL = MessageType(
    "IST0129",
    "NoServerCertificateVerificationPortLevel",
    Level.WARNING,
    "No caCertificates are set in DestinationRule, this results in no verification of "
    "presented server certificate for traffic to a given port.",
)
VIRTUAL_SERVICE_UNREACHABLE_RULE = MessageType(
    "IST0130",
    "VirtualServiceUnreachableRule",
    Level.WARNING,
    "A VirtualService rule will never be used because a previous rule uses the same match.",
)
VIRTUAL_SERVICE_INEFFECTIVE_MATCH = MessageType(
    "IST0131",
    "VirtualServiceIneffectiveMatch",
    Level.INFO,
    "A VirtualService rule match duplicates a match in a previous rule.",
)
VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY = MessageType(
    "IST0132",
    "VirtualServiceHostNotFoundInGateway",
    Level.WARNING,
    "Host defined in VirtualService not found in Gateway.",
)
GATEWAY_PORT_NOT_DEFINED_ON_SERVICE = MessageType(
    "IST0162",
    "GatewayPortNotDefinedOnService",
    Level.WARNING,
    "Gateway port not exposed by service",
)
DESTINATION_RULE_SUBSET_NOT_SELECT_PODS = MessageType(
    "IST0173",
    "DestinationRuleSubsetNotSelectPods",
    Level.ERROR,
    "Subsets defined in destination does not select any pods.",
)
UNKNOWN_DESTINATION_RULE_HOST = MessageType(
    "IST0174",
    "UnknownDestinationRuleHost",
    Level.WARNING,
    "Host defined in destination rule does not match any services in the mesh.",
)
CONFLICTING_DESTINATION_RULES = MessageType(
    "MC0101",
    "ConflictingDestinationRules",
    Level.WARNING,
    "DestinationRules for one host conflict; Istio merges them and drops the conflicting parts.",
)
REQUEST_AUTH_WITHOUT_REQUEST_AUTHENTICATION = MessageType(
    "MC0102",
    "RequestAuthWithoutRequestAuthentication",
    Level.WARNING,
    "An AuthorizationPolicy uses JWT attributes but no RequestAuthentication applies.",
)
HTTP_ONLY_CONDITION_ON_TCP_PORT = MessageType(
    "MC0103",
    "HTTPOnlyConditionOnTCPPort",
    Level.WARNING,
    "An AuthorizationPolicy uses HTTP-only attributes for a workload that serves only TCP.",
)

ANALYZER_MESSAGE_TYPES: dict[str, MessageType] = {
    t.code: t
    for t in (
        REFERENCED_RESOURCE_NOT_FOUND,
        CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS,
        VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED,
        PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION,
        NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL,
        NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL,
        VIRTUAL_SERVICE_UNREACHABLE_RULE,
        VIRTUAL_SERVICE_INEFFECTIVE_MATCH,
        VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY,
        GATEWAY_PORT_NOT_DEFINED_ON_SERVICE,
        DESTINATION_RULE_SUBSET_NOT_SELECT_PODS,
        UNKNOWN_DESTINATION_RULE_HOST,
        CONFLICTING_DESTINATION_RULES,
        REQUEST_AUTH_WITHOUT_REQUEST_AUTHENTICATION,
        HTTP_ONLY_CONDITION_ON_TCP_PORT,
    )
}


def quote(value: str) -> str:
    """Go's `%q`: a double-quoted string with escapes."""
    return json.dumps(value, ensure_ascii=False)


def go_list(values: list[str] | tuple[str, ...]) -> str:
    """Go's `%v` of a `[]string`: `[a b]`."""
    return "[" + " ".join(values) + "]"


def referenced_not_found(reftype: str, refval: str) -> str:
    """IST0101's text."""
    return f"Referenced {reftype} not found: {quote(refval)}"


def documentation_url(code: str) -> str | None:
    """Istio's documentation page for an IST code (None for meshcore's own codes)."""
    if not code.startswith("IST"):
        return None
    return f"https://istio.io/latest/docs/reference/config/analysis/{code.lower()}/"
