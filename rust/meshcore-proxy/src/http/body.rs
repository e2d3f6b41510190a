//! The one body type the L7 path passes around, and a wrapper that watches a body to its
//! end: it counts the bytes that went through and says, when dropped, whether the body
//! was read to the end (an HTTP/1 upstream connection is reusable only then).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body as HttpBody, Frame, SizeHint};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Request and response bodies in both directions: streamed from a peer, or made here.
pub(crate) type Body = UnsyncBoxBody<Bytes, BoxError>;

pub(crate) fn empty() -> Body {
    Empty::<Bytes>::new().map_err(|e| match e {}).boxed_unsync()
}

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|e| match e {})
        .boxed_unsync()
}

pub(crate) fn from_incoming(body: hyper::body::Incoming) -> Body {
    body.map_err(BoxError::from).boxed_unsync()
}

/// How a watched body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BodyEnd {
    pub(crate) bytes: u64,
    /// Read to the end (trailers included), not dropped or failed midway.
    pub(crate) completed: bool,
}

/// Passes `inner` through, counting data bytes; calls `on_end` exactly once, when dropped.
/// (`on_end` is kept inline, not boxed: one allocation less per request.)
pub(crate) struct Watched<B, F: FnOnce(BodyEnd)> {
    inner: B,
    bytes: u64,
    completed: bool,
    on_end: Option<F>,
}

impl<B, F: FnOnce(BodyEnd)> std::fmt::Debug for Watched<B, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched")
            .field("bytes", &self.bytes)
            .field("completed", &self.completed)
            .finish_non_exhaustive()
    }
}

impl<B: HttpBody, F: FnOnce(BodyEnd)> Watched<B, F> {
    pub(crate) fn new(inner: B, on_end: F) -> Self {
        Self {
            completed: inner.is_end_stream(),
            inner,
            bytes: 0,
            on_end: Some(on_end),
        }
    }
}

impl<B, F> HttpBody for Watched<B, F>
where
    B: HttpBody<Data = Bytes, Error = BoxError> + Unpin,
    F: FnOnce(BodyEnd) + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => self.completed = true,
            _ => {}
        }
        if self.inner.is_end_stream() {
            self.completed = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B, F: FnOnce(BodyEnd)> Drop for Watched<B, F> {
    fn drop(&mut self) {
        if let Some(on_end) = self.on_end.take() {
            on_end(BodyEnd {
                bytes: self.bytes,
                completed: self.completed,
            });
        }
    }
}

/// Wraps a body so that `on_end` learns how it ended; the result is a [`Body`] again.
pub(crate) fn watch(body: Body, on_end: impl FnOnce(BodyEnd) + Send + Unpin + 'static) -> Body {
    Watched::new(body, on_end).boxed_unsync()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[tokio::test]
    async fn counts_bytes_and_reports_completion_once() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        let body = watch(full("hello"), move |end| record.lock().unwrap().push(end));
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"hello");
        assert_eq!(
            *seen.lock().unwrap(),
            [BodyEnd {
                bytes: 5,
                completed: true
            }]
        );
    }
}
