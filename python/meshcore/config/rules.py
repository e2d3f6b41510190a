"""The CRD layer's cross-field rules: `oneOf` exclusivity and `x-kubernetes-validations`.

The generated models (`networking`, `security`, `telemetry`) call these functions. Each one
implements one CEL rule from Istio's CRDs and fails with that rule's `message`, so errors read
like the ones `kubectl apply` prints. Value rules are pydantic after-validators that raise
`ValueError`; object rules return the violated message (or None) and `enforce` raises them
together, so an object that breaks two rules reports both.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel

from meshcore.config.durations import NANOS_PER_MS, DurationError, parse_duration

T = TypeVar("T")

_PORT_NAME = re.compile(r"^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$")


def enforce(*violations: str | None) -> None:
    """Raise one `ValueError` naming every violated rule, if any."""
    messages = [message for message in violations if message is not None]
    if messages:
        raise ValueError("; ".join(messages))


def _has(model: BaseModel, field: str) -> bool:
    """CEL's `has(self.field)`: the field is present (Kubernetes prunes explicit nulls)."""
    return getattr(model, field) is not None


def _alias(model: BaseModel, field: str) -> str:
    alias = type(model).model_fields[field].alias
    return alias if alias is not None else field


def rename_keys(data: Any, renames: dict[str, str]) -> Any:
    """Move input keys to other names before validation (legacy snake_case JSON fields)."""
    if not isinstance(data, dict) or not any(key in data for key in renames):
        return data
    return {renames.get(key, key): value for key, value in data.items()}


# Object rules ---------------------------------------------------------------------------


def at_most_one_of(model: BaseModel, message: str | None, *fields: str) -> str | None:
    """At most one of `fields` is set (CEL `(has(a)?1:0) + (has(b)?1:0) <= 1`, or `oneOf`)."""
    present = [field for field in fields if _has(model, field)]
    if len(present) <= 1:
        return None
    if message is not None:
        return message
    names = ", ".join(_alias(model, field) for field in fields)
    return f"only one of {names} can be set (got {', '.join(_alias(model, f) for f in present)})"


def address_or_network_required(model: BaseModel) -> str | None:
    """WorkloadEntry and ServiceEntry endpoints need an address, unless a network is named."""
    if _has(model, "address") or _has(model, "network"):
        return None
    return "Address is required"


def uds_has_no_ports(model: BaseModel) -> str | None:
    """A `unix://` endpoint has no ports."""
    address = getattr(model, "address", None) or ""
    if address.startswith("unix://") and _has(model, "ports"):
        return "UDS may not include ports"
    return None


def service_entry_workload_selector_or_endpoints(model: BaseModel) -> str | None:
    """A ServiceEntry selects workloads or lists endpoints, not both."""
    return at_most_one_of(
        model,
        "only one of WorkloadSelector or Endpoints can be set",
        "workload_selector",
        "endpoints",
    )


def service_entry_cidr_needs_static_or_none(model: BaseModel) -> str | None:
    """CIDR addresses only make sense when meshcore does not resolve the hosts by DNS."""
    addresses: list[str] = getattr(model, "addresses", None) or []
    resolution = getattr(model, "resolution", None) or "NONE"
    if any("/" in address for address in addresses) and resolution not in ("STATIC", "NONE"):
        return "CIDR addresses are allowed only for NONE/STATIC resolution types"
    return None


def service_entry_none_has_no_endpoints(model: BaseModel) -> str | None:
    """`resolution: NONE` forwards to the original destination, so endpoints are meaningless."""
    resolution = getattr(model, "resolution", None) or "NONE"
    if resolution == "NONE" and _has(model, "endpoints"):
        return "NONE mode cannot set endpoints"
    return None


def service_entry_round_robin_single_endpoint(model: BaseModel) -> str | None:
    """`DNS_ROUND_ROBIN` resolves exactly one name."""
    resolution = getattr(model, "resolution", None) or ""
    endpoints: list[Any] = getattr(model, "endpoints", None) or []
    if resolution == "DNS_ROUND_ROBIN" and len(endpoints) > 1:
        return "DNS_ROUND_ROBIN mode cannot have multiple endpoints"
    return None


def service_accounts_exclusive(model: BaseModel) -> str | None:
    """An authorization source names service accounts, or principals/namespaces, not both."""
    if not (_has(model, "service_accounts") or _has(model, "not_service_accounts")):
        return None
    others = ("principals", "not_principals", "namespaces", "not_namespaces")
    if any(_has(model, field) for field in others):
        return "Cannot set serviceAccounts with namespaces or principals"
    return None


def port_level_mtls_requires_selector(model: BaseModel) -> str | None:
    """Port-level mTLS needs a workload selector with at least one label."""
    if not _has(model, "port_level_mtls"):
        return None
    selector = getattr(model, "selector", None)
    labels = getattr(selector, "match_labels", None) if selector is not None else None
    if not labels:
        return "portLevelMtls requires selector"
    return None


