//! The authorization matrix: every RPC, called by a member of every role in every status,
//! answers exactly the code in the table below.

use hashforum::client::Client;
use hashforum::identity::Identity;
use hashforum::pb;
use hashforum::pb::statement::Body;
use hashforum::types::{HashType, Role};
use tonic::Code;

use crate::harness::{admin_statement, sha256_value, signed, submission, submit, TestServer};

#[derive(Debug, Clone, Copy)]
enum Rpc {
    /// `SubmitEntry` of a hash submission by the caller.
    SubmitHash,
    /// `SubmitEntries` of one hash submission by the caller.
    SubmitHashes,
    /// `SubmitEntry` of an admin action (set the roles of `target`) by the caller.
    AdminAction,
    LookupHash,
    LookupHashes,
    ListMembers,
    GetMember,
    GetMemberHistory,
}

const ROLES: [Role; 5] = [
    Role::Admin,
    Role::Contributor,
    Role::Reader,
    Role::Observer,
    Role::Replica,
];

const OK: Code = Code::Ok;
const DENIED: Code = Code::PermissionDenied;
const UNAUTH: Code = Code::Unauthenticated;

/// One table: each RPC with the code for each role.
type Table = [(Rpc, [Code; 5]); 8];

/// Active members, by role: admin, contributor, reader, observer, replica.
const ACTIVE: Table = [
    (Rpc::SubmitHash, [DENIED, OK, DENIED, DENIED, DENIED]),
    (Rpc::SubmitHashes, [DENIED, OK, DENIED, DENIED, DENIED]),
    (Rpc::AdminAction, [OK, DENIED, DENIED, DENIED, DENIED]),
    (Rpc::LookupHash, [DENIED, DENIED, OK, OK, DENIED]),
    (Rpc::LookupHashes, [DENIED, DENIED, OK, OK, DENIED]),
    (Rpc::ListMembers, [OK, OK, OK, OK, OK]),
    (Rpc::GetMember, [OK, OK, OK, OK, OK]),
    (Rpc::GetMemberHistory, [OK, OK, OK, OK, OK]),
];

/// Suspended and removed members, by role: refused before any handler logic.
const NOT_ACTIVE: Table = [
    (Rpc::SubmitHash, [UNAUTH; 5]),
    (Rpc::SubmitHashes, [UNAUTH; 5]),
    (Rpc::AdminAction, [UNAUTH; 5]),
    (Rpc::LookupHash, [UNAUTH; 5]),
    (Rpc::LookupHashes, [UNAUTH; 5]),
    (Rpc::ListMembers, [UNAUTH; 5]),
    (Rpc::GetMember, [UNAUTH; 5]),
    (Rpc::GetMemberHistory, [UNAUTH; 5]),
];

const STATUSES: [(&str, &Table); 3] = [
    ("active", &ACTIVE),
    ("suspended", &NOT_ACTIVE),
    ("removed", &NOT_ACTIVE),
];

/// Adds a member with one role and a signing key.
async fn make_member(server: &TestServer, admin: &mut Client, id: &str, role: Role) {
    let (identity, cert) = server.issue_identity(id);
    let admin_id = server.identity("admin");
    let bodies = vec![
        Body::MemberAdded(pb::MemberAdded {
            member_id: id.into(),
            display_name: id.into(),
            roles: vec![role.to_pb() as i32],
            cert_sha256: vec![cert],
        }),
        Body::KeyRegistered(pb::KeyRegistered {
            member_id: id.into(),
            public_key: identity.signing_key.verifying_key().to_bytes().to_vec(),
        }),
    ];
    let envelopes = bodies
        .into_iter()
        .map(|body| signed(&admin_id, &admin_statement("admin", body)))
        .collect();
    admin
        .registry
        .submit_entries(pb::SubmitEntriesRequest { envelopes })
        .await
        .unwrap();
}

