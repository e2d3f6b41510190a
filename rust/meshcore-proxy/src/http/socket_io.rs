//! Reads and writes on a shared `&TcpStream` for the own HTTP/1 client and server, with no
//! system call the answer already tells us is useless.
//!
//! tokio keeps a socket's readiness until an operation returns `WouldBlock`, so a loop that
//! reads a message and then waits for the next one reads once more only to get `EAGAIN`:
//! one wasted system call per message and direction. A read that fills less than the room
//! it was given has drained the socket for now (nginx's `ngx_unix_recv` draws the same
//! conclusion), so the readiness is cleared right there; bytes that arrive later raise a
//! new edge, which sets it again.

use std::io;

use bytes::BytesMut;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Reads what the socket has into `buffer` (`Ok(0)`: the peer closed); `WouldBlock` when
/// nothing is there.
pub(crate) fn read_some(stream: &TcpStream, buffer: &mut BytesMut) -> io::Result<usize> {
    let room = buffer.capacity() - buffer.len();
    let read = stream.try_read_buf(buffer)?;
    if read > 0 && read < room {
        // Drained: the next wait goes straight to the reactor, not through an EAGAIN.
        let _ = stream.try_io(Interest::READABLE, || {
            Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock))
        });
    }
    Ok(read)
}

/// Writes all of `bytes`.
pub(crate) async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Ends the sending side (the peer reads the close after the last bytes).
pub(crate) fn shutdown(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    /// A short read leaves the socket not ready, so the next wait is the reactor's, and
    /// bytes that come later make it ready again.
    #[tokio::test]
    async fn a_short_read_clears_readiness_and_new_bytes_raise_it() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        client.write_all(b"hello").await.unwrap();
        server.readable().await.unwrap();
        let mut buffer = BytesMut::with_capacity(64);
        assert_eq!(read_some(&server, &mut buffer).unwrap(), 5);
        // Without the clearing, tokio would still report the socket readable.
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(100), server.readable())
                .await
                .is_err(),
            "readiness was cleared after the short read"
        );
        client.write_all(b" world").await.unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), server.readable())
            .await
            .expect("new bytes make the socket ready again")
            .unwrap();
        assert_eq!(read_some(&server, &mut buffer).unwrap(), 6);
        assert_eq!(&buffer[..], b"hello world");
    }
}
