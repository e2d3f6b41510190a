"""Services and endpoints: from ServiceEntry/WorkloadEntry and Service/Pod files, later from
Kubernetes informers.

The compiler sees only the `ServiceRegistry` interface: services by hostname (with ports,
protocols and resolution), workloads by name, and which services select a workload.
`registry_from_resources` builds the in-memory implementation from loaded config::

    from meshcore.config import load_paths
    from meshcore.registry import registry_from_resources

    registry = registry_from_resources(load_paths(["mesh/"]).resources)
    registry.services_for_host("reviews.default.svc.cluster.local")

This layer imports only `meshcore.config`.
"""

from meshcore.registry.dns import Resolver, is_ip, system_resolver
from meshcore.registry.files import EXPORT_TO_ANNOTATION, export_set, registry_from_resources
from meshcore.registry.model import EMPTY_LABELS, Resolution, Service, ServicePort, Workload
from meshcore.registry.protocol import PortProtocol, parse_protocol, port_protocol
from meshcore.registry.registry import DEFAULT_DOMAIN_SUFFIX, MemoryRegistry, ServiceRegistry

__all__ = [
    "DEFAULT_DOMAIN_SUFFIX",
    "EMPTY_LABELS",
    "EXPORT_TO_ANNOTATION",
    "MemoryRegistry",
    "PortProtocol",
    "Resolution",
    "Resolver",
    "Service",
    "ServicePort",
    "ServiceRegistry",
    "Workload",
    "export_set",
    "is_ip",
    "parse_protocol",
    "port_protocol",
    "registry_from_resources",
    "system_resolver",
]
