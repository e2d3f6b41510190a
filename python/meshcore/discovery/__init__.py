"""The wire format between the control plane and sidecar agents (meshcore's xDS).

Both ends import it: ``meshcore.control`` (the server) and ``meshcore.agent`` (the client)
are independent layers, so what they share lives here. Standard library only, so the
sidecar stays lean. The messages are described in ARCHITECTURE.md, "Control-plane protocol".
"""
