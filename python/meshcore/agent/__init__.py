"""The sidecar agent: control-plane client, certificate rotation, health and metrics."""
