//! Request and response bodies that move their connection through its phases: a request is
//! complete when its body has ended, and the connection waits again once the answer is sent.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::registry::{Conn, Phase};

/// The connection was shed while its request body was still arriving.
#[derive(Debug, thiserror::Error)]
#[error("the connection was closed before the request body was complete")]
pub struct Shed;

/// In every request's extensions: lets a handler take a long upload out of the body timeout.
///
/// The body timeout is there for clients that never finish a request; a handler that
/// authenticated its caller and consumes the body as it arrives (a bulk import of minutes) is
/// answering it, so it may [`StreamedBody::answering`] it. The connection is then busy: neither
/// timed out nor shed, like a request whose body has ended.
#[derive(Clone)]
pub struct StreamedBody {
    conn: Arc<Conn>,
}

impl StreamedBody {
    pub(crate) fn new(conn: Arc<Conn>) -> Self {
        StreamedBody { conn }
    }

    /// The request is being answered while its body still arrives: no body timeout from now on.
    pub fn answering(&self) {
        self.conn
            .advance(&[Phase::Headers, Phase::Body], Phase::Busy);
    }
}

/// The request body; its end makes the request complete ([`Phase::Busy`]).
pub struct RequestBody {
    pub inner: Incoming,
    pub conn: Arc<Conn>,
}

impl RequestBody {
    /// Marks the request complete; an error when the connection was shed first.
    fn complete(&self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if self
            .conn
            .advance(&[Phase::Headers, Phase::Body], Phase::Busy)
            || self.conn.phase() == Phase::Busy
        {
            Ok(())
        } else {
            Err(Box::new(Shed))
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match polled {
            Poll::Ready(None) => Poll::Ready(self.complete().err().map(Err)),
            Poll::Ready(Some(Ok(frame))) => {
                if self.inner.is_end_stream() {
                    if let Err(e) = self.complete() {
                        return Poll::Ready(Some(Err(e)));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The answer's body; once sent (or dropped) the connection waits for its next request.
pub struct ResponseBody {
    pub inner: axum::body::Body,
    pub conn: Arc<Conn>,
}

impl ResponseBody {
    fn done(&self) {
        self.conn
            .advance(&[Phase::Headers, Phase::Body, Phase::Busy], Phase::Idle);
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.done();
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

impl Drop for ResponseBody {
    fn drop(&mut self) {
        self.done();
    }
}
