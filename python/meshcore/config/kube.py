"""Light models of the Kubernetes objects `istioctl analyze` reads next to Istio config.

Namespace, Service, Pod, Deployment, Secret and ConfigMap carry only the fields meshcore's
analyzers and registry use. meshcore does not own these schemas, so unknown fields are
accepted and kept (`extra="allow"`): a full `kubectl get -o yaml` dump loads and round-trips.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from meshcore.config.base import ObjectMeta, to_camel


class KubeModel(BaseModel):
    """Base of the Kubernetes models: camelCase aliases, unknown fields kept."""

    model_config = ConfigDict(
        extra="allow", populate_by_name=True, alias_generator=to_camel, strict=True
    )

    def to_dict(self) -> dict[str, Any]:
        """The object as YAML/JSON spells it, unset fields left out."""
        return self.model_dump(by_alias=True, exclude_unset=True, mode="json")


class KubeResource(KubeModel):
    """apiVersion, kind and metadata of a Kubernetes object."""

    API_VERSIONS: ClassVar[tuple[str, ...]]
    KIND: ClassVar[str]

    api_version: str
    kind: str
    metadata: ObjectMeta

    @property
    def origin(self) -> str:
        """`Kind namespace/name`, or `Kind name` for cluster-scoped kinds."""
        if self.kind == "Namespace":
            return f"{self.kind} {self.metadata.name}"
        return f"{self.kind} {self.metadata.namespace}/{self.metadata.name}"


class TemplateMeta(KubeModel):
    """Metadata of a pod template: labels and annotations, no name."""

    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class ContainerPort(KubeModel):
    """A port a container listens on."""

    container_port: int
    name: str | None = None
    protocol: str | None = None


class Container(KubeModel):
    """A container of a pod: name, image, ports."""

    name: str
    image: str | None = None
    ports: list[ContainerPort] | None = None


class PodSpec(KubeModel):
    """The parts of a pod spec the analyzers look at."""

    containers: list[Container] = Field(default_factory=list)
    init_containers: list[Container] | None = None
    service_account_name: str | None = None


class Namespace(KubeResource):
    """A namespace; its labels decide sidecar injection."""

    API_VERSIONS = ("v1",)
    KIND = "Namespace"
    api_version: Literal["v1"] = "v1"
    kind: Literal["Namespace"] = "Namespace"


class KubeServicePort(KubeModel):
    """A port of a Kubernetes Service."""

    port: int
    name: str | None = None
    protocol: str | None = None
    app_protocol: str | None = None
    target_port: int | str | None = None
    node_port: int | None = None


class ServiceSpec(KubeModel):
    """Selector, ports and addresses of a Service."""

    selector: dict[str, str] | None = None
    ports: list[KubeServicePort] | None = None
    cluster_ip: str | None = Field(None, alias="clusterIP")
    type: str | None = None
    external_name: str | None = None


class Service(KubeResource):
    """A Kubernetes Service: the registry's source of hostnames and ports."""

    API_VERSIONS = ("v1",)
    KIND = "Service"
    api_version: Literal["v1"] = "v1"
    kind: Literal["Service"] = "Service"
    spec: ServiceSpec = Field(default_factory=ServiceSpec)


class Pod(KubeResource):
    """A pod: labels, containers, service account."""

    API_VERSIONS = ("v1",)
    KIND = "Pod"
    api_version: Literal["v1"] = "v1"
    kind: Literal["Pod"] = "Pod"
    spec: PodSpec = Field(default_factory=PodSpec)


class LabelSelector(KubeModel):
    """`matchLabels` of a Kubernetes label selector."""

    match_labels: dict[str, str] | None = None


class PodTemplateSpec(KubeModel):
    """The pod template of a workload."""

    metadata: TemplateMeta = Field(default_factory=TemplateMeta)
    spec: PodSpec = Field(default_factory=PodSpec)


class DeploymentSpec(KubeModel):
    """Replicas, selector and pod template of a Deployment."""

    replicas: int | None = None
    selector: LabelSelector | None = None
    template: PodTemplateSpec = Field(default_factory=PodTemplateSpec)


class Deployment(KubeResource):
    """A Deployment: its pod template's labels select Services and policies."""

    API_VERSIONS = ("apps/v1",)
    KIND = "Deployment"
    api_version: Literal["apps/v1"] = "apps/v1"
    kind: Literal["Deployment"] = "Deployment"
    spec: DeploymentSpec = Field(default_factory=DeploymentSpec)


class Secret(KubeResource):
    """A Secret, e.g. a gateway's TLS credential (`credentialName`)."""

    API_VERSIONS = ("v1",)
    KIND = "Secret"
    api_version: Literal["v1"] = "v1"
    kind: Literal["Secret"] = "Secret"
    type: str | None = None
    data: dict[str, str] | None = None
    string_data: dict[str, str] | None = None


class ConfigMap(KubeResource):
    """A ConfigMap, e.g. the `istio` ConfigMap holding mesh config under `data.mesh`."""

    API_VERSIONS = ("v1",)
    KIND = "ConfigMap"
    api_version: Literal["v1"] = "v1"
    kind: Literal["ConfigMap"] = "ConfigMap"
    data: dict[str, str] | None = None
    binary_data: dict[str, str] | None = None


KUBE_KINDS: tuple[type[KubeResource], ...] = (
    Namespace,
    Service,
    Pod,
    Deployment,
    Secret,
    ConfigMap,
)
