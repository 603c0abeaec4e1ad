//! Limits that tonic's `Server` builder has no setting for.
//!
//! - [`Incoming`]: at most `max-connections` TCP connections at once, counting those still in
//!   their TLS handshake. Each accepted stream carries a semaphore permit, released when the
//!   connection is dropped; while none is free the listener is not polled, so new connections
//!   wait in the kernel's accept queue instead of costing file descriptors and buffers here.
//! - [`Conn`]: the accepted stream. Once the server's abort token is cancelled (the shutdown
//!   grace is over), every read and write fails, which ends the connection task tonic spawned
//!   for it, and with it every call still open on it. tonic keeps no handle to those tasks, so
//!   this is the only way to end them.
//! - [`BudgetLayer`]: at most `max-requests` member calls in progress over all connections.
//!   A permit is taken after admission (so refused callers never hold one) and released only
//!   when the reply body is finished or dropped, so a reply that its client does not read
//!   keeps counting against the budget; the `request-timeout` deadline also covers the reply
//!   body, so such a reply is abandoned (the stream reset) once it passes. A call that finds
//!   no permit within `max-queue-wait` is refused `OVERLOADED`. Before that, a member with a
//!   `concurrent-calls` quota takes one of its own slots (refused `QUOTA_EXCEEDED` when none
//!   is free), and its quota goes on the request for the handlers to charge (`quota`).
//!
//! Invariant: a member call's request buffer, decoded request, handler work and reply all exist
//! within one budget permit; everything else a connection holds is bounded by its HTTP/2 flow
//! control windows (see `docs/operations.md`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_stream::Stream;
use tokio_util::sync::{CancellationToken, PollSemaphore, WaitForCancellationFutureOwned};
use tonic::body::Body;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tower::{Layer, Service, ServiceExt};

use crate::error::ServiceError;
use crate::quota::Quotas;
use crate::state::Caller;

/// How long a call refused as `OVERLOADED` is told to wait.
const OVERLOAD_RETRY: Duration = Duration::from_secs(1);

/// Accepted TCP connections, at most as many at once as the semaphore has permits.
pub(super) struct Incoming<S> {
    inner: S,
    permits: PollSemaphore,
    /// A permit taken while `inner` had no connection ready, kept for the next one.
    permit: Option<OwnedSemaphorePermit>,
    abort: CancellationToken,
    /// Whether the limit has been logged since it was last reached.
    full: bool,
}

impl<S> Incoming<S> {
    /// Accepts from `inner`, at most `max` connections at once; `abort` ends them all.
    pub(super) fn new(inner: S, max: usize, abort: CancellationToken) -> Self {
        Self {
            inner,
            permits: PollSemaphore::new(Arc::new(Semaphore::new(max))),
            permit: None,
            abort,
            full: false,
        }
    }
}

impl<S> Stream for Incoming<S>
where
    S: Stream<Item = io::Result<TcpStream>> + Unpin,
{
    type Item = io::Result<Conn>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let permit = match this.permit.take() {
            Some(permit) => permit,
            None => match this.permits.poll_acquire(cx) {
                Poll::Ready(Some(permit)) => {
                    this.full = false;
                    permit
                }
                // The semaphore is never closed; if it were, accepting would be over.
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {
                    if !this.full {
                        this.full = true;
                        tracing::warn!("connection limit reached; new connections wait");
                    }
                    return Poll::Pending;
                }
            },
        };
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(tcp))) => Poll::Ready(Some(Ok(Conn {
                tcp,
                _permit: permit,
                aborted: Box::pin(this.abort.clone().cancelled_owned()),
            }))),
            Poll::Ready(Some(Err(err))) => {
                this.permit = Some(permit);
                Poll::Ready(Some(Err(err)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                this.permit = Some(permit);
                Poll::Pending
            }
        }
    }
}

/// An accepted TCP connection holding its connection permit.
pub(super) struct Conn {
    tcp: TcpStream,
    _permit: OwnedSemaphorePermit,
    aborted: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl Conn {
    /// Fails once the server has aborted its connections. Polling registers the task for the
    /// abort, so an idle connection wakes up to fail too.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.aborted.as_mut().poll(cx) {
            Poll::Ready(()) => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the server is shutting down",
            )),
            Poll::Pending => Ok(()),
        }
    }
}

