"""Each analyzer on a fixture that has the problem (bad.yaml) and one that does not (good.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshcore.config import Diagnostic, Level, LoadResult, load_paths, load_text
from meshcore.config.analyzers import ALL_ANALYZERS, analyze, format_text
from meshcore.config.analyzers.messages import ANALYZER_MESSAGE_TYPES

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "analyze"

# fixture directory -> (code, level, origin, line, text fragment) expected for bad.yaml
EXPECTED: dict[str, list[tuple[str, Level, str, int, str]]] = {
    "destination_hosts": [
        ("IST0101", Level.ERROR, "VirtualService default/reviews", 49,
         'Referenced host not found: "reviews2"'),
        ("IST0101", Level.ERROR, "VirtualService default/reviews", 55,
         'Referenced host:port not found: "reviews:9999"'),
        ("IST0101", Level.ERROR, "VirtualService default/reviews", 65,
         'Referenced mirror host not found: "nothere.example.com"'),
        ("IST0112", Level.ERROR, "VirtualService default/reviews", 63,
         'routes to a service "multi" that exposes multiple ports [80 81]'),
    ],
    "destination_subsets": [
        ("IST0101", Level.ERROR, "VirtualService default/reviews", 45,
         'Referenced host+subset in destinationrule not found: "reviews+v2"'),
    ],
    "virtualservice_gateways": [
        ("IST0101", Level.ERROR, "VirtualService default/reviews", 47,
         'Referenced gateway not found: "missing-gw"'),
        ("IST0132", Level.WARNING, "VirtualService default/reviews", 48,
         "one or more host [ratings.example.com] defined in VirtualService default/reviews "
         "not found in Gateway istio-system/public."),
    ],
    "mesh_gateway_hosts": [
        ("IST0109", Level.ERROR, "VirtualService default/reviews-a", 26,
         "The VirtualServices default/reviews-a,default/reviews-b associated with mesh gateway "
         "define the same host */reviews.default.svc.cluster.local which can lead to undefined "
         "behavior."),
        ("IST0109", Level.ERROR, "VirtualService default/reviews-b", 38,
         "define the same host */reviews.default.svc.cluster.local"),
    ],
    "gateway_ports": [
        ("IST0101", Level.ERROR, "Gateway default/nobody", 49,
         'Referenced selector not found: "istio=egressgateway"'),
        ("IST0162", Level.WARNING, "Gateway default/web", 34,
         "The gateway is listening on a target port (port 8443) that is not defined in the "
         "Service associated with its workload instances (Pod selector istio=ingressgateway)."),
    ],
    "conflicting_destination_rules": [
        ("MC0101", Level.WARNING, "DestinationRule default/reviews-tls", 43,
         "DestinationRules default/reviews-lb and default/reviews-tls both set a traffic policy"),
        ("MC0101", Level.WARNING, "DestinationRule default/reviews-tls", 47,
         "subset 'v1' of host reviews.default.svc.cluster.local is already defined"),
    ],
    "subset_workloads": [
        ("IST0173", Level.ERROR, "DestinationRule default/reviews", 33,
         "The Subset v9 defined in the DestinationRule does not select any pods."),
    ],
    "destination_rule_hosts": [
        ("IST0174", Level.WARNING, "DestinationRule default/typo", 28,
         "The host reveiws defined in the DestinationRule does not match any services"),
    ],
    "destination_rule_tls": [
        ("IST0128", Level.WARNING, "DestinationRule default/reviews", 31,
         "DestinationRule reviews in namespace default has TLS mode set to SIMPLE but no "
         "caCertificates are set to validate server identity for host: reviews"),
        ("IST0129", Level.WARNING, "DestinationRule default/reviews", 36,
         "has TLS mode set to MUTUAL but no caCertificates are set to validate server identity "
         "for host: reviews at port 9080"),
    ],
    "sidecar_egress": [
        ("IST0101", Level.ERROR, "Sidecar default/default", 20,
         'Referenced namespace not found: "istio-sytem"'),
    ],
    "authz_namespaces": [
        ("IST0101", Level.ERROR, "AuthorizationPolicy default/from-frontend", 19,
         'Referenced namespace not found: "frontend"'),
    ],
    "authz_conditions": [
        ("MC0103", Level.WARNING, "AuthorizationPolicy default/db-headers", 69,
         "methods is an HTTP attribute, but the selected workloads serve only TCP on ports "
         "[5432]: Istio applies the DENY rule without it"),
        ("MC0103", Level.WARNING, "AuthorizationPolicy default/db-headers", 71,
         "request.headers[x-debug] is an HTTP attribute"),
        ("MC0102", Level.WARNING, "AuthorizationPolicy default/reviews-jwt", 54,
         "request.auth.claims[groups] reads the request's validated JWT, but no "
         "RequestAuthentication applies"),
    ],
    "virtualservice_rules": [
        ("IST0130", Level.WARNING, "VirtualService default/reviews", 39,
         'VirtualService rule "jason-again" not used (all matches used by prior rules).'),
        ("IST0130", Level.WARNING, "VirtualService default/reviews", 51,
         "VirtualService rule #3 not used (rule #2 before it matches all traffic)."),
        ("IST0131", Level.INFO, "VirtualService default/reviews", 41,
         'VirtualService rule "jason-again" match "same" is not used (duplicate/overlapping '
         'match in rule "jason").'),
    ],
    "service_port_names": [
        ("IST0118", Level.INFO, "Service default/web", 9,
         "Port name web (port: 8080, targetPort: 80) doesn't follow the naming convention of "
         "Istio port."),
    ],
}  # fmt: skip


def findings(path: Path) -> list[Diagnostic]:
    """What analyze reports for one file, without the unimplemented-field warnings."""
    return [d for d in analyze(load_paths([path])) if d.code != "MC0003"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_fixture_reports_the_problem(name: str) -> None:
    bad = FIXTURES / name / "bad.yaml"
    found = findings(bad)
    assert len(found) == len(EXPECTED[name]), [format_text(d) for d in found]
    for diagnostic, (code, level, origin, line, text) in zip(found, EXPECTED[name], strict=True):
        assert (diagnostic.code, diagnostic.level, diagnostic.origin) == (code, level, origin)
        assert diagnostic.file == str(bad)
        assert diagnostic.line == line, format_text(diagnostic)
        assert text in diagnostic.message


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_good_fixture_is_clean(name: str) -> None:
    found = findings(FIXTURES / name / "good.yaml")
    assert [format_text(d) for d in found] == []


def test_every_analyzer_code_is_covered_by_a_fixture() -> None:
    covered = {code for cases in EXPECTED.values() for code, *_ in cases}
    declared = {code for analyzer in ALL_ANALYZERS for code in analyzer.codes}
    assert declared <= covered
    assert declared <= set(ANALYZER_MESSAGE_TYPES)


def test_bookinfo_analyzes_clean_apart_from_unimplemented_gateway_fields() -> None:
    found = analyze(load_paths([FIXTURES / "bookinfo"]))
    assert {d.code for d in found} <= {"MC0003"}
    assert {d.origin for d in found} == {"Gateway default/bookinfo-gateway"}


def test_bookinfo_typos_are_found() -> None:
    text = (FIXTURES / "bookinfo" / "virtual-service-reviews-90-10.yaml").read_text()
    broken = text.replace("subset: v3", "subset: v4").replace("host: ratings\n", "host: rating\n")
    loaded = load_paths([FIXTURES / "bookinfo"])
    kept = [
        (resource, source)
        for resource, source in zip(loaded.resources, loaded.sources, strict=True)
        if "virtual-service" not in source.file
    ]
    result = LoadResult([r for r, _ in kept], [s for _, s in kept])
    result.extend(load_text(broken, "vs.yaml"))
    codes = sorted((d.code, d.message) for d in analyze(result) if d.code.startswith("IST"))
    assert codes == [
        ("IST0101", 'Referenced host not found: "rating"'),
        ("IST0101", 'Referenced host+subset in destinationrule not found: "rating+v1"'),
        ("IST0101", 'Referenced host+subset in destinationrule not found: "reviews+v4"'),
    ]
