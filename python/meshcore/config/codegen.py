"""Generator of the spec models in `networking`, `security` and `telemetry`.

It reads Istio's `crd-all.gen.yaml` (the reference schema) and writes one pydantic class per
distinct object schema: types, bounds, enums (as `Literal`), required fields, `oneOf`
exclusivity and every `x-kubernetes-validations` rule (through `meshcore.config.rules`). A CEL
rule this file does not know how to translate stops the generator, so a new rule in a newer
schema cannot be dropped silently.

Run it from the repository root after updating the schema:

    .venv/bin/python -m meshcore.config.codegen tests/fixtures/istio/crd-all.gen.yaml
    .venv/bin/ruff format python/meshcore/config

Class names are Istio's protobuf message names where `NAMES` gives one, otherwise derived
from the field name. Hand-written code (rules, validation, loader) never edits the output.
"""

from __future__ import annotations

import argparse
import json
import keyword
import re
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from meshcore.config.base import to_camel

Schema = dict[str, Any]

GROUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "networking.istio.io": (
        "networking",
        (
            "VirtualService",
            "DestinationRule",
            "Gateway",
            "ServiceEntry",
            "WorkloadEntry",
            "WorkloadGroup",
            "Sidecar",
        ),
    ),
    "security.istio.io": (
        "security",
        ("PeerAuthentication", "AuthorizationPolicy", "RequestAuthentication"),
    ),
    "telemetry.istio.io": ("telemetry", ("Telemetry",)),
}

