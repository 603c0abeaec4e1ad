//! The review's findings, each as the attack or mistake it describes, over real mTLS: a
//! statement replayed from another forum (H1), a record inflated by one member (H2), a lookup
//! reply forced to grow (H3), relays (M3), stale admin statements (M4), payloads carrying
//! extra bytes (M7), certificates rotated and never reused (M9), and resubmissions after a
//! key was revoked (L6).

use hashforum::statement::{admin, hash_submission, Signer};
use hashforum::types::{HashType, Role};
use hashforum::{crypto, pb};
use tonic::Code;

use crate::harness::{assert_invalid, assert_refused, lookup, sha256_value, submit, TestServer};

/// The index the next entry will get, found by submitting one: proves what was (not) written.
async fn next_index(server: &TestServer) -> u64 {
    let mut client = server.client("alpha").await;
    let probe = hash_submission(HashType::Sha256, &sha256_value(rand_u64()));
    submit(&mut client, server.signer("alpha").submit(probe))
        .await
        .unwrap()
        .log_index
}

fn rand_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1 << 40);
    N.fetch_add(1, Ordering::Relaxed)
}

async fn submit_all(
    server: &TestServer,
    member: &str,
    envelopes: Vec<pb::Envelope>,
) -> Result<Vec<pb::Receipt>, tonic::Status> {
    let mut client = server.client(member).await;
    client
        .registry
        .submit_entries(pb::SubmitEntriesRequest { envelopes })
        .await
        .map(|r| r.into_inner().receipts)
}

/// H1: an envelope signed for a staging forum, with the same member id and key, is refused
/// in production and writes nothing.
#[tokio::test]
async fn a_statement_signed_for_another_forum_is_refused() {
    let server = TestServer::start(&["alpha"]).await;
    let before = next_index(&server).await;
    let alpha = server.identity("alpha");
    let staging = Signer::new("hashforum.dev/staging", "alpha", alpha.signing_key.clone());
    let envelope = staging.submit(hash_submission(
        HashType::Md5,
        "d41d8cd98f00b204e9800998ecf8427e",
    ));
    let status = submit(&mut server.client("alpha").await, envelope)
        .await
        .unwrap_err();
    assert_invalid(&status, "envelope.payload.origin", "WRONG_ORIGIN");
    assert_eq!(
        next_index(&server).await,
        before + 1,
        "nothing was appended"
    );
}

/// M7: a signed payload carrying an unknown field (bytes that are not the statement) is
/// refused, although its signature is valid.
#[tokio::test]
async fn a_payload_with_extra_bytes_is_refused() {
    let server = TestServer::start(&["alpha"]).await;
    let signer = server.signer("alpha");
    let statement = signer.statement(
        0,
        pb::statement::Body::HashSubmission(hash_submission(HashType::Sha256, &sha256_value(1))),
    );
    let mut payload = prost::Message::encode_to_vec(&statement);
    payload.extend_from_slice(&[0xfa, 0x3f, 4, b'j', b'u', b'n', b'k']); // field 1023
    let envelope = crypto::sign_payload(&server.identity("alpha").signing_key, payload.into());
    let status = submit(&mut server.client("alpha").await, envelope)
        .await
        .unwrap_err();
    assert_invalid(&status, "envelope.payload", "NON_CANONICAL_STATEMENT");
}

/// H2: one member resubmitting a hash 10,000 times with a different tag each time supersedes
/// its own submission: the record keeps one submission per member, with the latest labels
/// and the index of the first, and the log keeps all 10,000 entries.
#[tokio::test]
async fn one_member_cannot_inflate_a_record() {
    let server = TestServer::start(&["alpha", "beta"]).await;
    let value = sha256_value(42);
    let beta = submit(
        &mut server.client("beta").await,
        server
            .signer("beta")
            .submit(hash_submission(HashType::Sha256, &value)),
    )
    .await
    .unwrap();
    let alpha = server.signer("alpha");
    let envelopes: Vec<pb::Envelope> = (0..10_000)
        .map(|i| {
            let mut s = hash_submission(HashType::Sha256, &value);
            s.tags = vec![format!("variant-{i}")];
            alpha.submit(s)
        })
        .collect();
    let receipts = submit_all(&server, "alpha", envelopes).await.unwrap();
    assert!(receipts.iter().all(|r| !r.duplicate));
    let (first, last) = (receipts[0].log_index, receipts[9_999].log_index);
    assert_eq!(last - first, 9_999, "every statement is in the log");

    let record = lookup(
        &mut server.client("beta").await,
        HashType::Sha256,
        &value,
        false,
    )
    .await
    .unwrap();
    let view: Vec<_> = record
        .submissions
        .iter()
        .map(|s| {
            (
                s.member_id.as_str(),
                s.first_log_index,
                s.log_index,
                s.tags.clone(),
            )
        })
        .collect();
    assert_eq!(
        view,
        [
            ("beta", beta.log_index, beta.log_index, vec![]),
            ("alpha", first, last, vec!["variant-9999".to_owned()]),
        ]
    );
}

