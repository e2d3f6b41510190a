"""`simulate` and the `meshcore simulate`/`compile` commands: one test per decision."""

from __future__ import annotations

import json

import pytest

from meshcore.cli.main import main
from meshcore.compile.simulate import Request, simulate

from .helpers import FIXTURES, compile_fixture


def _outcome(fixture: str, proxy: str, url: str, method: str = "GET", **headers: str):
    snapshot = compile_fixture(fixture, proxy).snapshot
    return simulate(snapshot, Request.from_url(url, method, headers))


def test_canary_split_routes_to_v1_and_v3_by_weight() -> None:
    outcome = _outcome("bookinfo.yaml", "productpage-v1.default", "http://reviews:9080/reviews/0")
    assert outcome.decision == "route"
    assert (outcome.virtual_service, outcome.rule_index) == ("default/reviews", 1)
    assert [(d.host, d.subset, d.port, d.weight) for d in outcome.destinations] == [
        ("reviews.default.svc.cluster.local", "v1", 9080, 90),
        ("reviews.default.svc.cluster.local", "v3", 9080, 10),
    ]
    assert outcome.endpoints == ["10.244.0.21:9080", "10.244.0.23:9080"]
    assert outcome.retries is not None
    assert outcome.retries["attempts"] == 2


def test_end_user_jason_goes_to_v2() -> None:
    outcome = _outcome(
        "bookinfo.yaml", "productpage-v1.default", "http://reviews:9080/", **{"end-user": "jason"}
    )
    assert outcome.rule_index == 0
    assert [(d.subset, d.weight) for d in outcome.destinations] == [("v2", 100)]


def test_service_without_virtual_service_gets_the_default_route() -> None:
    outcome = _outcome("bookinfo.yaml", "productpage-v1.default", "http://ratings.default:9080/")
    assert outcome.decision == "route"
    assert outcome.virtual_service is None
    assert [d.cluster for d in outcome.destinations] == [
        "outbound|9080||ratings.default.svc.cluster.local"
    ]


def test_redirect_direct_response_and_no_route() -> None:
    base = "http://ratings.example.com"
    redirect = _outcome(
        "redirect-rewrite-direct.yaml",
        "sleep.default",
        f"{base}/v1/getProductRatings",
        authorization="x",
    )
    assert redirect.decision == "redirect"
    assert redirect.redirect == {
        "authority": "newratings.default.svc.cluster.local",
        "path": "/v1/bookRatings",
        "response_code": 301,
    }
    health = _outcome(
        "redirect-rewrite-direct.yaml", "sleep.default", f"{base}/x?probe=true", authorization="x"
    )
    assert (health.decision, health.rule_index) == ("direct_response", 3)
    assert health.direct_response == {"status": 200, "body": "ok\n"}
    anonymous = _outcome("redirect-rewrite-direct.yaml", "sleep.default", f"{base}/anything")
    assert (anonymous.decision, anonymous.rule_index) == ("direct_response", 4)
    rewritten = _outcome(
        "redirect-rewrite-direct.yaml", "sleep.default", f"{base}/RATINGS/1", authorization="x"
    )
    assert rewritten.rule_index == 1  # ignoreUriCase
    assert rewritten.rewrite == {"uri_prefix": "/v1/bookRatings", "authority": "ratings.internal"}


def test_allow_any_passes_unknown_ports_through() -> None:
    snapshot = compile_fixture("source-labels.yaml", "sleep.other").snapshot
    unknown = simulate(snapshot, Request.from_url("http://reviews.default.svc.cluster.local:1/"))
    assert unknown.decision == "route"
    assert unknown.destinations[0].passthrough
    assert unknown.destinations[0].cluster == "PassthroughCluster"


def test_no_route_when_no_rule_matches() -> None:
    text_fixture = "redirect-rewrite-direct.yaml"
    snapshot = compile_fixture(text_fixture, "sleep.default").snapshot
    config = snapshot.route_config("outbound")
    assert config is not None
    vhost = config.virtual_hosts[0]
    # Drop the catch-all rule: a request nothing matches then gets no route (404 NR).
    trimmed = vhost.model_copy(update={"routes": vhost.routes[:-1]})
    config = config.model_copy(update={"virtual_hosts": [trimmed, *config.virtual_hosts[1:]]})
    snapshot = snapshot.model_copy(update={"route_configs": [config, *snapshot.route_configs[1:]]})
    outcome = simulate(
        snapshot,
        Request.from_url("http://ratings.example.com/other", headers={"authorization": "x"}),
    )
    assert outcome.decision == "no_route"


def test_registry_only_denies_unknown_hosts() -> None:
    outcome = _outcome("service-entries.yaml", "sleep.default", "http://example.org/")
    assert outcome.decision == "deny"
    assert outcome.origin == "Sidecar/default/default outboundTrafficPolicy"
    known = _outcome("service-entries.yaml", "sleep.default", "http://localhost:8081/")
    assert known.decision == "route"
    assert known.endpoints == ["127.0.0.1:8081"]


def test_cli_simulate_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "simulate",
            "-f",
            str(FIXTURES / "bookinfo.yaml"),
            "--from",
            "productpage-v1.default",
            "--url",
            "http://reviews:9080/",
            "-H",
            "end-user: jason",
            "-o",
            "json",
        ]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["decision"] == "route"
    assert data["virtual_service"] == "default/reviews"
    assert data["rule_index"] == 0
    assert data["destinations"][0]["subset"] == "v2"
    assert data["lb_policy"] == "least_request"


def test_cli_simulate_text(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "simulate",
            "-f",
            str(FIXTURES / "bookinfo.yaml"),
            "--from",
            "productpage-v1.default",
            "--url",
            "http://reviews:9080/",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "VirtualService default/reviews rule http[1]" in out
    assert "subset v3  weight 10" in out


def test_cli_compile_prints_snapshot_and_fails_on_errors(
    capsys: pytest.CaptureFixture[str], tmp_path
) -> None:
    assert (
        main(
            ["compile", "-f", str(FIXTURES / "bookinfo.yaml"), "--proxy", "productpage-v1.default"]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["version"].startswith("sha256:")
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\n"
        "spec: {hosts: [x], http: [{route: [{destination: {host: x}, weight: -1}]}]}\n"
    )
    assert main(["compile", "-f", str(broken), "--proxy", "a.default"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Error [IST0106]" in captured.err
    assert main(["compile", "-f", str(FIXTURES / "bookinfo.yaml"), "--proxy", "nonamespace"]) == 1