# Istio's protobuf message names, by the first schema path where the message appears.
NAMES: dict[str, str] = {
    "VirtualService.spec.http[]": "HTTPRoute",
    "VirtualService.spec.http[].match[]": "HTTPMatchRequest",
    "VirtualService.spec.http[].match[].uri": "StringMatch",
    "VirtualService.spec.http[].route[]": "HTTPRouteDestination",
    "VirtualService.spec.http[].route[].destination": "Destination",
    "VirtualService.spec.http[].route[].destination.port": "PortSelector",
    "VirtualService.spec.http[].route[].headers": "Headers",
    "VirtualService.spec.http[].route[].headers.request": "HeaderOperations",
    "VirtualService.spec.http[].redirect": "HTTPRedirect",
    "VirtualService.spec.http[].directResponse": "HTTPDirectResponse",
    "VirtualService.spec.http[].directResponse.body": "HTTPBody",
    "VirtualService.spec.http[].delegate": "Delegate",
    "VirtualService.spec.http[].rewrite": "HTTPRewrite",
    "VirtualService.spec.http[].rewrite.uriRegexRewrite": "RegexRewrite",
    "VirtualService.spec.http[].retries": "HTTPRetry",
    "VirtualService.spec.http[].retries.backoffOptions": "HTTPRetryBackoffOptions",
    "VirtualService.spec.http[].fault": "HTTPFaultInjection",
    "VirtualService.spec.http[].fault.delay": "HTTPFaultInjectionDelay",
    "VirtualService.spec.http[].fault.delay.percentage": "Percent",
    "VirtualService.spec.http[].fault.abort": "HTTPFaultInjectionAbort",
    "VirtualService.spec.http[].mirrors[]": "HTTPMirrorPolicy",
    "VirtualService.spec.http[].corsPolicy": "CorsPolicy",
    "VirtualService.spec.tls[]": "TLSRoute",
    "VirtualService.spec.tls[].match[]": "TLSMatchAttributes",
    "VirtualService.spec.tls[].route[]": "RouteDestination",
    "VirtualService.spec.tcp[]": "TCPRoute",
    "VirtualService.spec.tcp[].match[]": "L4MatchAttributes",
    "DestinationRule.spec.trafficPolicy": "TrafficPolicy",
    "DestinationRule.spec.trafficPolicy.loadBalancer": "LoadBalancerSettings",
    "DestinationRule.spec.trafficPolicy.loadBalancer.consistentHash": "ConsistentHashLB",
    "DestinationRule.spec.trafficPolicy.loadBalancer.consistentHash.httpCookie": "HTTPCookie",
    "DestinationRule.spec.trafficPolicy.loadBalancer.consistentHash.ringHash": "RingHash",
    "DestinationRule.spec.trafficPolicy.loadBalancer.consistentHash.maglev": "MagLev",
    "DestinationRule.spec.trafficPolicy.loadBalancer.localityLbSetting": (
        "LocalityLoadBalancerSetting"
    ),
    "DestinationRule.spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[]": (
        "LocalityDistribute"
    ),
    "DestinationRule.spec.trafficPolicy.loadBalancer.localityLbSetting.failover[]": (
        "LocalityFailover"
    ),
    "DestinationRule.spec.trafficPolicy.connectionPool": "ConnectionPoolSettings",
    "DestinationRule.spec.trafficPolicy.connectionPool.tcp": "TCPSettings",
    "DestinationRule.spec.trafficPolicy.connectionPool.tcp.tcpKeepalive": "TcpKeepalive",
    "DestinationRule.spec.trafficPolicy.connectionPool.http": "HTTPSettings",
    "DestinationRule.spec.trafficPolicy.outlierDetection": "OutlierDetection",
    "DestinationRule.spec.trafficPolicy.tls": "ClientTLSSettings",
    "DestinationRule.spec.trafficPolicy.portLevelSettings[]": "PortTrafficPolicy",
    "DestinationRule.spec.trafficPolicy.tunnel": "TunnelSettings",
    "DestinationRule.spec.trafficPolicy.proxyProtocol": "ProxyProtocol",
    "DestinationRule.spec.trafficPolicy.retryBudget": "RetryBudget",
    "DestinationRule.spec.subsets[]": "Subset",
    "DestinationRule.spec.subsets[].trafficPolicy": "SubsetTrafficPolicy",
    "DestinationRule.spec.workloadSelector": "DestinationRuleWorkloadSelector",
    "Gateway.spec.servers[]": "Server",
    "Gateway.spec.servers[].port": "Port",
    "Gateway.spec.servers[].tls": "ServerTLSSettings",
    "ServiceEntry.spec.ports[]": "ServicePort",
    "ServiceEntry.spec.endpoints[]": "ServiceEntryEndpoint",
    "ServiceEntry.spec.workloadSelector": "WorkloadSelector",
    "WorkloadGroup.spec.metadata": "ObjectMetadata",
    "WorkloadGroup.spec.template": "WorkloadGroupTemplate",
    "WorkloadGroup.spec.probe": "ReadinessProbe",
    "WorkloadGroup.spec.probe.httpGet": "HTTPHealthCheckConfig",
    "WorkloadGroup.spec.probe.httpGet.httpHeaders[]": "HTTPHeader",
    "WorkloadGroup.spec.probe.tcpSocket": "TCPHealthCheckConfig",
    "WorkloadGroup.spec.probe.exec": "ExecHealthCheckConfig",
    "WorkloadGroup.spec.probe.grpc": "GrpcHealthCheckConfig",
    "Sidecar.spec.ingress[]": "IstioIngressListener",
    "Sidecar.spec.ingress[].port": "SidecarPort",
    "Sidecar.spec.ingress[].connectionPool": "SidecarConnectionPoolSettings",
    "Sidecar.spec.ingress[].tls": "SidecarServerTLSSettings",
    "Sidecar.spec.egress[]": "IstioEgressListener",
    "Sidecar.spec.outboundTrafficPolicy": "OutboundTrafficPolicy",
    "Sidecar.spec.outboundTrafficPolicy.egressProxy": "EgressProxyDestination",
    "Sidecar.spec.inboundConnectionPool": "InboundConnectionPoolSettings",
    "PeerAuthentication.spec.mtls": "MutualTLS",
    "PeerAuthentication.spec.selector": "WorkloadSelector",
    "AuthorizationPolicy.spec.rules[]": "Rule",
    "AuthorizationPolicy.spec.rules[].from[]": "RuleFrom",
    "AuthorizationPolicy.spec.rules[].from[].source": "Source",
    "AuthorizationPolicy.spec.rules[].to[]": "RuleTo",
    "AuthorizationPolicy.spec.rules[].to[].operation": "Operation",
    "AuthorizationPolicy.spec.rules[].when[]": "Condition",
    "AuthorizationPolicy.spec.provider": "ExtensionProvider",
    "AuthorizationPolicy.spec.targetRef": "PolicyTargetReference",
    "RequestAuthentication.spec.jwtRules[]": "JWTRule",
    "RequestAuthentication.spec.jwtRules[].fromHeaders[]": "JWTHeader",
    "RequestAuthentication.spec.jwtRules[].outputClaimToHeaders[]": "ClaimToHeader",
    "Telemetry.spec.tracing[]": "Tracing",
    "Telemetry.spec.selector": "WorkloadSelector",
    "Telemetry.spec.targetRef": "PolicyTargetReference",
    "Telemetry.spec.accessLogging[].match": "LogSelector",
    "Telemetry.spec.accessLogging[].providers[]": "ProviderRef",
    "Telemetry.spec.tracing[].match": "TracingSelector",
    "Telemetry.spec.tracing[].customTags{}.environment": "CustomTagEnvironment",
    "Telemetry.spec.tracing[].customTags{}.header": "CustomTagHeader",
    "Telemetry.spec.tracing[].customTags{}.literal": "CustomTagLiteral",
    "Telemetry.spec.tracing[].customTags{}.formatter": "CustomTagFormatter",
    "DestinationRule.spec.trafficPolicy.loadBalancer.backendUtilization": "BackendUtilization",
    "DestinationRule.spec.trafficPolicy.loadBalancer.warmup": "WarmupConfiguration",
    "Telemetry.spec.tracing[].providers[]": "ProviderRef",
    "Telemetry.spec.tracing[].customTags{}": "CustomTag",
    "Telemetry.spec.metrics[]": "Metrics",
    "Telemetry.spec.metrics[].overrides[]": "MetricsOverrides",
    "Telemetry.spec.metrics[].overrides[].match": "MetricSelector",
    "Telemetry.spec.metrics[].overrides[].tagOverrides{}": "TagOverride",
    "Telemetry.spec.accessLogging[]": "AccessLogging",
    "Telemetry.spec.accessLogging[].filter": "AccessLoggingFilter",
}