/// H3: a lookup asking 10,000 times for one large record, with envelopes, is refused with
/// `RESOURCE_EXHAUSTED` instead of building a reply of hundreds of megabytes; a reasonable
/// batch with repeats is answered in query order.
#[tokio::test]
async fn a_lookup_reply_is_bounded() {
    let members = ["alpha", "beta", "gamma"];
    let server = TestServer::start(&members).await;
    let value = sha256_value(7);
    for m in members {
        // Labels and tags at their limits: about 3 KiB per submission.
        let mut s = hash_submission(HashType::Sha256, &value);
        s.labels = Some(pb::Labels {
            entity: "e".repeat(256),
            behaviour: "b".repeat(256),
            content_type: "video".into(),
        });
        s.tags = (0..32).map(|i| format!("{i:0>64}")).collect();
        submit(&mut server.client(m).await, server.signer(m).submit(s))
            .await
            .unwrap();
    }
    let query = |v: &str| pb::HashQuery {
        hash_type: pb::HashType::Sha256 as i32,
        value: v.into(),
    };
    let mut client = server.client("alpha").await;
    let huge = pb::LookupHashesRequest {
        queries: vec![query(&value); 10_000],
        include_envelopes: true,
    };
    let started = std::time::Instant::now();
    let status = client.registry.lookup_hashes(huge).await.unwrap_err();
    assert_refused(&status, Code::ResourceExhausted, "REPLY_TOO_LARGE");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));

    let absent = sha256_value(8);
    let queries = [&value, &absent, &value, &value, &absent]
        .map(|v| query(v))
        .to_vec();
    let results = client
        .registry
        .lookup_hashes(pb::LookupHashesRequest {
            queries,
            include_envelopes: true,
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    let found: Vec<bool> = results.iter().map(|r| r.found).collect();
    assert_eq!(found, [true, false, true, true, false]);
    for r in results.iter().filter(|r| r.found) {
        let record = r.record.as_ref().unwrap();
        assert_eq!(record.submissions.len(), 3);
        assert!(record.submissions.iter().all(|s| s.envelope.is_some()));
    }
}

/// M4: an admin action signed 11 minutes ago and never delivered is refused; one signed now
/// goes through; once logged, resending the old-but-logged envelope returns its receipt.
#[tokio::test]
async fn stale_admin_statements_are_refused() {
    let server = TestServer::start(&["alpha"]).await;
    let admin_signer = server.signer("admin");
    let now = hashforum::log::now_ms();
    for issued in [now - 11 * 60_000, now + 11 * 60_000] {
        let stale = admin_signer.sign(&admin_signer.statement(issued, admin::suspend("alpha", "")));
        let status = submit(&mut server.client("admin").await, stale)
            .await
            .unwrap_err();
        assert_invalid(
            &status,
            "envelope.payload.issued_at_unix_ms",
            "STALE_STATEMENT",
        );
    }
    let fresh =
        admin_signer.sign(&admin_signer.statement(now - 60_000, admin::suspend("alpha", "")));
    let first = submit(&mut server.client("admin").await, fresh.clone())
        .await
        .unwrap();
    let again = submit(&mut server.client("admin").await, fresh)
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.log_index, first.log_index);
}

/// L6: after a key is revoked, resubmitting an envelope it signed before gets the original
/// receipt, not `REVOKED_KEY`: the statement is in the log, and saying so reveals nothing.
#[tokio::test]
async fn a_resubmission_gets_its_receipt_after_the_key_is_revoked() {
    let server = TestServer::start(&["alpha"]).await;
    let alpha = server.identity("alpha");
    let envelope = server
        .signer("alpha")
        .submit(hash_submission(HashType::Sha256, &sha256_value(3)));
    let original = submit(&mut server.client("alpha").await, envelope.clone())
        .await
        .unwrap();
    let admin_signer = server.signer("admin");
    let new_key = crypto::generate_key();
    let keyid = crypto::key_id(&alpha.signing_key.verifying_key());
    submit_all(
        &server,
        "admin",
        vec![
            admin_signer.admin(admin::register_key("alpha", &new_key.verifying_key())),
            admin_signer.admin(admin::revoke_key("alpha", &keyid, "rotated")),
        ],
    )
    .await
    .unwrap();
    let again = submit(&mut server.client("alpha").await, envelope)
        .await
        .unwrap();
    assert_eq!(
        (again.log_index, again.duplicate),
        (original.log_index, true)
    );
    assert_eq!(again.entry_hash, original.entry_hash);
}

