//! Authentication and authorization of every gRPC call, before any of its body is read.
//!
//! [`AuthLayer`] wraps all the server's gRPC services. For each call it looks only at the
//! `http::Request` head: the URI path names the method, and the connection's TLS peer
//! certificate (tonic's `TlsConnectInfo` extension) names the caller. It then
//!
//! 1. finds the method's [`Access`] in [`POLICY`], the one table of who may call what;
//! 2. for a method open to any TLS peer (health, reflection), passes the call on;
//! 3. otherwise fingerprints the leaf certificate (SHA-256 of its DER), looks the caller up in
//!    the current membership snapshot (so a suspension or removal also applies to connections
//!    opened before it), checks the roles the method needs, inserts the [`Caller`] into the
//!    request extensions for the handler, and records it in the `member` span field;
//! 4. or answers at once with the error as a gRPC status: the request body is never polled,
//!    so a refused caller costs no more than the bytes HTTP/2 flow control lets it send.
//!
//! Invariants:
//! - Deny by default: a path that is not in [`POLICY`] is refused (`PERMISSION_DENIED`,
//!   `UNKNOWN_METHOD`) after authentication, so a method added without a policy row is closed.
//! - A `Caller` extension exists only on a request admitted here. Handlers require it (see
//!   `service::caller`), so a service mounted without this layer refuses every call.
//! - No client input can panic here: missing extensions and certificates are errors.
//!
//! Not here: what a caller may do with a particular entry (author, relay, key) is checked by
//! the registry and again by the sequencer; transport limits are in `server`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::{Layer, Service, ServiceExt};

use crate::crypto;
use crate::error::ServiceError;
use crate::registry::Registry;
use crate::state::Caller;
use crate::types::Role;

/// Who may call a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Any TLS peer: the client certificate chains to the forum CA, nothing more. For the
    /// stock services that gRPC tools and load balancers use.
    AnyPeer,
    /// Any active member.
    AnyMember,
    /// An active member with at least one of these roles.
    AnyRole(&'static [Role]),
}

/// Contributors submit hashes, opinions and retractions; readers opinions; admins admin
/// statements. Which statement needs which role is `entry::Body::required_roles`.
const SUBMIT: Access = Access::AnyRole(&[Role::Contributor, Role::Reader, Role::Admin]);
const LOOKUP: Access = Access::AnyRole(&[Role::Reader, Role::Observer]);
/// Checkpoints and proofs: what checking a receipt or a lookup needs.
const LOG_READ: Access = Access::AnyRole(&[Role::Reader, Role::Replica, Role::Observer]);
/// Bulk reads of the log: members that keep a copy, and replicas; not observers.
const LOG_BULK: Access = Access::AnyRole(&[Role::Reader, Role::Replica]);

/// Every callable method, by gRPC path. A path ending in `/` covers every method of that
/// service (the stock services, whose method lists are not ours). Anything else is refused.
pub const POLICY: [(&str, Access); 21] = [
    ("/hashforum.v1.RegistryService/SubmitEntry", SUBMIT),
    ("/hashforum.v1.RegistryService/SubmitEntries", SUBMIT),
    ("/hashforum.v1.RegistryService/LookupHash", LOOKUP),
    ("/hashforum.v1.RegistryService/LookupHashes", LOOKUP),
    ("/hashforum.v1.RegistryService/MatchHashes", LOOKUP),
    ("/hashforum.v1.RegistryService/GetProvenance", LOOKUP),
    // Submissions name incidents, so every member may read them.
    (
        "/hashforum.v1.RegistryService/ListIncidents",
        Access::AnyMember,
    ),
    // The directory: its keys verify every entry, so every member may read it.
    ("/hashforum.v1.AdminService/ListMembers", Access::AnyMember),
    ("/hashforum.v1.AdminService/GetMember", Access::AnyMember),
    (
        "/hashforum.v1.AdminService/GetMemberHistory",
        Access::AnyMember,
    ),
    ("/hashforum.v1.LogService/GetCheckpoint", LOG_READ),
    ("/hashforum.v1.LogService/GetEntries", LOG_BULK),
    // One entry at a time is still the whole log: bulk.
    ("/hashforum.v1.LogService/GetEntry", LOG_BULK),
    ("/hashforum.v1.LogService/GetInclusionProof", LOG_READ),
    ("/hashforum.v1.LogService/GetConsistencyProof", LOG_READ),
    ("/hashforum.v1.LogService/WatchCheckpoints", LOG_READ),
    // Replicas cosign what they verified.
    (
        "/hashforum.v1.LogService/AddCosignature",
        Access::AnyRole(&[Role::Replica]),
    ),
    ("/hashforum.v1.LogService/GetStatus", Access::AnyMember),
    ("/grpc.health.v1.Health/", Access::AnyPeer),
    ("/grpc.reflection.v1.ServerReflection/", Access::AnyPeer),
    (
        "/grpc.reflection.v1alpha.ServerReflection/",
        Access::AnyPeer,
    ),
];