# JSON names that would collide with another field, or that are not camelCase.
PYTHON_NAMES: dict[str, str] = {
    "mirror_percent": "mirror_percent_legacy",
    "jwks_uri": "jwks_uri_legacy",
}

# Named aliases for types used all over the schemas.
TYPE_ALIASES: dict[str, str] = {
    "Annotated[int, Field(ge=0, le=4294967295)]": "UInt32",
    "Annotated[int, Field(ge=-2147483648, le=2147483647)]": "Int32",
    "Annotated[str, AfterValidator(rules.duration_at_least_1ms)]": "Duration",
}


@dataclass(frozen=True)
class ValueRule:
    """A CEL rule on a scalar, list or map: an after-validator in `rules`."""

    function: str


@dataclass(frozen=True)
class ObjectRule:
    """A CEL rule on an object: a call returning the violated message or None."""

    call: str


CEL_RULES: dict[str, ValueRule | ObjectRule] = {
    "duration(self) >= duration('1ms')": ValueRule("duration_at_least_1ms"),
    'self.all(key, !key.contains("*"))': ValueRule("label_keys_without_wildcard"),
    "self.all(key, key.size() != 0)": ValueRule("label_keys_not_empty"),
    '!self.contains("*")': ValueRule("label_value_without_wildcard"),
    '(has(self.address) ? self.address : "").startsWith("unix://") ? !has(self.ports) : true': (
        ObjectRule("rules.uds_has_no_ports(self)")
    ),
    'self.startsWith("unix://") ? (self.substring(7, 8) == "/" || self.substring(7, 8) == "@") '
    ": true": ValueRule("uds_absolute_or_abstract"),
    'self.startsWith("unix://") ? !self.endsWith("/") : true': ValueRule("uds_not_a_directory"),
    'self.all(key, size(key) < 63 && key.matches("^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$"))': (
        ValueRule("port_names_valid")
    ),
    "0 < self && self <= 65535": ValueRule("port_in_range"),
    'self != "*"': ValueRule("host_not_wildcard"),
    "self.all(l1, self.exists_one(l2, l1.number == l2.number))": ValueRule("port_numbers_unique"),
    'self in ["", "HTTP", "HTTPS"]': ValueRule("probe_scheme_http_or_https"),
    "has(self.address) || has(self.network)": ObjectRule("rules.address_or_network_required(self)"),
    '!((has(self.addresses) ? self.addresses : []).exists(k, k.contains("/")) && '
    '!((has(self.resolution) ? self.resolution : "NONE") in ["STATIC", "NONE"]))': ObjectRule(
        "rules.service_entry_cidr_needs_static_or_none(self)"
    ),
    '((has(self.resolution) ? self.resolution : "NONE") == "NONE") ? !has(self.endpoints) : true': (
        ObjectRule("rules.service_entry_none_has_no_endpoints(self)")
    ),
    '((has(self.resolution) ? self.resolution : "") == "DNS_ROUND_ROBIN") ? '
    "((has(self.endpoints) ? self.endpoints : []).size() <= 1) : true": ObjectRule(
        "rules.service_entry_round_robin_single_endpoint(self)"
    ),
    "(has(self.serviceAccounts) || has(self.notServiceAccounts)) ? (!has(self.principals) &&\n"
    "!has(self.notPrincipals) && !has(self.namespaces) && !has(self.notNamespaces)) : true": (
        ObjectRule("rules.service_accounts_exclusive(self)")
    ),
    "self.size() == 0": ValueRule("same_namespace_only"),
    "has(self.portLevelMtls) ? (((has(self.selector) && has(self.selector.matchLabels)) ? "
    "self.selector.matchLabels : {}).size() > 0) : true": ObjectRule(
        "rules.port_level_mtls_requires_selector(self)"
    ),
    "self.all(key, 0 < int(key) && int(key) <= 65535)": ValueRule("port_keys_in_range"),
    'url(self).getScheme() in ["http", "https"]': ValueRule("url_scheme_http_or_https"),
    '((has(self.operation) ? self.operation : "") == "UPSERT") ? (self.value != "") : true': (
        ObjectRule("rules.upsert_needs_value(self)")
    ),
    '((has(self.operation) ? self.operation : "") == "REMOVE") ? !has(self.value) : true': (
        ObjectRule("rules.remove_has_no_value(self)")
    ),
}

