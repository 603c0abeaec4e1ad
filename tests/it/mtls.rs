//! Transport identity: who may even reach a handler; and the standard services every
//! certificate of the forum CA may call (health, reflection).

use hashforum::forum::DEV_ORIGIN;
use hashforum::identity::{Identity, IdentityFile};
use hashforum::pb;
use hashforum::pb::admin_service_client::AdminServiceClient;
use prost::Message;
use tonic::transport::{Certificate, ClientTlsConfig};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

use crate::harness::{assert_refused, descriptor, details, TestServer};

/// The three health names, all `SERVING` while the server runs.
const HEALTH_NAMES: [&str; 3] = [
    "",
    "hashforum.v1.RegistryService",
    "hashforum.v1.AdminService",
];

/// Asserts a failure of the transport, made by the client: the call reached no handler
/// (no hashforum details), and the status wraps tonic's transport error.
///
/// api.md says clients see `UNAVAILABLE`. A tonic client does not: under TLS 1.3 it has
/// finished its side of the handshake when the server refuses the certificate, and the call
/// fails with `CANCELLED` ("connection closed") or `UNKNOWN` (the TLS alert), depending on
/// timing (`documented_code_for_a_refused_handshake` below).
#[track_caller]
fn assert_transport_refusal(status: &tonic::Status) {
    let transport =
        std::error::Error::source(status).and_then(|e| e.downcast_ref::<tonic::transport::Error>());
    assert!(transport.is_some(), "not a transport error: {status:?}");
    assert!(
        matches!(
            status.code(),
            Code::Unavailable | Code::Cancelled | Code::Unknown
        ),
        "{status:?}"
    );
    let d = details(status);
    assert_eq!((d.reason, d.violations), (None, None), "{status:?}");
}

/// A certificate from another CA fails the handshake, while a member's is served.
#[tokio::test]
async fn certificate_from_another_ca_is_refused() {
    let server = TestServer::start(&["alpha"]).await;
    let other = crate::harness::dev_forum(&["mallory"]);
    let alpha = server.identity("alpha");
    // Mallory trusts our server's CA but holds a certificate from its own CA.
    let mut mallory = Identity::load(&other.path().join("identities/mallory")).unwrap();
    mallory.ca_cert = alpha.ca_cert.clone();

    let mut good = AdminServiceClient::new(server.channel(&alpha, true).await);
    let listed = good
        .list_members(pb::ListMembersRequest {})
        .await
        .expect("the positive control is served")
        .into_inner();
    assert!(listed.members.iter().any(|m| m.member_id == "alpha"));

    let mut bad = AdminServiceClient::new(server.channel(&mallory, true).await);
    let status = bad
        .list_members(pb::ListMembersRequest {})
        .await
        .expect_err("a certificate from another CA was served");
    assert_transport_refusal(&status);

    // The server is still up for members.
    good.list_members(pb::ListMembersRequest {}).await.unwrap();
}

/// A client without a certificate fails the handshake, while one with a member's is served.
#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let server = TestServer::start(&["alpha"]).await;
    let alpha = server.identity("alpha");
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&alpha.ca_cert))
        .domain_name("localhost");
    let mut anonymous = AdminServiceClient::new(server.channel_with(tls.clone(), true).await);
    let status = anonymous
        .list_members(pb::ListMembersRequest {})
        .await
        .expect_err("served without a client certificate");
    assert_transport_refusal(&status);

    let with_cert = tls.identity(tonic::transport::Identity::from_pem(
        &alpha.tls_cert,
        &alpha.tls_key,
    ));
    let mut member = AdminServiceClient::new(server.channel_with(with_cert, true).await);
    member
        .list_members(pb::ListMembersRequest {})
        .await
        .expect("the positive control is served");
}

/// A forum-CA certificate bound to no member gets `UNKNOWN_CERTIFICATE`, before any parsing.
#[tokio::test]
async fn unbound_certificate_is_unauthenticated() {
    let server = TestServer::start(&["alpha"]).await;
    let cert = server.dev_ca().issue_client("stranger").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = IdentityFile {
        member: "stranger".into(),
        origin: DEV_ORIGIN.into(),
        server: server.addr.clone(),
        server_name: "localhost".into(),
    };
    let ca_pem = String::from_utf8(server.identity("alpha").ca_cert).unwrap();
    let key = hashforum::crypto::generate_key();
    Identity::write(
        dir.path(),
        &file,
        &cert.cert_pem,
        &cert.key_pem,
        &ca_pem,
        &key,
    )
    .unwrap();
    let mut client = server.connect(&Identity::load(dir.path()).unwrap()).await;
    let err = client
        .admin
        .list_members(pb::ListMembersRequest {})
        .await
        .unwrap_err();
    assert_refused(&err, Code::Unauthenticated, "UNKNOWN_CERTIFICATE");
    // An empty lookup request would be INVALID_ARGUMENT if it were read.
    let err = client
        .registry
        .lookup_hash(pb::LookupHashRequest::default())
        .await
        .unwrap_err();
    assert_refused(&err, Code::Unauthenticated, "UNKNOWN_CERTIFICATE");
    let err = client
        .registry
        .submit_entry(pb::SubmitEntryRequest { envelope: None })
        .await
        .unwrap_err();
    assert_refused(&err, Code::Unauthenticated, "UNKNOWN_CERTIFICATE");
}

