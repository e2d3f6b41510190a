"""The control plane: config store, debounce, per-proxy push, CA and debug API."""