/// M3: an admin may relay a member's signed entry, and the log records who relayed it; an
/// admin demoted earlier in the same call may not.
#[tokio::test]
async fn relays_are_recorded_and_rechecked_when_sequenced() {
    let server = TestServer::start(&["alpha", "beta"]).await;
    let alpha = server.signer("alpha");
    let relayed = alpha.submit(hash_submission(HashType::Sha256, &sha256_value(11)));
    let receipt = submit(&mut server.client("admin").await, relayed)
        .await
        .unwrap();
    let record = lookup(
        &mut server.client("beta").await,
        HashType::Sha256,
        &sha256_value(11),
        false,
    )
    .await
    .unwrap();
    assert_eq!(record.submissions[0].member_id, "alpha");
    assert_eq!(record.submissions[0].log_index, receipt.log_index);

    // Promote beta so that the forum keeps an admin, then the admin demotes itself and tries
    // to relay in the same call: the relay is judged after the demotion.
    let admin_signer = server.signer("admin");
    submit_all(
        &server,
        "admin",
        vec![admin_signer.admin(admin::set_roles("beta", &[Role::Admin, Role::Contributor]))],
    )
    .await
    .unwrap();
    let before = next_index(&server).await;
    let status = submit_all(
        &server,
        "admin",
        vec![
            admin_signer.admin(admin::set_roles("admin", &[Role::Reader])),
            alpha.submit(hash_submission(HashType::Sha256, &sha256_value(12))),
        ],
    )
    .await
    .unwrap_err();
    assert_refused(&status, Code::PermissionDenied, "AUTHOR_MISMATCH");
    assert_eq!(
        next_index(&server).await,
        before + 1,
        "the call wrote nothing"
    );
}

/// M9: a member's certificate is rotated without suspending it (bind the new one, unbind the
/// old one, which then authenticates nobody), and a fingerprint once bound is never bound to
/// another member, also after its member is removed.
#[tokio::test]
async fn certificates_rotate_and_are_never_reused() {
    let server = TestServer::start(&["alpha", "beta"]).await;
    let admin_signer = server.signer("admin");
    let old = crypto::cert_fingerprint(
        &hashforum::pki::pem_to_der(&String::from_utf8(server.identity("alpha").tls_cert).unwrap())
            .unwrap(),
    );
    let (new_identity, new_cert) = server.issue_identity("alpha-2027");
    let mut old_client = server.client("alpha").await;

    submit_all(
        &server,
        "admin",
        vec![admin_signer.admin(admin::bind_cert("alpha", &new_cert, "rotation"))],
    )
    .await
    .unwrap();
    let mut new_client = server.connect(&new_identity).await;
    // The new certificate speaks for alpha (the identity directory's member id is alpha-2027,
    // but the certificate is what the server goes by).
    let members = new_client
        .admin
        .list_members(pb::ListMembersRequest {})
        .await
        .unwrap();
    assert!(!members.into_inner().members.is_empty());

    let unbind = admin::unbind_cert("alpha", old.as_bytes(), "rotation");
    submit_all(&server, "admin", vec![admin_signer.admin(unbind)])
        .await
        .unwrap();
    let status = old_client
        .admin
        .list_members(pb::ListMembersRequest {})
        .await
        .unwrap_err();
    // An open connection is refused too.
    assert_refused(&status, Code::Unauthenticated, "UNKNOWN_CERTIFICATE");

    // The last certificate cannot be unbound; a retired one cannot go to another member.
    let status = submit_all(
        &server,
        "admin",
        vec![admin_signer.admin(admin::unbind_cert("alpha", &new_cert, ""))],
    )
    .await
    .unwrap_err();
    assert_refused(&status, Code::FailedPrecondition, "LAST_CERTIFICATE");
    let status = submit_all(
        &server,
        "admin",
        vec![admin_signer.admin(admin::bind_cert("beta", old.as_bytes(), ""))],
    )
    .await
    .unwrap_err();
    assert_refused(&status, Code::AlreadyExists, "CERTIFICATE_IN_USE");

    // Removal retires beta's certificate; adding a new member with it is refused.
    let beta_cert = crypto::cert_fingerprint(
        &hashforum::pki::pem_to_der(&String::from_utf8(server.identity("beta").tls_cert).unwrap())
            .unwrap(),
    );
    submit_all(
        &server,
        "admin",
        vec![admin_signer.admin(admin::remove("beta", "left"))],
    )
    .await
    .unwrap();
    let add = admin::add_member(
        "mallory",
        "Mallory",
        &[Role::Reader],
        vec![beta_cert.as_bytes().to_vec()],
    );
    let status = submit_all(&server, "admin", vec![admin_signer.admin(add)])
        .await
        .unwrap_err();
    assert_refused(&status, Code::AlreadyExists, "CERTIFICATE_IN_USE");
}

