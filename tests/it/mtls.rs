//! Transport identity: who may even reach a handler.

use hashforum::client::Client;
use hashforum::forum::{self, ForumSpec, DEV_ORIGIN};
use hashforum::identity::{Identity, IdentityFile};
use hashforum::pb;
use hashforum::pki::Ca;
use tonic::Code;

use crate::harness::{details, TestServer};

/// A client certificate from another CA fails the TLS handshake: the call never reaches a
/// handler, so it is a transport failure, not an application error.
#[tokio::test]
async fn certificate_from_another_ca_is_refused() {
    let server = TestServer::start(&["alpha"]).await;
    let other = tempfile::tempdir().unwrap();
    let spec = ForumSpec {
        dir: other.path().to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        origin: DEV_ORIGIN.into(),
    };
    forum::init_dev(&spec, &["mallory".into()]).unwrap();
    // Mallory trusts our server's CA but holds a certificate from its own CA.
    let mut mallory = Identity::load(&other.path().join("identities/mallory")).unwrap();
    mallory.ca_cert = server.identity("alpha").ca_cert;
    let outcome = match Client::connect(&mallory, Some(&server.addr)).await {
        Err(_) => None,
        Ok(mut client) => Some(client.admin.list_members(pb::ListMembersRequest {}).await),
    };
    match outcome {
        None => {}
        Some(Ok(_)) => panic!("a certificate from another CA was served"),
        Some(Err(status)) => {
            assert_ne!(
                status.code(),
                Code::Unauthenticated,
                "reached a handler: {status:?}"
            );
            assert!(
                matches!(
                    status.code(),
                    Code::Unavailable | Code::Unknown | Code::Internal
                ),
                "{status:?}"
            );
            assert!(
                details(&status).1.is_empty(),
                "no application error details: {status:?}"
            );
        }
    }
}

/// A certificate from the forum CA that is bound to no member gets UNAUTHENTICATED.
#[tokio::test]
async fn unbound_certificate_is_unauthenticated() {
    let server = TestServer::start(&["alpha"]).await;
    let ca_dir = server.dir().join("ca");
    let ca = Ca::load(
        &std::fs::read_to_string(ca_dir.join("ca.crt")).unwrap(),
        &std::fs::read_to_string(ca_dir.join("ca.key")).unwrap(),
    )
    .unwrap();
    let cert = ca.issue_client("stranger").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = IdentityFile {
        member: "stranger".into(),
        origin: hashforum::forum::DEV_ORIGIN.into(),
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
    let mut client = Client::connect(&Identity::load(dir.path()).unwrap(), None)
        .await
        .unwrap();
    let err = client
        .admin
        .list_members(pb::ListMembersRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(details(&err).1, "UNKNOWN_CERTIFICATE");
    let err = client
        .registry
        .lookup_hash(pb::LookupHashRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::Unauthenticated,
        "checked before the request is parsed"
    );
}

/// The server serves grpc.health.v1.
#[tokio::test]
async fn health_is_served() {
    let server = TestServer::start(&["alpha"]).await;
    let alpha = server.identity("alpha");
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&alpha.ca_cert))
        .identity(tonic::transport::Identity::from_pem(
            &alpha.tls_cert,
            &alpha.tls_key,
        ))
        .domain_name("localhost");
    let channel = tonic::transport::Channel::from_shared(server.addr.clone())
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "hashforum.v1.RegistryService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}
