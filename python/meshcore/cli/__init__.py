"""The ``meshcore`` command line (istioctl's role)."""