impl Connected for Conn {
    /// The TCP stream's, so that tonic's `TlsConnectInfo<TcpConnectInfo>` (which `auth` reads
    /// the client certificate from) is the same as for a plain `TcpStream`.
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.tcp.connect_info()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// Rations member calls over all connections (see the module docs).
#[derive(Clone)]
pub(super) struct BudgetLayer {
    permits: Arc<Semaphore>,
    timeout: Duration,
    queue_wait: Duration,
    quotas: Option<Arc<Quotas>>,
}

impl BudgetLayer {
    /// At most `max` member calls at once, each within `timeout` including its reply; a call
    /// that finds no slot within `queue_wait` is refused, and so is one over its member's
    /// calls-in-progress quota.
    pub(super) fn new(
        max: usize,
        timeout: Duration,
        queue_wait: Duration,
        quotas: Option<Arc<Quotas>>,
    ) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
            timeout,
            queue_wait,
            quotas,
        }
    }
}

impl<S> Layer<S> for BudgetLayer {
    type Service = Budget<S>;

    fn layer(&self, inner: S) -> Budget<S> {
        Budget {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`BudgetLayer`].
#[derive(Clone)]
pub(super) struct Budget<S> {
    inner: S,
    layer: BudgetLayer,
}

impl<S, ReqBody> Service<http::Request<ReqBody>> for Budget<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send,
    ReqBody: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    /// Always ready: the permit is taken per call, in its future.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        let inner = self.inner.clone();
        // Only admitted member calls carry a `Caller`; health and reflection are not rationed
        // (their requests are a few bytes, and `Watch` streams live as long as they like).
        let Some(caller) = req.extensions().get::<Caller>() else {
            return Box::pin(inner.oneshot(req));
        };
        // The member's own share first, so that a member at its quota never takes (or waits
        // for) one of the slots the others share.
        let quota = self.layer.quotas.as_ref().map(|quotas| quotas.of(caller));
        let member_permit = match quota.as_ref().map(|quota| quota.enter()).transpose() {
            Ok(permit) => permit.flatten(),
            Err(refused) => {
                return Box::pin(async move { Ok(tonic::Status::from(refused).into_http()) })
            }
        };
        if let Some(quota) = quota {
            // For the handlers, which charge entries and lookups once they know the count.
            req.extensions_mut().insert(quota);
        }
        let deadline = Instant::now() + self.layer.timeout;
        let permits = self.layer.permits.clone();
        let queue_wait = self.layer.queue_wait;
        Box::pin(async move {
            let permit = match tokio::time::timeout(queue_wait, permits.acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                // Never closed.
                Ok(Err(_)) => {
                    return Ok(tonic::Status::from(ServiceError::ShuttingDown).into_http())
                }
                Err(_) => {
                    crate::metrics::global().overloaded.inc();
                    let refused = ServiceError::Overloaded {
                        waited: queue_wait,
                        retry_after: OVERLOAD_RETRY,
                    };
                    return Ok(tonic::Status::from(refused).into_http());
                }
            };
            let response = inner.oneshot(req).await?;
            Ok(response.map(|body| {
                Body::new(Metered {
                    body,
                    _permits: (permit, member_permit),
                    deadline: Box::pin(tokio::time::sleep_until(deadline)),
                })
            }))
        })
    }
}

/// A reply body that holds its call's budget permit and fails at the call's deadline.
struct Metered {
    body: Body,
    /// The server-wide slot and the member's own, if it has a calls quota.
    _permits: (OwnedSemaphorePermit, Option<OwnedSemaphorePermit>),
    deadline: Pin<Box<Sleep>>,
}

impl HttpBody for Metered {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            // hyper resets the stream: the reply's buffers are freed, the client sees the
            // stream end without a status, as for any deadline passed mid-reply.
            return Poll::Ready(Some(Err(tonic::Status::deadline_exceeded(
                "the reply was not read within the request timeout",
            ))));
        }
        Poll::Ready(ready!(Pin::new(&mut self.body).poll_frame(cx)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
