"""Every `x-kubernetes-validations` rule of the supported kinds, violated once.

The table is built from the schema: each (kind, path, rule) gets a maximal object that
satisfies everything, then one mutation that breaks just that rule. The model must reject it
with the rule's own message. A rule without a mutation here fails the test, so a new CEL rule
in a newer schema cannot go unnoticed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from meshcore.config.kinds import ISTIO_KINDS
from tests.unit.config.schema import KINDS, concrete, crds, maximal_object, spec_schema, walk

Mutation = Callable[[Any], Any]


def _set(**fields: Any) -> Mutation:
    def apply(obj: Any) -> Any:
        return {**obj, **fields}

    return apply


def _drop(*names: str) -> Mutation:
    def apply(obj: Any) -> Any:
        return {k: v for k, v in obj.items() if k not in names}

    return apply


def _all_of(*names: str) -> Mutation:
    """Set every field of an at-most-one group (values borrowed from a fuller object)."""

    def apply(obj: Any) -> Any:
        return {**obj, **{name: _BORROWED[name] for name in names}}

    return apply


_BORROWED: dict[str, Any] = {
    "tlsCertificates": [{"serverCertificate": "/c.pem", "privateKey": "/k.pem"}],
    "credentialNames": ["a", "b"],
    "credentialName": "a",
    "workloadSelector": {"labels": {"app": "a"}},
    "endpoints": [{"address": "10.0.0.1"}],
    "selector": {"matchLabels": {"app": "a"}},
    "targetRef": {"kind": "Service", "name": "a"},
    "targetRefs": [{"kind": "Service", "name": "a"}],
    "jwksUri": "https://example.com/jwks",
    "jwks_uri": "https://example.com/jwks",
    "jwks": "{}",
}


def _dup_port(ports: Any) -> Any:
    return [*ports, {**ports[0], "name": "other"}]


# By CEL rule text (or message, where one text has two messages): how to break it.
MUTATIONS: dict[str, Mutation] = {
    "must be a valid duration greater than 1ms": lambda _: "0.5ms",
    "wildcard not allowed in label key match": lambda labels: {**labels, "a*": "b"},
    "key must not be empty": lambda labels: {**labels, "": "b"},
    "wildcard not allowed in label value match": lambda _: "a*",
    "wildcard is not supported in selector": lambda _: "a*",
    "Address is required": _drop("address", "network"),
    "UDS may not include ports": _set(address="unix:///var/run/app.sock", ports={"http": 8080}),
    "UDS must be an absolute path or abstract socket": lambda _: "unix://relative.sock",
    "UDS may not be a dir": lambda _: "unix:///var/run/",
    "port name must be valid": lambda ports: {"-bad-": 80},
    "port must be between 1-65535": lambda value: 0 if isinstance(value, int) else {"0": {}},
    "hostname cannot be wildcard": lambda _: "*",
    "port number cannot be duplicated": _dup_port,
    "scheme must be one of [HTTP, HTTPS]": lambda _: "FTP",
    "CIDR addresses are allowed only for NONE/STATIC resolution types": _set(
        addresses=["10.0.0.0/8"], resolution="DNS"
    ),
    "NONE mode cannot set endpoints": lambda spec: _drop("workloadSelector")(
        _set(resolution="NONE", endpoints=[{"address": "10.0.0.1"}])(spec)
    ),
    "DNS_ROUND_ROBIN mode cannot have multiple endpoints": lambda spec: _drop("workloadSelector")(
        _set(
            resolution="DNS_ROUND_ROBIN",
            endpoints=[{"address": "a.example"}, {"address": "b.example"}],
        )(spec)
    ),
    "Cannot set serviceAccounts with namespaces or principals": _set(
        serviceAccounts=["ns/sa"], principals=["cluster.local/ns/a/sa/b"]
    ),
    "cross namespace referencing is not currently supported": lambda _: "other",
    "portLevelMtls requires selector": _drop("selector"),
    "url must have scheme http:// or https://": lambda _: "ftp://example.com/jwks",
    "value must be set when operation is UPSERT": _set(operation="UPSERT", value=""),
    "value must not be set when operation is REMOVE": _set(operation="REMOVE", value="x"),
}


def _at_most_one_mutation(rule: str) -> Mutation:
    import re  # noqa: PLC0415 - only the table builder needs it

    return _all_of(*re.findall(r"has\(self\.(\w+)\)", rule))


def cel_cases() -> list[Any]:
    cases = []
    for kind in KINDS:
        for path, node in walk(spec_schema(kind)):
            for rule in node.get("x-kubernetes-validations", []):
                message = rule["message"]
                if rule["rule"].startswith("(has(") and rule["rule"].endswith("<= 1"):
                    mutation = _at_most_one_mutation(rule["rule"])
                else:
                    mutation = MUTATIONS[message]
                cases.append(
                    pytest.param(kind, path, mutation, message, id=f"{kind}:{path}:{message}")
                )
    return cases


CASES = cel_cases()


def test_table_covers_every_rule() -> None:
    total = sum(
        len(n.get("x-kubernetes-validations", [])) for k in KINDS for _, n in walk(spec_schema(k))
    )
    assert len(CASES) == total
    assert total >= 40


@pytest.mark.parametrize(("kind", "path", "mutation", "message"), CASES)
def test_cel_rule_rejects_with_istio_message(
    kind: str, path: str, mutation: Mutation, message: str
) -> None:
    obj = maximal_object(kind, want=path)
    parts = concrete(path, obj, kind)
    assert parts is not None, path
    broken = copy.deepcopy(obj)
    if parts == ["spec"]:
        broken["spec"] = mutation(broken["spec"])
    else:
        target: Any = broken
        for part in parts[:-1]:
            target = target[part]
        target[parts[-1]] = mutation(target[parts[-1]])
    model = ISTIO_KINDS[(crds()[kind]["spec"]["group"], kind)]
    with pytest.raises(ValidationError) as failure:
        model.model_validate(broken)
    messages = [str(error["msg"]) for error in failure.value.errors()]
    assert any(message in text for text in messages), messages
