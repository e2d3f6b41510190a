"""The unimplemented-field registry: real paths only, and warnings naming each field used."""

from __future__ import annotations

import pytest

from meshcore.config import UNIMPLEMENTED, IstioResource, VirtualService, unimplemented_fields
from meshcore.config.introspect import model_paths
from meshcore.config.kinds import ISTIO_RESOURCES


@pytest.mark.parametrize("model", ISTIO_RESOURCES, ids=lambda m: m.KIND)
def test_every_entry_is_a_field_of_its_kind(model: type[IstioResource]) -> None:
    known = model_paths(model.model_fields["spec"].annotation, "spec")
    unknown = [entry for entry in UNIMPLEMENTED.get(model.KIND, ()) if entry not in known]
    assert unknown == []


def test_warns_once_per_unimplemented_block() -> None:
    vs = VirtualService.model_validate(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "r"},
            "spec": {
                "hosts": ["r"],
                "http": [
                    {"route": [{"destination": {"host": "r"}}], "timeout": "2s"},
                    {
                        "fault": {"abort": {"httpStatus": 500, "percentage": {"value": 1}}},
                        "route": [{"destination": {"host": "r"}}],
                    },
                ],
            },
        }
    )
    warnings = unimplemented_fields(vs)
    assert [(w.code, w.level.value, w.path) for w in warnings] == [
        ("MC0003", "Warning", "spec.http[1].fault")
    ]
    assert warnings[0].origin == "VirtualService default/r"