# Same CEL text, different message: the message decides which after-validator applies.
CEL_RULES_BY_MESSAGE: dict[tuple[str, str], ValueRule] = {
    ('!self.contains("*")', "wildcard is not supported in selector"): ValueRule(
        "selector_value_without_wildcard"
    ),
}

_AT_MOST_ONE = re.compile(
    r"^\(has\(self\.\w+\) \? 1 : 0\)( \+ \(has\(self\.\w+\) \? 1 : 0\))* <= 1$"
)


def python_name(json_name: str) -> str:
    """The snake_case attribute for a JSON field name."""
    if json_name in PYTHON_NAMES:
        return PYTHON_NAMES[json_name]
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", json_name).lower()
    if keyword.iskeyword(name) or name in {"str", "int", "float", "bool", "list", "dict"}:
        name += "_"
    return name


def strip_descriptions(node: Any) -> Any:
    """The schema without descriptions: two schemas with the same shape are one class."""
    if isinstance(node, dict):
        return {k: strip_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [strip_descriptions(v) for v in node]
    return node


def shape_key(node: Schema) -> str:
    """Identity of a schema for de-duplication: everything but descriptions."""
    return json.dumps(strip_descriptions(node), sort_keys=True)


def one_of_groups(node: Schema) -> list[list[str]]:
    """Property groups of which at most one may be set (`oneOf`, possibly under `allOf`)."""
    groups: list[list[str]] = []
    for one_of in [node.get("oneOf")] + [part.get("oneOf") for part in node.get("allOf", [])]:
        if not one_of:
            continue
        names: list[str] = []
        for branch in one_of:
            if "required" in branch:
                names.extend(branch["required"])
            elif "not" not in branch:
                raise SystemExit(f"unsupported oneOf branch: {branch}")
        groups.append(names)
    return groups


@dataclass
class ClassDef:
    """One generated pydantic class."""

    name: str
    description: str
    lines: list[str] = field(default_factory=list)


@dataclass
class Module:
    """The classes of one generated module, in dependency order."""

    group: str
    classes: list[ClassDef] = field(default_factory=list)
    by_shape: dict[str, str] = field(default_factory=dict)
    used_aliases: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    uses_any: bool = False

    preferred: dict[str, str] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)

    def prefer_names(self, node: Schema, path: str) -> None:
        """Record NAMES for every shape before naming, so a message keeps its Istio name
        wherever it appears first."""
        if path in NAMES:
            self.preferred.setdefault(shape_key(node), NAMES[path])
        if node.get("description") and node.get("properties"):
            self.descriptions.setdefault(shape_key(node), node["description"])
        for json_name, child in node.get("properties", {}).items():
            self.prefer_names(child, f"{path}.{json_name}")
        if isinstance(node.get("items"), dict):
            self.prefer_names(node["items"], path + "[]")
        if isinstance(node.get("additionalProperties"), dict):
            self.prefer_names(node["additionalProperties"], path + "{}")

    def class_for(self, node: Schema, path: str, hint: str, parent: str) -> str:
        shape = shape_key(node)
        if shape in self.by_shape:
            return self.by_shape[shape]
        name = self.preferred.get(shape) or hint
        if name in self.names:
            name = parent + hint
        if name in self.names:
            raise SystemExit(f"class name {name} for {path} is taken; add it to NAMES")
        self.names.add(name)
        self.by_shape[shape] = name
        cls = ClassDef(name=name, description=self.descriptions.get(shape, ""))
        self.fill(cls, node, path)
        self.classes.append(cls)
        return name

    def fill(self, cls: ClassDef, node: Schema, path: str) -> None:
        required = set(node.get("required", []))
        python_names: dict[str, str] = {}
        for json_name, child in node.get("properties", {}).items():
            attr = python_name(json_name)
            python_names[json_name] = attr
            hint = json_name[:1].upper() + json_name[1:]
            type_expr = self.type_of(child, f"{path}.{json_name}", hint, cls.name)
            options = []
            if to_camel(attr) != json_name:
                options.append(f'alias="{json_name}"')
            if json_name in required:
                default = f" = Field({', '.join(options)})" if options else ""
                cls.lines.append(f"    {attr}: {type_expr}{default}")
            else:
                default = f"Field(None, {', '.join(options)})" if options else "None"
                cls.lines.append(f"    {attr}: {type_expr} | None = {default}")
            doc = child.get("description", "")
            if doc:
                cls.lines.append(docstring(doc, indent=4))
        legacy = {name: python_names[name] for name in python_names if name in PYTHON_NAMES}
        if legacy:
            # With populate_by_name, "jwks_uri" would also fill the field named jwks_uri
            # (JSON jwksUri); route the legacy key to its own field first.
            cls.lines.append("")
            cls.lines.append('    @model_validator(mode="before")')
            cls.lines.append("    @classmethod")
            cls.lines.append("    def _legacy_keys(cls, data: Any) -> Any:")
            cls.lines.append(f"        return rules.rename_keys(data, {legacy!r})")
            self.uses_any = True
        checks: list[str] = []
        for group in one_of_groups(node):
            fields = ", ".join(f'"{python_names[name]}"' for name in group)
            checks.append(f"rules.at_most_one_of(self, None, {fields})")
        for rule in node.get("x-kubernetes-validations", []):
            checks.append(object_rule_call(rule, python_names))
        if checks:
            cls.lines.append("")
            cls.lines.append('    @model_validator(mode="after")')
            cls.lines.append("    def _crd_rules(self) -> Self:")
            cls.lines.append("        rules.enforce(")
            cls.lines.extend(f"            {check}," for check in checks)
            cls.lines.append("        )")
            cls.lines.append("        return self")

    def type_of(self, node: Schema, path: str, hint: str, parent: str) -> str:
        """The annotation for one schema node, creating classes for nested objects."""
        validators = [f"AfterValidator(rules.{v})" for v in value_rules(node)]
        if node.get("type") == "object" and "properties" in node:
            if validators:
                raise SystemExit(f"value rule on object {path}")
            return self.class_for(node, path, hint, parent)
        singular = hint[:-1] if hint.endswith("s") else hint
        if node.get("type") == "object":
            values = node.get("additionalProperties")
            if not isinstance(values, dict):
                raise SystemExit(f"object without properties at {path}")
            base = f"dict[str, {self.type_of(values, path + '{}', singular, parent)}]"
            constraints = bounds(
                node, {"maxProperties": "max_length", "minProperties": "min_length"}
            )
        elif node.get("type") == "array":
            base = f"list[{self.type_of(node['items'], path + '[]', singular, parent)}]"
            constraints = bounds(node, {"maxItems": "max_length", "minItems": "min_length"})
            if node.get("x-kubernetes-list-type") == "map":
                if node.get("x-kubernetes-list-map-keys") != ["name"]:
                    raise SystemExit(f"unsupported list-map keys at {path}")
                validators.append("AfterValidator(rules.names_unique)")
        else:
            base, constraints = scalar_type(node, path)
        metadata = ([f"Field({', '.join(constraints)})"] if constraints else []) + validators
        if not metadata:
            return base
        expr = f"Annotated[{base}, {', '.join(metadata)}]"
        if expr in TYPE_ALIASES:
            self.used_aliases.add(expr)
            return TYPE_ALIASES[expr]
        return expr


