//! The original destination of an accepted connection: where the client meant to connect
//! before `meshcore iptables` (an iptables `REDIRECT`) sent it to a listener instead.
//!
//! The kernel's connection tracking keeps the pre-NAT destination; `SO_ORIGINAL_DST`
//! (`IP6T_SO_ORIGINAL_DST` for IPv6) reads it back. Only an `original_dst` cluster uses it
//! (Istio's PassthroughCluster and InboundPassthroughCluster): it connects there instead of
//! to an endpoint of its own. HTTP routing still goes by the `Host` header; the original
//! port stands in for a `Host` without one.
//!
//! Two connections must not be forwarded that way, because the proxy would connect to
//! itself:
//! - one that was not redirected (the client dialled the listener, or there is no NAT at
//!   all): the kernel reports no original destination, or the listener's own address;
//! - one redirected from a destination on the listener's own port, e.g. a peer dialling
//!   this host's `:15006` directly, which inbound capture sends to `:15006` again. Istio's
//!   virtual listeners send these to BlackHoleCluster for the same reason.

use std::fmt;
use std::net::SocketAddr;

use socket2::SockRef;
use tokio::net::TcpStream;
use tracing::debug;

/// What the kernel says about where an accepted connection was going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OriginalDst {
    /// Redirected to the listener; the client asked for this address.
    Redirected(SocketAddr),
    /// Not redirected: the client connected to the listener itself.
    Direct,
    /// Redirected from an address on the listener's own port: forwarding there would
    /// come back to a listener of this proxy.
    Loop(SocketAddr),
}

impl OriginalDst {
    /// Reads the original destination of `stream`, accepted on `local`.
    pub(crate) fn of(stream: &TcpStream, local: SocketAddr) -> Self {
        let socket = SockRef::from(stream);
        let found = if local.is_ipv4() {
            socket.original_dst_v4()
        } else {
            socket.original_dst_v6()
        };
        match found {
            Ok(address) => Self::classify(address.as_socket(), local),
            Err(e) => {
                // ENOENT: conntrack knows no NAT for it (or is not loaded): not redirected.
                debug!(%local, error = %e, "no original destination");
                Self::Direct
            }
        }
    }

    /// An explicit proxy's destination (CONNECT or an absolute-form request), accepted on
    /// `local`: on the listener's own port (its own address included) it would loop.
    pub(crate) fn requested(address: SocketAddr, local: SocketAddr) -> Self {
        if address.port() == local.port() {
            Self::Loop(address)
        } else {
            Self::Redirected(address)
        }
    }

    fn classify(original: Option<SocketAddr>, local: SocketAddr) -> Self {
        match original {
            None => Self::Direct,
            Some(original) if original == local => Self::Direct,
            Some(original) if original.port() == local.port() => Self::Loop(original),
            Some(original) => Self::Redirected(original),
        }
    }

    /// Where an `original_dst` cluster may connect, or why it may not.
    pub(crate) fn target(self) -> Result<SocketAddr, Self> {
        match self {
            Self::Redirected(address) => Ok(address),
            other => Err(other),
        }
    }

    /// The destination port the client asked for, when redirected.
    pub(crate) fn port(self) -> Option<u16> {
        match self {
            Self::Redirected(address) => Some(address.port()),
            Self::Direct | Self::Loop(_) => None,
        }
    }
}

impl fmt::Display for OriginalDst {
    /// Says why a connection has no destination for an `original_dst` cluster.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Redirected(address) => write!(f, "original destination {address}"),
            Self::Direct => f.write_str(
                "the connection was not redirected, so it has no original destination \
                 (forwarding it would connect the proxy to itself)",
            ),
            Self::Loop(address) => write!(
                f,
                "original destination {address} is on the listener's own port \
                 (forwarding it would loop back into the proxy)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_redirected_connection_keeps_where_it_was_going() {
        let local = address("127.0.0.1:15001");
        let original = OriginalDst::classify(Some(address("198.18.0.2:9080")), local);
        assert_eq!(
            original,
            OriginalDst::Redirected(address("198.18.0.2:9080"))
        );
        assert_eq!(original.target(), Ok(address("198.18.0.2:9080")));
        assert_eq!(original.port(), Some(9080));
    }

    #[test]
    fn a_connection_to_the_listener_itself_is_not_redirected() {
        let local = address("198.18.0.1:15001");
        assert_eq!(
            OriginalDst::classify(Some(local), local),
            OriginalDst::Direct
        );
        assert_eq!(OriginalDst::classify(None, local), OriginalDst::Direct);
        assert!(OriginalDst::Direct.target().is_err());
    }

    #[test]
    fn a_destination_on_the_listeners_own_port_would_loop() {
        let local = address("198.18.0.3:15006");
        let original = OriginalDst::classify(
            Some(address("198.18.0.3:15006")),
            address("198.18.0.3:15006"),
        );
        assert_eq!(original, OriginalDst::Direct);
        let original = OriginalDst::classify(Some(address("198.18.0.9:15006")), local);
        assert_eq!(original, OriginalDst::Loop(address("198.18.0.9:15006")));
        assert!(original.target().is_err());
        assert!(original.to_string().contains("loop"));
    }

    #[tokio::test]
    async fn a_plain_loopback_connection_has_no_original_destination() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local = listener.local_addr().unwrap();
        let _client = TcpStream::connect(local).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert_eq!(OriginalDst::of(&accepted, local), OriginalDst::Direct);
    }
}