/// A codec that sends pre-encoded bytes, for requests no generated client would build.
#[derive(Clone, Copy, Default)]
struct RawBytes;

impl tonic::codec::Codec for RawBytes {
    type Encode = bytes::Bytes;
    type Decode = bytes::Bytes;
    type Encoder = RawBytes;
    type Decoder = RawBytes;

    fn encoder(&mut self) -> RawBytes {
        RawBytes
    }

    fn decoder(&mut self) -> RawBytes {
        RawBytes
    }
}

impl tonic::codec::Encoder for RawBytes {
    type Item = bytes::Bytes;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: bytes::Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawBytes {
    type Item = bytes::Bytes;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<bytes::Bytes>, tonic::Status> {
        let n = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, n)))
    }
}

/// What field 1 of a request is, for the malformed variants of it.
#[derive(Clone, Copy)]
enum First {
    /// A message, string or bytes field, by name.
    Len(&'static str),
    /// A varint field (integer, bool, enum), by name.
    Varint(&'static str),
    /// The request has no fields.
    None,
}

/// One method of the API, how its request is laid out, and who may call it.
struct Method {
    path: &'static str,
    streaming: bool,
    caller: &'static str,
    first: First,
    /// A request with invalid UTF-8 in a string field, and that field's path.
    bad_utf8: Option<(&'static [u8], &'static str)>,
    /// A repeated field (the request's other fields, the field's key byte, its name), for a
    /// request of 100,000 empty elements.
    repeated: Option<(&'static [u8], u8, &'static str)>,
    /// The decode limit of its service.
    limit: usize,
}

const BIG: usize = hashforum::server::MAX_REQUEST;
const SMALL: usize = hashforum::server::MAX_SMALL_REQUEST;

/// Every RegistryService, AdminService and LogService method.
fn methods() -> Vec<Method> {
    let m = |path, caller, first, limit| Method {
        path,
        streaming: false,
        caller,
        first,
        bad_utf8: None,
        repeated: None,
        limit,
    };
    // Invalid UTF-8 (0xff) in a string, nested where the string is in a message.
    const ENVELOPE_TYPE: &[u8] = &[0x0a, 0x03, 0x12, 0x01, 0xff];
    const QUERY_VALUE: &[u8] = &[0x0a, 0x03, 0x12, 0x01, 0xff];
    const MATCH_VALUE: &[u8] = &[0x08, 0x01, 0x12, 0x03, 0x0a, 0x01, 0xff];
    const MEMBER_ID: &[u8] = &[0x0a, 0x01, 0xff];
    const COSIGNATURE: &[u8] = &[0x12, 0x01, 0xff];
    let registry = "/hashforum.v1.RegistryService/";
    let admin = "/hashforum.v1.AdminService/";
    let log = "/hashforum.v1.LogService/";
    let path = |service: &str, method: &str| -> &'static str {
        Box::leak(format!("{service}{method}").into_boxed_str())
    };
    vec![
        Method {
            bad_utf8: Some((ENVELOPE_TYPE, "envelope.payload_type")),
            ..m(
                path(registry, "SubmitEntry"),
                "alpha",
                First::Len("envelope"),
                BIG,
            )
        },
        Method {
            bad_utf8: Some((ENVELOPE_TYPE, "envelopes.payload_type")),
            repeated: Some((&[], 0x0a, "envelopes")),
            ..m(
                path(registry, "SubmitEntries"),
                "alpha",
                First::Len("envelopes"),
                BIG,
            )
        },
        Method {
            bad_utf8: Some((QUERY_VALUE, "query.value")),
            ..m(
                path(registry, "LookupHash"),
                "alpha",
                First::Len("query"),
                BIG,
            )
        },
        Method {
            bad_utf8: Some((QUERY_VALUE, "queries.value")),
            repeated: Some((&[], 0x0a, "queries")),
            ..m(
                path(registry, "LookupHashes"),
                "alpha",
                First::Len("queries"),
                BIG,
            )
        },
        Method {
            bad_utf8: Some((MATCH_VALUE, "queries.value")),
            repeated: Some((&[0x08, 0x01], 0x12, "queries")),
            ..m(
                path(registry, "MatchHashes"),
                "alpha",
                First::Varint("hash_type"),
                BIG,
            )
        },
        m(path(registry, "ListIncidents"), "alpha", First::None, BIG),
        Method {
            bad_utf8: Some((QUERY_VALUE, "query.value")),
            ..m(
                path(registry, "GetProvenance"),
                "alpha",
                First::Len("query"),
                BIG,
            )
        },
        m(path(admin, "ListMembers"), "admin", First::None, SMALL),
        Method {
            bad_utf8: Some((MEMBER_ID, "member_id")),
            ..m(
                path(admin, "GetMember"),
                "admin",
                First::Len("member_id"),
                SMALL,
            )
        },
        Method {
            bad_utf8: Some((MEMBER_ID, "member_id")),
            ..m(
                path(admin, "GetMemberHistory"),
                "admin",
                First::Len("member_id"),
                SMALL,
            )
        },
        m(
            path(log, "GetCheckpoint"),
            "alpha",
            First::Varint("size"),
            SMALL,
        ),
        Method {
            streaming: true,
            ..m(
                path(log, "GetEntries"),
                "alpha",
                First::Varint("start"),
                SMALL,
            )
        },
        m(
            path(log, "GetEntry"),
            "alpha",
            First::Varint("index"),
            SMALL,
        ),
        m(
            path(log, "GetInclusionProof"),
            "alpha",
            First::Varint("index"),
            SMALL,
        ),
        m(
            path(log, "GetConsistencyProof"),
            "alpha",
            First::Varint("old_size"),
            SMALL,
        ),
        Method {
            streaming: true,
            ..m(path(log, "WatchCheckpoints"), "alpha", First::None, SMALL)
        },
        Method {
            bad_utf8: Some((COSIGNATURE, "cosignature")),
            ..m(
                path(log, "AddCosignature"),
                "replica-1",
                First::Len("checkpoint"),
                SMALL,
            )
        },
        m(path(log, "GetStatus"), "alpha", First::None, SMALL),
    ]
}

/// Sends `body` to `method` as `caller` and returns the refusal.
async fn refusal(server: &TestServer, method: &Method, body: Vec<u8>) -> tonic::Status {
    let client = server.client(method.caller).await;
    let mut grpc = tonic::client::Grpc::new(client.channel())
        .max_encoding_message_size(usize::MAX)
        .max_decoding_message_size(usize::MAX);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static(method.path);
    let request = tonic::Request::new(bytes::Bytes::from(body));
    let outcome = if method.streaming {
        match grpc.server_streaming(request, path, RawBytes).await {
            Err(status) => Err(status),
            Ok(reply) => match reply.into_inner().message().await {
                Err(status) => Err(status),
                Ok(first) => Ok(first.unwrap_or_default()),
            },
        }
    } else {
        grpc.unary(request, path, RawBytes)
            .await
            .map(tonic::Response::into_inner)
    };
    outcome.expect_err(method.path)
}

/// Asserts a `MALFORMED_REQUEST` naming `field`, whose message says `why`.
#[track_caller]
fn assert_malformed(status: &tonic::Status, method: &str, field: &str, why: &str) {
    assert_invalid(status, field, "MALFORMED_REQUEST");
    assert!(
        status.message().starts_with(&format!("{field}: ")) && status.message().contains(why),
        "{method}: {status:?}"
    );
}

/// The request message's name: what a refusal of the whole message names as its field.
fn request_name(path: &str) -> String {
    format!("{}Request", path.rsplit('/').next().unwrap())
}

/// Groups nested `depth` deep in an unknown field (15).
fn nested_groups(depth: usize) -> Vec<u8> {
    [vec![0x7b; depth], vec![0x7c; depth]].concat()
}

/// A corpus of malformed requests to every method: truncated, of the wrong wire type, with
/// invalid UTF-8, nested past the recursion limit, with 100,000 repeated elements, and larger
/// than the service's limit. Each gets its clear refusal (`INVALID_ARGUMENT` naming the field,
/// `MALFORMED_REQUEST` or `BATCH_TOO_LARGE`; `OUT_OF_RANGE` naming the limit), none writes
/// anything (the log's size and checkpoint are unchanged), and the server still serves.
#[tokio::test]
async fn malformed_requests_get_clear_refusals_and_write_nothing() {
    let server = TestServer::start_with_replicas(&["alpha"], 1).await;
    let mut alpha = server.client("alpha").await;
    let before = crate::harness::latest_note(&mut alpha).await;
    let mut cases = 0;
    for method in methods() {
        let path = method.path;
        let whole = request_name(path);
        // Truncated: field 1's value (or an unknown field's) cut short.
        let (truncated, field, why) = match method.first {
            First::Len(name) => (
                vec![0x0a, 0x05, b'a', b'b'],
                name.to_owned(),
                "buffer underflow",
            ),
            First::Varint(name) => (vec![0x08, 0xff], name.to_owned(), "invalid varint"),
            First::None => (vec![0x0a, 0x05, b'a'], whole.clone(), "buffer underflow"),
        };
        let status = refusal(&server, &method, truncated).await;
        assert_malformed(&status, path, &field, why);
        // A key cut short.
        let status = refusal(&server, &method, vec![0x80]).await;
        assert_malformed(&status, path, &whole, "invalid varint");
        // Field 1 with the wrong wire type.
        match method.first {
            First::Len(name) => {
                let status = refusal(&server, &method, vec![0x08, 0x01]).await;
                assert_malformed(&status, path, name, "invalid wire type: Varint");
            }
            First::Varint(name) => {
                let status = refusal(&server, &method, vec![0x0a, 0x01, 0x01]).await;
                assert_malformed(&status, path, name, "invalid wire type: LengthDelimited");
            }
            First::None => {}
        }
        // Invalid UTF-8 in a string field.
        if let Some((bytes, field)) = method.bad_utf8 {
            let status = refusal(&server, &method, bytes.to_vec()).await;
            assert_malformed(&status, path, field, "not UTF-8");
        }
        // Deep nesting: groups past prost's recursion limit (100).
        let status = refusal(&server, &method, nested_groups(150)).await;
        assert_malformed(&status, path, &whole, "recursion limit reached");
        // 100,000 empty elements of a repeated field: counted, not decoded, and refused.
        if let Some((other, key, field)) = method.repeated {
            let body = [other.to_vec(), [key, 0x00].repeat(100_000)].concat();
            let status = refusal(&server, &method, body).await;
            assert_invalid(&status, field, "BATCH_TOO_LARGE");
            assert!(
                status.message().contains("got 100000"),
                "{path}: {status:?}"
            );
        }
        // One byte over the service's limit.
        let status = refusal(&server, &method, vec![0; method.limit + 1]).await;
        assert_eq!(status.code(), Code::OutOfRange, "{path}: {status:?}");
        assert!(
            status
                .message()
                .contains(&format!("the limit is: {} bytes", method.limit)),
            "{path}: {status:?}"
        );
        cases += 1;
    }
    assert_eq!(cases, 18, "every method of the three services");

    // Nothing was written, and the server still serves reads and writes.
    assert_eq!(crate::harness::latest_note(&mut alpha).await, before);
    let status = alpha
        .log
        .get_status(pb::GetStatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    let next = next_index(&server).await;
    assert_eq!(
        next, status.size,
        "the first entry after the corpus is the next index"
    );
}

/// Valid protobuf that only looks odd is accepted: groups nested within the limit and
/// unknown fields are skipped, as protobuf requires.
#[tokio::test]
async fn unknown_fields_and_shallow_nesting_are_accepted() {
    let server = TestServer::start(&["alpha"]).await;
    let method = methods()
        .into_iter()
        .find(|m| m.path.ends_with("/GetStatus"))
        .unwrap();
    let client = server.client("alpha").await;
    let mut grpc = tonic::client::Grpc::new(client.channel());
    grpc.ready().await.unwrap();
    let body = [nested_groups(50), vec![0x78, 0x01, 0x82, 0x01, 0x01, b'x']].concat();
    let reply = grpc
        .unary(
            tonic::Request::new(bytes::Bytes::from(body)),
            http::uri::PathAndQuery::from_static(method.path),
            RawBytes,
        )
        .await
        .unwrap()
        .into_inner();
    let status = <pb::GetStatusResponse as prost::Message>::decode(reply).unwrap();
    assert!(status.size >= 1, "{status:?}");
}