async fn call(
    client: &mut Client,
    identity: &Identity,
    rpc: Rpc,
    n: u64,
) -> Result<(), tonic::Status> {
    let me = identity.file.member.clone();
    let hash = || {
        signed(
            identity,
            &submission(&me, HashType::Sha256, &sha256_value(n)),
        )
    };
    let query = || pb::HashQuery {
        hash_type: HashType::Sha256.to_pb() as i32,
        value: sha256_value(0),
    };
    match rpc {
        Rpc::SubmitHash => submit(client, hash()).await.map(drop),
        Rpc::SubmitHashes => client
            .registry
            .submit_entries(pb::SubmitEntriesRequest {
                envelopes: vec![hash()],
            })
            .await
            .map(drop),
        Rpc::AdminAction => {
            let body = Body::RolesSet(pb::RolesSet {
                member_id: "target".into(),
                roles: vec![Role::Reader.to_pb() as i32],
            });
            submit(client, signed(identity, &admin_statement(&me, body)))
                .await
                .map(drop)
        }
        Rpc::LookupHash => client
            .registry
            .lookup_hash(pb::LookupHashRequest {
                query: Some(query()),
                include_envelopes: false,
            })
            .await
            .map(drop),
        Rpc::LookupHashes => client
            .registry
            .lookup_hashes(pb::LookupHashesRequest {
                queries: vec![query()],
                include_envelopes: false,
            })
            .await
            .map(drop),
        Rpc::ListMembers => client
            .admin
            .list_members(pb::ListMembersRequest {})
            .await
            .map(drop),
        Rpc::GetMember => client
            .admin
            .get_member(pb::GetMemberRequest {
                member_id: "target".into(),
            })
            .await
            .map(drop),
        Rpc::GetMemberHistory => client
            .admin
            .get_member_history(pb::GetMemberHistoryRequest {
                member_id: "target".into(),
            })
            .await
            .map(drop),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_rpc_for_every_role_and_status() {
    // `target` is what admin actions and member reads are about; hash 0 is what lookups find.
    let server = TestServer::start(&["target"]).await;
    let mut admin = server.client("admin").await;
    let target = server.identity("target");
    submit(
        &mut server.client("target").await,
        signed(
            &target,
            &submission("target", HashType::Sha256, &sha256_value(0)),
        ),
    )
    .await
    .unwrap();

    // Connect every member while it is still active: suspension and removal must also apply
    // to connections opened before them.
    let mut members = Vec::new();
    for (status, _) in STATUSES {
        for role in ROLES {
            let id = format!("{}-{status}", role.name());
            make_member(&server, &mut admin, &id, role).await;
            let identity = server.identity(&id);
            let client = Client::connect(&identity, Some(&server.addr))
                .await
                .unwrap();
            members.push((id, identity, client));
        }
    }
    for (id, _, _) in &members {
        let body = if id.ends_with("-suspended") {
            Body::MemberSuspended(pb::MemberSuspended {
                member_id: id.clone(),
                reason: String::new(),
            })
        } else if id.ends_with("-removed") {
            Body::MemberRemoved(pb::MemberRemoved {
                member_id: id.clone(),
                reason: String::new(),
            })
        } else {
            continue;
        };
        let admin_id = server.identity("admin");
        submit(
            &mut admin,
            signed(&admin_id, &admin_statement("admin", body)),
        )
        .await
        .unwrap();
    }

    let mut n = 1;
    let mut cells = 0;
    for (status, table) in STATUSES {
        for (rpc, codes) in table {
            for (role, want) in ROLES.iter().zip(codes) {
                let id = format!("{}-{status}", role.name());
                let (_, identity, client) = members.iter_mut().find(|(m, _, _)| *m == id).unwrap();
                n += 1;
                let got = call(client, identity, *rpc, n)
                    .await
                    .map_or_else(|s| s.code(), |()| Code::Ok);
                assert_eq!(got, *want, "{rpc:?} by {id}");
                cells += 1;
            }
        }
    }
    assert_eq!(cells, 3 * 8 * 5);
}
