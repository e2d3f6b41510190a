"""Free ports on 127.0.0.1 for the suite's servers, picked below the kernel's ephemeral range.

`bind(0)` picks from the ephemeral range, the same range the kernel gives the source port of
every outgoing connection, so a port picked that way can be taken by some client before the
server meant to listen on it binds it. The demo's picker already avoids that range; the
suite uses it too.
"""

from __future__ import annotations

from meshcore.cli.demo.ports import PortPicker

_picker = PortPicker()


def free_port() -> int:
    """A port free now and not handed out before in this process."""
    return _picker()