def bounds(node: Schema, keywords: dict[str, str]) -> list[str]:
    """pydantic `Field` arguments for the schema keywords present in `node`."""
    return [f"{argument}={node[key]}" for key, argument in keywords.items() if key in node]


def scalar_type(node: Schema, path: str) -> tuple[str, list[str]]:
    """The Python type and `Field` constraints of a string, integer, number or boolean."""
    kind = node.get("type")
    if kind == "string":
        values = node.get("enum")
        base = "Literal[" + ", ".join(json.dumps(v) for v in values) + "]" if values else "str"
        constraints = bounds(node, {"maxLength": "max_length", "minLength": "min_length"})
        if "pattern" in node:
            constraints.append(f"pattern={pattern_literal(node['pattern'])}")
        return base, constraints
    if kind == "integer":
        low, high = node.get("minimum"), node.get("maximum")
        if node.get("format") == "int32" and low is None and high is None:
            low, high = -(2**31), 2**31 - 1
        limits = [f"ge={low}"] if low is not None else []
        limits += [f"le={high}"] if high is not None else []
        return "int", limits
    if kind == "number":
        return "float", bounds(node, {"minimum": "ge", "maximum": "le"})
    if kind == "boolean":
        return "bool", []
    raise SystemExit(f"unsupported schema at {path}: {strip_descriptions(node)}")


