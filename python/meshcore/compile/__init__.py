"""Pure functions from resources and a service registry to per-proxy Snapshots.

::

    from meshcore.compile import Compiler, identify_proxy

    compiler = Compiler(result.resources, registry, mesh=mesh)
    proxy = identify_proxy(registry, "productpage-v1", "default")
    snapshot = compiler.compile(proxy)

`simulate` answers what the compiled config does with one request, with the data plane's
route semantics. The Snapshot models in :mod:`meshcore.compile.snapshot` are the Python half
of the contract whose Rust half is the ``meshcore-snapshot`` crate.
"""

from meshcore.compile.clusters import (
    BLACKHOLE_CLUSTER,
    PASSTHROUGH_CLUSTER,
    cluster_name,
    parse_cluster_name,
)
from meshcore.compile.compiler import Compiled, CompileError, Compiler, compile, snapshot_json
from meshcore.compile.proxy import ProxyIdentity, ProxyPort, identify_proxy
from meshcore.compile.report import COMPILE_WARNING

__all__ = [
    "BLACKHOLE_CLUSTER",
    "COMPILE_WARNING",
    "PASSTHROUGH_CLUSTER",
    "CompileError",
    "Compiled",
    "Compiler",
    "ProxyIdentity",
    "ProxyPort",
    "cluster_name",
    "compile",
    "identify_proxy",
    "parse_cluster_name",
    "snapshot_json",
]
