"""Pure functions from resources and a service registry to per-proxy Snapshots.

The Snapshot models in :mod:`meshcore.compile.snapshot` are the Python half of the
contract whose Rust half is the ``meshcore-snapshot`` crate.
"""