def pattern_literal(pattern: str) -> str:
    return (
        'r"' + pattern + '"' if '"' not in pattern and not pattern.endswith("\\") else repr(pattern)
    )


def value_rules(node: Schema) -> list[str]:
    functions = []
    for rule in node.get("x-kubernetes-validations", []):
        by_message = CEL_RULES_BY_MESSAGE.get((rule["rule"], rule.get("message", "")))
        impl = by_message or CEL_RULES.get(rule["rule"])
        if isinstance(impl, ValueRule):
            functions.append(impl.function)
        elif impl is None and not _AT_MOST_ONE.match(rule["rule"]):
            raise SystemExit(f"untranslated CEL rule: {rule['rule']!r}")
    return functions


def object_rule_call(rule: dict[str, str], python_names: dict[str, str]) -> str:
    text = rule["rule"]
    if _AT_MOST_ONE.match(text):
        fields = ", ".join(f'"{python_names[n]}"' for n in re.findall(r"has\(self\.(\w+)\)", text))
        return f"rules.at_most_one_of(self, {json.dumps(rule['message'])}, {fields})"
    impl = CEL_RULES.get(text)
    if not isinstance(impl, ObjectRule):
        raise SystemExit(f"untranslated CEL rule on an object: {text!r}")
    return impl.call


def docstring(text: str, indent: int) -> str:
    text = text.strip().replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    if text.endswith('"'):
        text += " "
    pad = " " * indent
    width = 100 - indent - 6
    paragraphs = [
        textwrap.fill(p, width=width, break_long_words=False, break_on_hyphens=False)
        for p in text.split("\n")
    ]
    body = "\n".join(paragraphs)
    if "\n" not in body and indent + len(body) + 6 <= 100:
        return f'{pad}"""{body}"""'
    lines = body.split("\n")
    joined = "\n".join((pad + line) if line else "" for line in lines[1:])
    return f'{pad}"""{lines[0]}\n{joined}\n{pad}"""'


