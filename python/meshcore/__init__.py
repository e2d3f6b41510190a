"""meshcore: a service mesh that speaks Istio's API, with a Rust data plane.

Layers, outermost first (enforced by import-linter, see pyproject.toml):
``cli > (control | agent) > (k8s | dataplane) > compile > registry > config``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("meshcore")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"
