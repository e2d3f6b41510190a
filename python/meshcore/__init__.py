"""meshcore: a service mesh that speaks Istio's API, with a Rust data plane.

Layers, outermost first (enforced by import-linter, see pyproject.toml):
``cli > (control | agent) > (k8s | dataplane) > compile > registry > config``.
"""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # Resolved on first use: importlib.metadata is not worth loading in every sidecar.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

        try:
            return version("meshcore")
        except PackageNotFoundError:  # a source tree without an install
            return "0.0.0"
    raise AttributeError(f"module 'meshcore' has no attribute {name!r}")