RenderedKind = tuple[str, Schema, tuple[str, ...], str, bool]


def render(module: Module, kinds: list[RenderedKind]) -> str:
    group = module.group
    out = [
        f'"""Models of the {group} API group, generated from Istio\'s CRD schema.',
        "",
        "Generated by `python -m meshcore.config.codegen`; do not edit by hand. Each class is one",
        "object schema of `crd-all.gen.yaml`, named after Istio's protobuf message where known.",
        "Docstrings are Istio's field documentation.",
        '"""',
        "",
        "from typing import Annotated, Any, ClassVar, Literal, Self"
        if module.uses_any
        else "from typing import Annotated, ClassVar, Literal, Self",
        "",
        "from pydantic import AfterValidator, Field, model_validator",
        "",
        "from meshcore.config import rules",
        "from meshcore.config.base import IstioModel, IstioResource",
        "",
        "__all__ = [",
    ]
    names = [c.name for c in module.classes] + [kind for kind, *_ in kinds]
    out.extend(f'    "{name}",' for name in sorted(names))
    out.append("]")
    out.append("")
    for expr, alias in TYPE_ALIASES.items():
        if expr in module.used_aliases:
            out.append(f"{alias} = {expr}")
    for cls in module.classes:
        out.append("")
        out.append("")
        out.append(f"class {cls.name}(IstioModel):")
        out.append(docstring(cls.description or f"{cls.name}.", indent=4))
        if cls.lines:
            out.append("")
        out.extend(
            ("    " + line if line and not line.startswith(" ") else line) for line in cls.lines
        )
    for kind, spec, versions, description, required in kinds:
        api_versions = ", ".join(f'"{group}/{v}"' for v in versions)
        spec_class = module.by_shape[shape_key(spec)]
        out += [
            "",
            "",
            f"class {kind}(IstioResource):",
            docstring(description, indent=4),
            "",
            f'    GROUP: ClassVar[str] = "{group}"',
            f'    KIND: ClassVar[str] = "{kind}"',
            f"    VERSIONS: ClassVar[tuple[str, ...]] = ({', '.join(repr(v) for v in versions)},)",
            "",
            f'    api_version: Literal[{api_versions}] = "{group}/{versions[0]}"',
            '    """Any served version; they share one schema."""',
            f'    kind: Literal["{kind}"] = "{kind}"',
            f"    spec: {spec_class}"
            if required
            else f"    spec: {spec_class} = Field(default_factory={spec_class})",
            f'    """The {kind} itself."""',
        ]
    return "\n".join(out).rstrip() + "\n"


def load_crds(schema_path: Path) -> dict[str, Schema]:
    with schema_path.open() as handle:
        return {d["spec"]["names"]["kind"]: d for d in yaml.safe_load_all(handle) if d}


def generate(schema_path: Path, out_dir: Path) -> list[Path]:
    """Write the generated modules into `out_dir`; return their paths."""
    crds = load_crds(schema_path)
    written = []
    for group, (module_name, kinds) in GROUPS.items():
        module = Module(group=group)
        rendered_kinds = []
        for kind in kinds:
            spec = crds[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
                "spec"
            ]
            module.prefer_names(spec, f"{kind}.spec")
        for kind in kinds:
            crd = crds[kind]
            versions = crd["spec"]["versions"]
            schemas = [strip_descriptions(v["schema"]["openAPIV3Schema"]) for v in versions]
            if any(s != schemas[0] for s in schemas):
                raise SystemExit(f"{kind}: versions differ; one model per kind needs a merge")
            ordered = sorted(
                (v["name"] for v in versions), key=lambda n: (n != "v1", "alpha" in n, n)
            )
            spec = versions[0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            module.class_for(spec, f"{kind}.spec", f"{kind}Spec", kind)
            description = spec.get("description", kind)
            top = versions[0]["schema"]["openAPIV3Schema"]
            required = "spec" in top.get("required", []) or bool(spec.get("required"))
            rendered_kinds.append((kind, spec, tuple(ordered), description, required))
        target = out_dir / f"{module_name}.py"
        target.write_text(render(module, rendered_kinds))
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("schema", type=Path, help="path to crd-all.gen.yaml")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args(argv)
    for path in generate(args.schema, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