/// The access rule for a gRPC path, or `None` when the path is not in [`POLICY`].
pub fn access(path: &str) -> Option<Access> {
    POLICY
        .iter()
        .find(|(pattern, _)| {
            if pattern.ends_with('/') {
                path.strip_prefix(pattern)
                    .is_some_and(|method| !method.is_empty() && !method.contains('/'))
            } else {
                path == *pattern
            }
        })
        .map(|(_, access)| *access)
}

/// Looks callers up by TLS client certificate: the membership snapshot.
pub trait Members: Send + Sync + 'static {
    /// The caller holding this certificate (DER).
    ///
    /// # Errors
    /// `UNAUTHENTICATED` when it is bound to no active member.
    fn caller(&self, cert_der: &[u8]) -> Result<Caller, ServiceError>;
}

impl Members for Registry {
    /// Looks the certificate's SHA-256 fingerprint up in the current directory snapshot.
    fn caller(&self, cert_der: &[u8]) -> Result<Caller, ServiceError> {
        Registry::caller(self, &crypto::cert_fingerprint(cert_der))
    }
}

/// What admission found for a call.
#[derive(Debug, PartialEq, Eq)]
pub enum Admitted {
    /// A method open to any TLS peer; nobody was looked up.
    Peer,
    /// A member allowed to call the method.
    Member(Caller),
}

/// Decides whether the holder of `peer_certs` may call `path`.
///
/// # Errors
/// `UNAUTHENTICATED` (`NO_CLIENT_CERTIFICATE`, or the directory's `UNKNOWN_CERTIFICATE` /
/// `MEMBER_NOT_ACTIVE`) when the caller is no active member; `PERMISSION_DENIED` with
/// `MISSING_ROLE` when it lacks the method's roles, or `UNKNOWN_METHOD` when the path is not in
/// [`POLICY`].
pub fn admit(
    members: &dyn Members,
    path: &str,
    peer_certs: Option<&[impl AsRef<[u8]>]>,
) -> Result<Admitted, ServiceError> {
    let access = access(path);
    if access == Some(Access::AnyPeer) {
        return Ok(Admitted::Peer);
    }
    let leaf = peer_certs
        .and_then(<[_]>::first)
        .ok_or_else(|| ServiceError::Unauthenticated {
            reason: "NO_CLIENT_CERTIFICATE",
            message: "a TLS client certificate is required".into(),
        })?;
    let caller = members.caller(leaf.as_ref())?;
    match access {
        Some(Access::AnyRole(roles)) => caller.require_any(roles)?,
        Some(Access::AnyMember | Access::AnyPeer) => {}
        None => {
            return Err(ServiceError::denied(
                "UNKNOWN_METHOD",
                "the method is not in the server's access policy",
            ))
        }
    }
    Ok(Admitted::Member(caller))
}

/// Who made an admitted member call, on its response: for the layers outside this one
/// (metrics and call logs), which cannot see the request's extensions.
#[derive(Clone, Debug)]
pub struct CalledBy(pub Arc<str>);

/// The tower layer that runs [`admit`] on every call.
#[derive(Clone)]
pub struct AuthLayer {
    members: Arc<dyn Members>,
}

impl AuthLayer {
    /// Checks callers against `members`.
    pub fn new(members: Arc<dyn Members>) -> Self {
        Self { members }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            members: self.members.clone(),
        }
    }
}

