"""Kubernetes integration: the only package that imports ``kubernetes``."""
