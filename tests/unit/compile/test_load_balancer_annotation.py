"""`meshcore.io/load-balancer: PEAK_EWMA` on a DestinationRule: Linkerd's peak-EWMA
balancer, where the rule sets no `loadBalancer` of its own."""

from __future__ import annotations

from meshcore.compile import Compiled
from meshcore.config import load_text

from .helpers import compile_text

SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: a}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}, {name: http-admin, port: 9090}]
---
"""
HOST = "reviews.a.svc.cluster.local"


def _rule(annotation: str, spec: str) -> str:
    return f"""apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: a
  annotations: {{meshcore.io/load-balancer: {annotation}}}
spec:
  host: reviews
{spec}"""


SUBSETS = """  subsets:
  - {name: v1, labels: {version: v1}}
  - name: v2
    labels: {version: v2}
    trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
"""


def _lb(compiled: Compiled, port: int, subset: str = "") -> str:
    cluster = compiled.snapshot.cluster(f"outbound|{port}|{subset}|{HOST}")
    assert cluster is not None
    return cluster.lb_policy


def test_peak_ewma_applies_to_the_host_and_subsets_without_a_load_balancer() -> None:
    compiled = compile_text(SERVICE + _rule("PEAK_EWMA", SUBSETS), "c.a")
    assert _lb(compiled, 9080) == "peak_ewma"
    assert _lb(compiled, 9090) == "peak_ewma"
    assert _lb(compiled, 9080, "v1") == "peak_ewma"
    assert _lb(compiled, 9080, "v2") == "round_robin"
    assert compiled.diagnostics == []


def test_port_level_load_balancer_replaces_the_annotation_on_its_port() -> None:
    spec = """  trafficPolicy:
    portLevelSettings:
    - port: {number: 9090}
      loadBalancer: {simple: RANDOM}
"""
    compiled = compile_text(SERVICE + _rule("PEAK_EWMA", spec), "c.a")
    assert (_lb(compiled, 9080), _lb(compiled, 9090)) == ("peak_ewma", "random")
    assert compiled.diagnostics == []


def test_without_the_annotation_istios_default_stays() -> None:
    text = SERVICE + _rule("PEAK_EWMA", SUBSETS).replace(
        "  annotations: {meshcore.io/load-balancer: PEAK_EWMA}\n", ""
    )
    assert _lb(compile_text(text, "c.a"), 9080) == "least_request"


def test_annotation_and_load_balancer_together_warn_and_the_istio_field_wins() -> None:
    spec = "  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n" + SUBSETS
    compiled = compile_text(SERVICE + _rule("PEAK_EWMA", spec), "c.a")
    assert (_lb(compiled, 9080), _lb(compiled, 9080, "v1")) == ("random", "random")
    [warning] = compiled.diagnostics
    assert warning.origin == "DestinationRule a/reviews"
    assert warning.path == "spec.trafficPolicy.loadBalancer"
    assert warning.message == (
        "annotation meshcore.io/load-balancer: PEAK_EWMA is ignored because "
        "spec.trafficPolicy.loadBalancer is set too (the Istio field wins); remove one of them"
    )


def test_an_unknown_value_is_an_error_naming_the_annotation() -> None:
    result = load_text(SERVICE + _rule("peak-ewma", SUBSETS), "dr.yaml")
    [error] = result.errors
    assert error.origin == "DestinationRule a/reviews"
    assert error.path == "metadata.annotations{meshcore.io/load-balancer}"
    assert (error.file, error.line) == ("dr.yaml", 14)  # the annotation's line
    assert error.message == (
        "annotation meshcore.io/load-balancer: unknown load balancer 'peak-ewma' "
        "(meshcore knows PEAK_EWMA)"
    )
