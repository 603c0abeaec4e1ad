//! The outermost layer: every call is counted, timed and logged once it ends.
//!
//! A call ends when its reply body ends (the status is in its trailers, or in the head of a
//! trailers-only reply) or is dropped (the client went away, or the stream was reset: counted
//! `CANCELLED`). Its member is what `auth` tagged the response with; calls refused before
//! admission, and health and reflection, have none. The log line (target `hashforum::call`)
//! carries the method, member, code and latency, and nothing from the request or reply: no
//! hash, no key, no certificate.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::body::Body;
use tower::{Layer, Service};

use crate::auth::CalledBy;
use crate::metrics::{self, CallLabels};

/// Counts, times and logs every call (see the module docs).
#[derive(Clone, Copy, Default)]
pub(super) struct ObserveLayer;

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe { inner }
    }
}

/// The service made by [`ObserveLayer`].
#[derive(Clone)]
pub(super) struct Observe<S> {
    inner: S,
}

impl<S, ReqBody> Service<http::Request<ReqBody>> for Observe<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<Body>> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        // The record exists from arrival: a call dropped before its reply head (tonic's
        // timeout, a client reset) is recorded as it drops, `CANCELLED`.
        let mut call = Call {
            rpc: rpc_label(req.uri().path()),
            member: None,
            started: Instant::now(),
            code: None,
        };
        let future = self.inner.call(req);
        Box::pin(async move {
            let response = future.await?;
            call.member = response
                .extensions()
                .get::<CalledBy>()
                .map(|called| called.0.clone());
            // A trailers-only reply (every error tonic sends, and every refusal before the
            // handler) has its status in the head.
            call.code = status_of(response.headers());
            Ok(response.map(|body| Body::new(Observed { body, call })))
        })
    }
}

/// Methods the server has that are not in `auth::POLICY` by name (it opens their services
/// by prefix).
const STOCK_METHODS: [&str; 4] = [
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// The `rpc` label of a path: `Service/Method` for the methods the server has, `unknown` for
/// anything else. Any TLS peer can send any path, and a label from it would let it grow the
/// metrics without bound (and write quotes into them).
fn rpc_label(path: &str) -> Arc<str> {
    let known = STOCK_METHODS.contains(&path)
        || crate::auth::POLICY
            .iter()
            .any(|(method, _)| !method.ends_with('/') && *method == path);
    if known {
        rpc_name(path).into()
    } else {
        "unknown".into()
    }
}

/// `Service/Method` of a gRPC path `/package.Service/Method`.
fn rpc_name(path: &str) -> &str {
    let path = path.trim_start_matches('/');
    match path.split_once('/') {
        Some((service, _)) => {
            let start = service.rfind('.').map_or(0, |dot| dot + 1);
            &path[start..]
        }
        None => path,
    }
}

/// The status code a header or trailer map carries, if any.
fn status_of(headers: &http::HeaderMap) -> Option<tonic::Code> {
    let value = headers.get("grpc-status")?;
    Some(tonic::Code::from_bytes(value.as_bytes()))
}

/// One call in progress: recorded when dropped.
struct Call {
    rpc: Arc<str>,
    member: Option<Arc<str>>,
    started: Instant,
    code: Option<tonic::Code>,
}

impl Drop for Call {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        // No status by the end: the reply was cut short (client gone, stream reset).
        let code = crate::error::code_name(self.code.unwrap_or(tonic::Code::Cancelled));
        let member = self.member.as_deref().unwrap_or("");
        tracing::info!(
            target: "hashforum::call",
            rpc = &*self.rpc,
            member,
            code,
            latency_ms = elapsed.as_secs_f64() * 1e3,
            "call"
        );
        metrics::global().call(
            CallLabels {
                rpc: self.rpc.to_string(),
                code,
                member: member.to_owned(),
            },
            elapsed,
        );
    }
}

/// A reply body that reads the status from the trailers as they pass.
struct Observed {
    body: Body,
    call: Call,
}

impl HttpBody for Observed {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(code) = frame.trailers_ref().and_then(status_of) {
                    self.call.code = Some(code);
                }
            }
            Some(Err(status)) => self.call.code = Some(status.code()),
            None => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::{rpc_label, rpc_name};

    #[test]
    fn only_the_servers_methods_get_their_own_label() {
        assert_eq!(
            &*rpc_label("/hashforum.v1.LogService/GetEntries"),
            "LogService/GetEntries"
        );
        assert_eq!(&*rpc_label("/grpc.health.v1.Health/Check"), "Health/Check");
        for path in [
            "/grpc.health.v1.Health/a\",code=\"x",
            "/grpc.health.v1.Health/Other",
            "/hashforum.v1.LogService/Nope",
            "/",
        ] {
            assert_eq!(&*rpc_label(path), "unknown", "{path}");
        }
    }

    #[test]
    fn rpc_names_drop_the_package() {
        assert_eq!(
            rpc_name("/hashforum.v1.RegistryService/SubmitEntries"),
            "RegistryService/SubmitEntries"
        );
        assert_eq!(rpc_name("/grpc.health.v1.Health/Check"), "Health/Check");
        assert_eq!(rpc_name("/NoPackage/Method"), "NoPackage/Method");
        assert_eq!(rpc_name("/odd"), "odd");
    }
}