/// Health is `SERVING` for its three names (`Check`, `Watch`), and `NOT_SERVING` at shutdown.
#[tokio::test]
async fn health_is_served_and_turns_not_serving_on_shutdown() {
    let mut server = TestServer::start(&["alpha"]).await;
    let alpha = server.identity("alpha");
    let mut health = HealthClient::new(server.channel(&alpha, false).await);
    let serving = ServingStatus::Serving as i32;
    for name in HEALTH_NAMES {
        let reply = health
            .check(HealthCheckRequest {
                service: name.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.status, serving, "{name:?}");
    }
    let status = health
        .check(HealthCheckRequest {
            service: "hashforum.v1.NoSuchService".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    let mut watches = Vec::new();
    for name in HEALTH_NAMES {
        let mut watch = health
            .watch(HealthCheckRequest {
                service: name.into(),
            })
            .await
            .unwrap()
            .into_inner();
        let first = next_status(&mut watch).await;
        assert_eq!(first, serving, "{name:?}");
        watches.push((name, watch));
    }

    server.begin_stop();
    for (name, watch) in &mut watches {
        let status = next_status(watch).await;
        assert_eq!(status, ServingStatus::NotServing as i32, "{name:?}");
    }
    // Ending the streams lets the server finish its graceful shutdown.
    drop(watches);
    drop(health);
    server.stop().await;
}

/// The next status on a `Watch` stream, within 10 s.
async fn next_status(watch: &mut tonic::Streaming<tonic_health::pb::HealthCheckResponse>) -> i32 {
    tokio::time::timeout(std::time::Duration::from_secs(10), watch.message())
        .await
        .expect("a health update within 10 s")
        .expect("the stream is open")
        .expect("the stream has not ended")
        .status
}

/// Reflection v1 lists and describes `hashforum.v1`, health and itself; so does v1alpha.
#[tokio::test]
async fn reflection_v1_describes_the_services() {
    let server = TestServer::start(&["alpha"]).await;
    let alpha = server.identity("alpha");
    let channel = server.channel(&alpha, false).await;
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let request = |message| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(message),
    };
    let requests = vec![
        request(MessageRequest::ListServices(String::new())),
        request(MessageRequest::FileContainingSymbol(
            "hashforum.v1.RegistryService".into(),
        )),
    ];
    let mut replies = reflection
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let mut responses = Vec::new();
    while let Some(reply) = replies.message().await.unwrap() {
        responses.push(reply.message_response.expect("a response"));
    }
    assert_eq!(responses.len(), 2);
    let MessageResponse::ListServicesResponse(list) = &responses[0] else {
        panic!("not a service list: {:?}", responses[0]);
    };
    let mut services: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    services.sort_unstable();
    assert_eq!(
        services,
        [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "hashforum.v1.AdminService",
            "hashforum.v1.LogService",
            "hashforum.v1.RegistryService",
        ]
    );
    let MessageResponse::FileDescriptorResponse(files) = &responses[1] else {
        panic!("not a file descriptor: {:?}", responses[1]);
    };
    let files: Vec<descriptor::FileDescriptorProto> = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| descriptor::FileDescriptorProto::decode(bytes.as_slice()).unwrap())
        .collect();
    let registry: Vec<String> = descriptor::methods(&files)
        .into_iter()
        .filter(|m| m.starts_with("hashforum.v1.RegistryService/"))
        .collect();
    assert_eq!(
        registry,
        [
            "hashforum.v1.RegistryService/GetProvenance",
            "hashforum.v1.RegistryService/ListIncidents",
            "hashforum.v1.RegistryService/LookupHash",
            "hashforum.v1.RegistryService/LookupHashes",
            "hashforum.v1.RegistryService/MatchHashes",
            "hashforum.v1.RegistryService/SubmitEntries",
            "hashforum.v1.RegistryService/SubmitEntry",
        ]
    );

    let mut alpha_reflection =
        tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient::new(
            channel,
        );
    let old = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            ),
        ),
    };
    // v1alpha too, for the tools that speak only it: the same services.
    let reply = alpha_reflection
        .server_reflection_info(tokio_stream::iter(vec![old]))
        .await
        .expect("v1alpha is served")
        .into_inner()
        .message()
        .await
        .unwrap()
        .expect("a reply");
    let Some(
        tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list),
    ) = reply.message_response
    else {
        panic!("not a service list: {reply:?}");
    };
    let mut old_services: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    old_services.sort_unstable();
    assert_eq!(
        old_services,
        [
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
            "hashforum.v1.AdminService",
            "hashforum.v1.LogService",
            "hashforum.v1.RegistryService",
        ]
    );
}
