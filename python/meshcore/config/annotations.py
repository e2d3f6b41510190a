"""meshcore's own annotations on Istio objects: their names and the values they accept.

Annotations carry what Istio's schemas have no field for, so the same YAML stays valid
under Istio's CRDs (which refuse unknown spec fields) and means nothing to Istio itself.

- `meshcore.io/load-balancer` on a DestinationRule: `PEAK_EWMA` balances the host and its
  subsets with Linkerd's peak-EWMA balancer (snapshot `lb_policy: peak_ewma`) wherever
  the rule sets no `loadBalancer`; setting both it and `spec.trafficPolicy.loadBalancer`
  is a compile warning, and the Istio field wins (as under Istio).
"""

from __future__ import annotations

from meshcore.config.base import IstioResource

LOAD_BALANCER = "meshcore.io/load-balancer"
"""DestinationRule annotation: the load balancer Istio's `loadBalancer.simple` cannot name."""

LOAD_BALANCERS = {"PEAK_EWMA": "peak_ewma"}
"""The values `meshcore.io/load-balancer` accepts → snapshot `lb_policy`."""


def annotation_path(name: str) -> str:
    """The field path diagnostics give an annotation (`metadata.annotations{name}`)."""
    return f"metadata.annotations{{{name}}}"


def load_balancer_annotation(resource: IstioResource) -> str | None:
    """The snapshot `lb_policy` `meshcore.io/load-balancer` asks for (None: unset or unknown)."""
    value = (resource.metadata.annotations or {}).get(LOAD_BALANCER)
    return None if value is None else LOAD_BALANCERS.get(value)


def load_balancer_error(resource: IstioResource) -> str | None:
    """Why `meshcore.io/load-balancer` is invalid on `resource`, if it is."""
    value = (resource.metadata.annotations or {}).get(LOAD_BALANCER)
    if value is None or value in LOAD_BALANCERS:
        return None
    known = ", ".join(LOAD_BALANCERS)
    return f"annotation {LOAD_BALANCER}: unknown load balancer {value!r} (meshcore knows {known})"