/// The service made by [`AuthLayer`].
#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    members: Arc<dyn Members>,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Auth<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    ReqBody: Send + 'static,
    ResBody: Default,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    /// Always ready: the inner service is made ready per call, after admission, so refused
    /// calls never wait for (or hold) anything the inner service rations.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        let inner = self.inner.clone();
        let members = self.members.clone();
        // Admission runs inside the future, which tonic polls in the call's `rpc` span.
        Box::pin(async move {
            let certs = req
                .extensions()
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(TlsConnectInfo::peer_certs);
            match admit(
                &*members,
                req.uri().path(),
                certs.as_deref().map(Vec::as_slice),
            ) {
                Ok(Admitted::Peer) => {}
                Ok(Admitted::Member(caller)) => {
                    tracing::Span::current().record("member", caller.member_id.as_str());
                    let member = CalledBy(caller.member_id.as_str().into());
                    req.extensions_mut().insert(caller);
                    let mut response = inner.oneshot(req).await?;
                    response.extensions_mut().insert(member);
                    return Ok(response);
                }
                Err(err) => {
                    tracing::debug!(reason = err.reason(), "call refused before its body");
                    return Ok(tonic::Status::from(err).into_http());
                }
            }
            inner.oneshot(req).await
        })
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tonic::Code;

    use super::*;

    /// One member per role, each holding the certificate `[i]` for `ROLES[i]`; certificate `[9]`
    /// is a suspended member's.
    struct Fixed;

    /// Member ids from names, whether `Caller::member_id` is a `String` or a `MemberId`.
    trait FromName {
        fn from_name(name: &str) -> Self;
    }

    impl FromName for String {
        fn from_name(name: &str) -> Self {
            name.to_owned()
        }
    }

    impl FromName for crate::types::MemberId {
        fn from_name(name: &str) -> Self {
            crate::types::MemberId::parse(name).unwrap()
        }
    }

    const ROLES: [Role; 5] = [
        Role::Admin,
        Role::Contributor,
        Role::Reader,
        Role::Observer,
        Role::Replica,
    ];

    fn cert(i: u8) -> Vec<u8> {
        vec![i]
    }

    impl Members for Fixed {
        fn caller(&self, der: &[u8]) -> Result<Caller, ServiceError> {
            if der == cert(9) {
                return Err(ServiceError::Unauthenticated {
                    reason: "MEMBER_NOT_ACTIVE",
                    message: "suspended".into(),
                });
            }
            (0u8..)
                .zip(ROLES)
                .find(|(i, _)| der == cert(*i))
                .map(|(_, role)| Caller {
                    member_id: FromName::from_name(role.name()),
                    roles: vec![role],
                })
                .ok_or_else(|| ServiceError::Unauthenticated {
                    reason: "UNKNOWN_CERTIFICATE",
                    message: "unbound".into(),
                })
        }
    }

    fn reason(result: Result<Admitted, ServiceError>) -> &'static str {
        result.err().and_then(|e| e.reason()).unwrap_or("OK")
    }

    /// The policy table, role by role (admin, contributor, reader, observer, replica).
    #[test]
    fn each_method_admits_exactly_its_roles() {
        const OK: &str = "OK";
        const NO: &str = "MISSING_ROLE";
        let table = [
            ("RegistryService/SubmitEntry", [OK, OK, OK, NO, NO]),
            ("RegistryService/SubmitEntries", [OK, OK, OK, NO, NO]),
            ("RegistryService/LookupHash", [NO, NO, OK, OK, NO]),
            ("RegistryService/LookupHashes", [NO, NO, OK, OK, NO]),
            ("RegistryService/MatchHashes", [NO, NO, OK, OK, NO]),
            ("RegistryService/GetProvenance", [NO, NO, OK, OK, NO]),
            ("RegistryService/ListIncidents", [OK; 5]),
            ("LogService/GetCheckpoint", [NO, NO, OK, OK, OK]),
            ("LogService/GetEntries", [NO, NO, OK, NO, OK]),
            ("LogService/GetEntry", [NO, NO, OK, NO, OK]),
            ("LogService/GetInclusionProof", [NO, NO, OK, OK, OK]),
            ("LogService/GetConsistencyProof", [NO, NO, OK, OK, OK]),
            ("LogService/WatchCheckpoints", [NO, NO, OK, OK, OK]),
            ("AdminService/ListMembers", [OK; 5]),
            ("AdminService/GetMember", [OK; 5]),
            ("AdminService/GetMemberHistory", [OK; 5]),
        ];
        for (method, want) in table {
            let path = format!("/hashforum.v1.{method}");
            for (i, want) in (0u8..).zip(want) {
                let got = reason(admit(&Fixed, &path, Some(&[cert(i)][..])));
                assert_eq!(got, want, "{path} by {:?}", ROLES[usize::from(i)]);
            }
        }
        let denied = admit(
            &Fixed,
            "/hashforum.v1.RegistryService/LookupHash",
            Some(&[cert(1)][..]),
        );
        assert_eq!(
            denied.unwrap_err().to_string(),
            "member contributor needs one of the roles: reader, observer"
        );
    }

    #[test]
    fn members_are_authenticated_before_anything_else() {
        let none: Option<&[Vec<u8>]> = None;
        let cases = [
            (
                "/hashforum.v1.AdminService/ListMembers",
                none,
                "NO_CLIENT_CERTIFICATE",
            ),
            (
                "/hashforum.v1.AdminService/ListMembers",
                Some(&[][..]),
                "NO_CLIENT_CERTIFICATE",
            ),
            (
                "/hashforum.v1.RegistryService/SubmitEntries",
                Some(&[cert(7)][..]),
                "UNKNOWN_CERTIFICATE",
            ),
            (
                "/hashforum.v1.RegistryService/SubmitEntries",
                Some(&[cert(9)][..]),
                "MEMBER_NOT_ACTIVE",
            ),
            (
                "/hashforum.v1.RegistryService/Unknown",
                Some(&[cert(7)][..]),
                "UNKNOWN_CERTIFICATE",
            ),
        ];
        for (path, certs, want) in cases {
            let err = admit(&Fixed, path, certs).unwrap_err();
            assert_eq!(err.reason(), Some(want), "{path}");
            assert_eq!(tonic::Status::from(err).code(), Code::Unauthenticated);
        }
    }

    #[test]
    fn unknown_methods_are_denied_and_stock_services_are_open() {
        for path in [
            "/hashforum.v1.RegistryService/Unknown",
            "/hashforum.v1.Other/Method",
            "/hashforum.v1.RegistryService/SubmitEntry/",
            "/hashforum.v1.RegistryService/SubmitEntryX",
            "/grpc.health.v1.Health/",
            "/grpc.health.v1.Health/Check/x",
            "/grpc.reflection.v1beta.ServerReflection/ServerReflectionInfo",
            "/other.Service/Method",
            "",
        ] {
            let err = admit(&Fixed, path, Some(&[cert(0)][..])).unwrap_err();
            assert_eq!(err.reason(), Some("UNKNOWN_METHOD"), "{path:?}");
            assert_eq!(tonic::Status::from(err).code(), Code::PermissionDenied);
        }
        let none: Option<&[Vec<u8>]> = None;
        for path in [
            "/grpc.health.v1.Health/Check",
            "/grpc.health.v1.Health/Watch",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ] {
            assert_eq!(
                admit(&Fixed, path, none).ok(),
                Some(Admitted::Peer),
                "{path}"
            );
        }
    }

    /// A refused call is answered by the layer with a gRPC status; the inner service never
    /// sees it. An admitted call reaches it with its `Caller`.
    #[tokio::test]
    async fn the_layer_answers_refusals_and_passes_the_caller_on() {
        let inner = tower::service_fn(|req: http::Request<()>| async move {
            let caller = req.extensions().get::<Caller>().cloned();
            let mut response = http::Response::new(String::from("reached"));
            response.extensions_mut().insert(caller);
            Ok::<_, Infallible>(response)
        });
        let mut svc = AuthLayer::new(Arc::new(Fixed)).layer(inner);
        let request = |path: &str| http::Request::builder().uri(path).body(()).unwrap();

        // No TLS connect info at all: refused, not reached.
        let response = svc
            .call(request("/hashforum.v1.AdminService/ListMembers"))
            .await
            .unwrap();
        assert!(response.body().is_empty());
        let status = tonic::Status::from_header_map(response.headers()).unwrap();
        assert_eq!(status.code(), Code::Unauthenticated);

        // Open paths are reached, with no caller.
        let response = svc
            .call(request("/grpc.health.v1.Health/Check"))
            .await
            .unwrap();
        assert_eq!(response.body(), "reached");
        assert_eq!(response.extensions().get::<Option<Caller>>(), Some(&None));
    }
}
