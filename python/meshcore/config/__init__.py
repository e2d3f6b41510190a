"""Istio-compatible resource models (pydantic), the YAML loader, validation and analyzers."""