def upsert_needs_value(model: BaseModel) -> str | None:
    """A metric tag override that upserts needs a value expression."""
    operation = getattr(model, "operation", None) or ""
    if operation == "UPSERT" and (getattr(model, "value", None) or "") == "":
        return "value must be set when operation is UPSERT"
    return None


def remove_has_no_value(model: BaseModel) -> str | None:
    """A metric tag override that removes the tag has no value."""
    operation = getattr(model, "operation", None) or ""
    if operation == "REMOVE" and _has(model, "value"):
        return "value must not be set when operation is REMOVE"
    return None


# Value rules (pydantic after-validators) -------------------------------------------------


def duration_at_least_1ms(value: str) -> str:
    """A duration of at least one millisecond."""
    try:
        nanos = parse_duration(value)
    except DurationError:
        raise ValueError("must be a valid duration greater than 1ms") from None
    if nanos < NANOS_PER_MS:
        raise ValueError("must be a valid duration greater than 1ms")
    return value


def label_keys_without_wildcard(labels: dict[str, str]) -> dict[str, str]:
    """Label selectors match exact keys."""
    if any("*" in key for key in labels):
        raise ValueError("wildcard not allowed in label key match")
    return labels


def label_keys_not_empty(labels: dict[str, str]) -> dict[str, str]:
    """Label selector keys are non-empty."""
    if any(key == "" for key in labels):
        raise ValueError("key must not be empty")
    return labels


def label_value_without_wildcard(value: str) -> str:
    """Label selectors match exact values."""
    if "*" in value:
        raise ValueError("wildcard not allowed in label value match")
    return value


def selector_value_without_wildcard(value: str) -> str:
    """ServiceEntry and Sidecar selectors match exact values."""
    if "*" in value:
        raise ValueError("wildcard is not supported in selector")
    return value


def uds_absolute_or_abstract(address: str) -> str:
    """`unix://` addresses are absolute paths or abstract sockets (`@name`)."""
    if address.startswith("unix://") and address[7:8] not in ("/", "@"):
        raise ValueError("UDS must be an absolute path or abstract socket")
    return address


def uds_not_a_directory(address: str) -> str:
    """`unix://` addresses name a socket, not a directory."""
    if address.startswith("unix://") and address.endswith("/"):
        raise ValueError("UDS may not be a dir")
    return address


def port_names_valid(ports: dict[str, int]) -> dict[str, int]:
    """Endpoint port maps are keyed by port names (DNS label style, under 63 characters)."""
    if not all(len(name) < 63 and _PORT_NAME.match(name) for name in ports):
        raise ValueError("port name must be valid")
    return ports


def port_in_range(port: int) -> int:
    """A TCP/UDP port number."""
    if not 0 < port <= 65535:
        raise ValueError("port must be between 1-65535")
    return port


def port_keys_in_range(ports: Mapping[str, T]) -> Mapping[str, T]:
    """Maps keyed by port number (PeerAuthentication `portLevelMtls`)."""
    for key in ports:
        try:
            number = int(key)
        except ValueError:
            raise ValueError("port must be between 1-65535") from None
        if not 0 < number <= 65535:
            raise ValueError("port must be between 1-65535")
    return ports


def host_not_wildcard(host: str) -> str:
    """ServiceEntry hosts name something; `*` alone would capture everything."""
    if host == "*":
        raise ValueError("hostname cannot be wildcard")
    return host


def port_numbers_unique(ports: Sequence[T]) -> Sequence[T]:
    """No two ServiceEntry ports share a number."""
    numbers = [getattr(port, "number", None) for port in ports]
    if len(numbers) != len(set(numbers)):
        raise ValueError("port number cannot be duplicated")
    return ports


def names_unique(items: Sequence[T]) -> Sequence[T]:
    """`x-kubernetes-list-type: map` keyed by `name`: names are unique."""
    names = [getattr(item, "name", None) for item in items]
    duplicates = sorted({name for name in names if names.count(name) > 1 and name is not None})
    if duplicates:
        raise ValueError(f"duplicate entries for key name={duplicates[0]!r}")
    return items


def probe_scheme_http_or_https(scheme: str) -> str:
    """Readiness probes speak HTTP or HTTPS."""
    if scheme not in ("", "HTTP", "HTTPS"):
        raise ValueError("scheme must be one of [HTTP, HTTPS]")
    return scheme


def same_namespace_only(namespace: str) -> str:
    """Policy target references stay inside the policy's namespace."""
    if namespace != "":
        raise ValueError("cross namespace referencing is not currently supported")
    return namespace


def url_scheme_http_or_https(url: str) -> str:
    """JWKS URIs are fetched over HTTP(S)."""
    try:
        scheme = urlsplit(url).scheme
    except ValueError:
        scheme = ""
    if scheme not in ("http", "https"):
        raise ValueError("url must have scheme http:// or https://")
    return url
