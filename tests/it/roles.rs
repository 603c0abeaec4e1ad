//! The authorization matrix: every RPC, called by a member of every role in every status,
//! answers exactly the code and reason in the table below; and the roles `init --dev` gives.

use hashforum::client::Client;
use hashforum::identity::Identity;
use hashforum::log::checkpoint::SignedCheckpoint;
use hashforum::pb;
use hashforum::statement::admin::{
    add_member, declare_incident, register_key, remove, set_roles, suspend, withdraw,
};
use hashforum::statement::{hash_submission, Signer};
use hashforum::types::{ContentHash, HashType, Role};
use prost::Message;
use tonic::Code;

use crate::harness::{
    assert_refused, descriptor, details, sha256_value, submit, TestServer, DOMAIN,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rpc {
    /// `SubmitEntry` of a hash submission by the caller.
    SubmitHash,
    /// `SubmitEntries` of one hash submission by the caller.
    SubmitHashes,
    /// `SubmitEntry` of an admin action (set the roles of `target`) by the caller.
    AdminAction,
    /// `SubmitEntry` of an opinion of hash 0 by the caller.
    Opinion,
    /// `SubmitEntries` of a hash submission and its retraction by the caller.
    Retraction,
    /// `SubmitEntry` of a withdrawal of the hash `target` submitted for it, by the caller.
    Withdrawal,
    /// `SubmitEntry` of an incident declaration by the caller.
    DeclareIncident,
    LookupHash,
    LookupHashes,
    MatchHashes,
    ListMembers,
    GetMember,
    GetMemberHistory,
    ListIncidents,
    GetProvenance,
    GetCheckpoint,
    GetEntries,
    GetEntry,
    GetInclusionProof,
    GetConsistencyProof,
    WatchCheckpoints,
    /// `AddCosignature` of the latest checkpoint, cosigned with the caller's signing key.
    AddCosignature,
    GetStatus,
}

impl Rpc {
    /// The gRPC method it calls.
    fn method(self) -> &'static str {
        match self {
            Rpc::SubmitHash
            | Rpc::AdminAction
            | Rpc::Opinion
            | Rpc::Withdrawal
            | Rpc::DeclareIncident => "hashforum.v1.RegistryService/SubmitEntry",
            Rpc::SubmitHashes | Rpc::Retraction => "hashforum.v1.RegistryService/SubmitEntries",
            Rpc::LookupHash => "hashforum.v1.RegistryService/LookupHash",
            Rpc::LookupHashes => "hashforum.v1.RegistryService/LookupHashes",
            Rpc::MatchHashes => "hashforum.v1.RegistryService/MatchHashes",
            Rpc::ListMembers => "hashforum.v1.AdminService/ListMembers",
            Rpc::GetMember => "hashforum.v1.AdminService/GetMember",
            Rpc::GetMemberHistory => "hashforum.v1.AdminService/GetMemberHistory",
            Rpc::ListIncidents => "hashforum.v1.RegistryService/ListIncidents",
            Rpc::GetProvenance => "hashforum.v1.RegistryService/GetProvenance",
            Rpc::GetCheckpoint => "hashforum.v1.LogService/GetCheckpoint",
            Rpc::GetEntries => "hashforum.v1.LogService/GetEntries",
            Rpc::GetEntry => "hashforum.v1.LogService/GetEntry",
            Rpc::GetInclusionProof => "hashforum.v1.LogService/GetInclusionProof",
            Rpc::GetConsistencyProof => "hashforum.v1.LogService/GetConsistencyProof",
            Rpc::WatchCheckpoints => "hashforum.v1.LogService/WatchCheckpoints",
            Rpc::AddCosignature => "hashforum.v1.LogService/AddCosignature",
            Rpc::GetStatus => "hashforum.v1.LogService/GetStatus",
        }
    }
}

const ROLES: [Role; 5] = [
    Role::Admin,
    Role::Contributor,
    Role::Reader,
    Role::Observer,
    Role::Replica,
];

/// What a call answers: its code and `ErrorInfo` reason (empty for OK).
type Want = (Code, &'static str);

const OK: Want = (Code::Ok, "");
/// The caller lacks the RPC's role, or the author the statement's.
const NO_ROLE: Want = (Code::PermissionDenied, "MISSING_ROLE");
/// membership.md: a suspended member's every call is refused.
const SUSPENDED: Want = (Code::Unauthenticated, "MEMBER_NOT_ACTIVE");
/// membership.md: removal retires the member's certificates, which then authenticate nobody.
const RETIRED: Want = (Code::Unauthenticated, "UNKNOWN_CERTIFICATE");

/// One table: each RPC with the answer for each role.
type Table = [(Rpc, [Want; 5]); 23];

/// Active members, by role: admin, contributor, reader, observer, replica.
const ACTIVE: Table = [
    (Rpc::SubmitHash, [NO_ROLE, OK, NO_ROLE, NO_ROLE, NO_ROLE]),
    (Rpc::SubmitHashes, [NO_ROLE, OK, NO_ROLE, NO_ROLE, NO_ROLE]),
    (Rpc::AdminAction, [OK, NO_ROLE, NO_ROLE, NO_ROLE, NO_ROLE]),
    (Rpc::Opinion, [NO_ROLE, OK, OK, NO_ROLE, NO_ROLE]),
    (Rpc::Retraction, [NO_ROLE, OK, NO_ROLE, NO_ROLE, NO_ROLE]),
    (Rpc::Withdrawal, [OK, NO_ROLE, NO_ROLE, NO_ROLE, NO_ROLE]),
    (
        Rpc::DeclareIncident,
        [OK, NO_ROLE, NO_ROLE, NO_ROLE, NO_ROLE],
    ),
    (Rpc::LookupHash, [NO_ROLE, NO_ROLE, OK, OK, NO_ROLE]),
    (Rpc::LookupHashes, [NO_ROLE, NO_ROLE, OK, OK, NO_ROLE]),
    (Rpc::MatchHashes, [NO_ROLE, NO_ROLE, OK, OK, NO_ROLE]),
    (Rpc::ListMembers, [OK, OK, OK, OK, OK]),
    (Rpc::GetMember, [OK, OK, OK, OK, OK]),
    (Rpc::GetMemberHistory, [OK, OK, OK, OK, OK]),
    (Rpc::ListIncidents, [OK, OK, OK, OK, OK]),
    (Rpc::GetProvenance, [NO_ROLE, NO_ROLE, OK, OK, NO_ROLE]),
    // The log: readers and replicas; observers check receipts but do not copy the log.
    (Rpc::GetCheckpoint, [NO_ROLE, NO_ROLE, OK, OK, OK]),
    (Rpc::GetEntries, [NO_ROLE, NO_ROLE, OK, NO_ROLE, OK]),
    (Rpc::GetEntry, [NO_ROLE, NO_ROLE, OK, NO_ROLE, OK]),
    (Rpc::GetInclusionProof, [NO_ROLE, NO_ROLE, OK, OK, OK]),
    (Rpc::GetConsistencyProof, [NO_ROLE, NO_ROLE, OK, OK, OK]),
    (Rpc::WatchCheckpoints, [NO_ROLE, NO_ROLE, OK, OK, OK]),
    // Replicas cosign what they verified; every member may ask what a server is.
    (
        Rpc::AddCosignature,
        [NO_ROLE, NO_ROLE, NO_ROLE, NO_ROLE, OK],
    ),
    (Rpc::GetStatus, [OK, OK, OK, OK, OK]),
];

/// Suspended members, by role: refused before any handler logic.
const SUSPENDED_TABLE: Table = [
    (Rpc::SubmitHash, [SUSPENDED; 5]),
    (Rpc::SubmitHashes, [SUSPENDED; 5]),
    (Rpc::AdminAction, [SUSPENDED; 5]),
    (Rpc::Opinion, [SUSPENDED; 5]),
    (Rpc::Retraction, [SUSPENDED; 5]),
    (Rpc::Withdrawal, [SUSPENDED; 5]),
    (Rpc::DeclareIncident, [SUSPENDED; 5]),
    (Rpc::LookupHash, [SUSPENDED; 5]),
    (Rpc::LookupHashes, [SUSPENDED; 5]),
    (Rpc::MatchHashes, [SUSPENDED; 5]),
    (Rpc::ListMembers, [SUSPENDED; 5]),
    (Rpc::GetMember, [SUSPENDED; 5]),
    (Rpc::GetMemberHistory, [SUSPENDED; 5]),
    (Rpc::ListIncidents, [SUSPENDED; 5]),
    (Rpc::GetProvenance, [SUSPENDED; 5]),
    (Rpc::GetCheckpoint, [SUSPENDED; 5]),
    (Rpc::GetEntries, [SUSPENDED; 5]),
    (Rpc::GetEntry, [SUSPENDED; 5]),
    (Rpc::GetInclusionProof, [SUSPENDED; 5]),
    (Rpc::GetConsistencyProof, [SUSPENDED; 5]),
    (Rpc::WatchCheckpoints, [SUSPENDED; 5]),
    (Rpc::AddCosignature, [SUSPENDED; 5]),
    (Rpc::GetStatus, [SUSPENDED; 5]),
];

/// Removed members, by role: their certificates authenticate nobody.
const REMOVED_TABLE: Table = [
    (Rpc::SubmitHash, [RETIRED; 5]),
    (Rpc::SubmitHashes, [RETIRED; 5]),
    (Rpc::AdminAction, [RETIRED; 5]),
    (Rpc::Opinion, [RETIRED; 5]),
    (Rpc::Retraction, [RETIRED; 5]),
    (Rpc::Withdrawal, [RETIRED; 5]),
    (Rpc::DeclareIncident, [RETIRED; 5]),
    (Rpc::LookupHash, [RETIRED; 5]),
    (Rpc::LookupHashes, [RETIRED; 5]),
    (Rpc::MatchHashes, [RETIRED; 5]),
    (Rpc::ListMembers, [RETIRED; 5]),
    (Rpc::GetMember, [RETIRED; 5]),
    (Rpc::GetMemberHistory, [RETIRED; 5]),
    (Rpc::ListIncidents, [RETIRED; 5]),
    (Rpc::GetProvenance, [RETIRED; 5]),
    (Rpc::GetCheckpoint, [RETIRED; 5]),
    (Rpc::GetEntries, [RETIRED; 5]),
    (Rpc::GetEntry, [RETIRED; 5]),
    (Rpc::GetInclusionProof, [RETIRED; 5]),
    (Rpc::GetConsistencyProof, [RETIRED; 5]),
    (Rpc::WatchCheckpoints, [RETIRED; 5]),
    (Rpc::AddCosignature, [RETIRED; 5]),
    (Rpc::GetStatus, [RETIRED; 5]),
];

const STATUSES: [(&str, &Table); 3] = [
    ("active", &ACTIVE),
    ("suspended", &SUSPENDED_TABLE),
    ("removed", &REMOVED_TABLE),
];

/// Adds a member with one role and a signing key.
async fn make_member(server: &TestServer, admin: &mut Client, id: &str, role: Role) {
    let (identity, cert) = server.issue_identity(id);
    let signer = server.signer("admin");
    let envelopes = vec![
        signer.admin(add_member(id, id, &[role], vec![cert])),
        signer.admin(register_key(id, &identity.signing_key.verifying_key())),
    ];
    admin
        .registry
        .submit_entries(pb::SubmitEntriesRequest { envelopes })
        .await
        .unwrap();
}

/// The hash `target` submits for the one withdrawal the matrix expects to succeed.
const WITHDRAWN: u64 = 1 << 40;

fn content(n: u64) -> ContentHash {
    ContentHash::parse(HashType::Sha256, &sha256_value(n)).unwrap()
}

/// Calls `rpc` as `identity`; answers the code and the `ErrorInfo` reason, after checking
/// that a refusal is a hashforum error without a `BadRequest`.
async fn call(
    client: &mut Client,
    identity: &Identity,
    checkpoint: &SignedCheckpoint,
    rpc: Rpc,
    n: u64,
) -> (Code, String) {
    let signer = Signer::of(identity);
    let hash = || signer.submit(hash_submission(HashType::Sha256, &sha256_value(n)));
    let query = || pb::HashQuery {
        hash_type: HashType::Sha256.to_pb() as i32,
        value: sha256_value(0),
    };
    let result = match rpc {
        Rpc::SubmitHash => submit(client, hash()).await.map(drop),
        Rpc::SubmitHashes => client
            .registry
            .submit_entries(pb::SubmitEntriesRequest {
                envelopes: vec![hash()],
            })
            .await
            .map(drop),
        Rpc::AdminAction => {
            let body = set_roles("target", &[Role::Contributor, Role::Reader]);
            submit(client, signer.admin(body)).await.map(drop)
        }
        Rpc::Opinion => {
            let envelope = signer.opinion(&content(0), pb::OpinionKind::Agree, "");
            submit(client, envelope).await.map(drop)
        }
        Rpc::Retraction => client
            .registry
            .submit_entries(pb::SubmitEntriesRequest {
                envelopes: vec![hash(), signer.retract(&content(n), "mistake")],
            })
            .await
            .map(drop),
        Rpc::Withdrawal => {
            let body = withdraw(&content(WITHDRAWN), "appeal");
            submit(client, signer.admin(body)).await.map(drop)
        }
        Rpc::DeclareIncident => {
            let level = pb::IncidentLevel::Incident;
            let body = declare_incident(&format!("incident-{n}"), "an event", level);
            submit(client, signer.admin(body)).await.map(drop)
        }
        Rpc::GetProvenance => client
            .registry
            .get_provenance(pb::GetProvenanceRequest {
                query: Some(query()),
                tree_size: 0,
                from_index: 0,
            })
            .await
            .map(drop),
        Rpc::ListIncidents => client
            .registry
            .list_incidents(pb::ListIncidentsRequest {})
            .await
            .map(drop),
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
        Rpc::MatchHashes => client
            .registry
            .match_hashes(pb::MatchHashesRequest {
                hash_type: pb::HashType::Pdq as i32,
                queries: vec![pb::MatchQuery {
                    value: "f8".repeat(32),
                    variant: 0,
                }],
                max_distance: None,
                include_inactive: false,
                dihedral: false,
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
        Rpc::GetCheckpoint => client
            .log
            .get_checkpoint(pb::GetCheckpointRequest::default())
            .await
            .map(drop),
        // A stream answers its first message, or its refusal, before anything else.
        Rpc::GetEntries => match client
            .log
            .get_entries(pb::GetEntriesRequest { start: 0, end: 1 })
            .await
        {
            Ok(stream) => stream.into_inner().message().await.map(drop),
            Err(status) => Err(status),
        },
        Rpc::GetEntry => client
            .log
            .get_entry(pb::GetEntryRequest { index: 0 })
            .await
            .map(drop),
        Rpc::GetInclusionProof => client
            .log
            .get_inclusion_proof(pb::GetInclusionProofRequest {
                index: 0,
                tree_size: 0,
            })
            .await
            .map(drop),
        Rpc::GetConsistencyProof => client
            .log
            .get_consistency_proof(pb::GetConsistencyProofRequest {
                old_size: 1,
                new_size: 0,
            })
            .await
            .map(drop),
        Rpc::WatchCheckpoints => match client
            .log
            .watch_checkpoints(pb::WatchCheckpointsRequest {})
            .await
        {
            Ok(stream) => stream.into_inner().message().await.map(drop),
            Err(status) => Err(status),
        },
        Rpc::AddCosignature => {
            let cosigner = hashforum::log::cosignature::Cosigner::new(
                &identity.file.member,
                identity.signing_key.clone(),
            )
            .unwrap();
            client
                .log
                .add_cosignature(pb::AddCosignatureRequest {
                    cosignature: cosigner.cosign(checkpoint, hashforum::log::now_ms() / 1000),
                    checkpoint: checkpoint.note.clone(),
                })
                .await
                .map(drop)
        }
        Rpc::GetStatus => client
            .log
            .get_status(pb::GetStatusRequest {})
            .await
            .map(drop),
    };
    match result {
        Ok(()) => (Code::Ok, String::new()),
        Err(status) => {
            let d = details(&status);
            assert_eq!(d.domain.as_deref(), Some(DOMAIN), "{status:?}");
            assert_eq!(d.violations, None, "no BadRequest: {status:?}");
            (status.code(), d.reason.unwrap_or_default())
        }
    }
}

/// Every RPC, by a member of each role in each status, gets the table's code and reason.
#[tokio::test(flavor = "multi_thread")]
async fn every_rpc_for_every_role_and_status() {
    // `target` is what admin actions and member reads are about; hash 0 is what lookups find
    // and opinions are about; `WITHDRAWN` is what the admin withdraws.
    let server = TestServer::start(&["target"]).await;
    let mut admin = server.client("admin").await;
    for n in [0, WITHDRAWN] {
        submit(
            &mut server.client("target").await,
            server
                .signer("target")
                .submit(hash_submission(HashType::Sha256, &sha256_value(n))),
        )
        .await
        .unwrap();
    }

    // Connect every member while it is still active: suspension and removal must also apply
    // to connections opened before them.
    let mut members = Vec::new();
    for (status, _) in STATUSES {
        for role in ROLES {
            let id = format!("{}-{status}", role.name());
            make_member(&server, &mut admin, &id, role).await;
            let identity = server.identity(&id);
            let mut client = server.connect(&identity).await;
            client
                .admin
                .list_members(pb::ListMembersRequest {})
                .await
                .expect("connected while active");
            members.push((id, identity, client));
        }
    }
    let admin_signer = server.signer("admin");
    for (id, _, _) in &members {
        let body = if id.ends_with("-suspended") {
            suspend(id, "")
        } else if id.ends_with("-removed") {
            remove(id, "")
        } else {
            continue;
        };
        submit(&mut admin, admin_signer.admin(body)).await.unwrap();
    }

    // A checkpoint of the log, which replicas cosign (it stays one as the log grows).
    let note = crate::harness::latest_note(&mut admin).await;
    let checkpoint = crate::harness::forum_verifier(server.dir())
        .verify(&note)
        .unwrap();
    let mut n = 1;
    let mut wrong = Vec::new();
    for (status, table) in STATUSES {
        for (rpc, wants) in table {
            for (role, want) in ROLES.iter().zip(wants) {
                let id = format!("{}-{status}", role.name());
                let (_, identity, client) = members.iter_mut().find(|(m, _, _)| *m == id).unwrap();
                n += 1;
                let got = call(client, identity, &checkpoint, *rpc, n).await;
                if (got.0, got.1.as_str()) != *want {
                    wrong.push(format!("{rpc:?} by {id}: got {got:?}, want {want:?}"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The matrix has a row for every RPC the forum's services declare.
#[test]
fn the_matrix_covers_every_rpc() {
    let set = descriptor::FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET).unwrap();
    let declared = descriptor::methods(&set.file);
    let mut covered: Vec<String> = ACTIVE
        .iter()
        .map(|(rpc, _)| rpc.method().to_owned())
        .collect();
    covered.sort();
    covered.dedup();
    assert_eq!(covered, declared);
    for table in [&SUSPENDED_TABLE, &REMOVED_TABLE] {
        let rpcs: Vec<Rpc> = table.iter().map(|(rpc, _)| *rpc).collect();
        let active: Vec<Rpc> = ACTIVE.iter().map(|(rpc, _)| *rpc).collect();
        assert_eq!(rpcs, active);
    }
}

/// `init --dev` gives admin admin+reader and members contributor+reader, and they act on them.
#[tokio::test]
async fn init_dev_gives_the_documented_roles() {
    let server = TestServer::start(&["alpha", "beta"]).await;
    let mut admin = server.client("admin").await;
    let roles = |rs: &[Role]| rs.iter().map(|r| r.to_pb() as i32).collect::<Vec<_>>();
    let directory = crate::harness::members(&mut admin).await;
    let got: Vec<(&str, Vec<i32>)> = directory
        .iter()
        .map(|m| (m.member_id.as_str(), m.roles.clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("admin", roles(&[Role::Admin, Role::Reader])),
            ("alpha", roles(&[Role::Contributor, Role::Reader])),
            ("beta", roles(&[Role::Contributor, Role::Reader])),
        ]
    );

    let value = sha256_value(1);
    let admin_signer = server.signer("admin");
    let status = submit(
        &mut admin,
        admin_signer.submit(hash_submission(HashType::Sha256, &value)),
    )
    .await
    .unwrap_err();
    assert_refused(&status, Code::PermissionDenied, "MISSING_ROLE");
    let alpha_says = server
        .signer("alpha")
        .submit(hash_submission(HashType::Sha256, &value));
    submit(&mut admin, alpha_says).await.expect("a relay");
    crate::harness::lookup(&mut admin, HashType::Sha256, &value, false)
        .await
        .expect("the admin reads");

    let mut alpha = server.client("alpha").await;
    let beta_role = server
        .signer("alpha")
        .admin(set_roles("beta", &[Role::Reader]));
    let status = submit(&mut alpha, beta_role).await.unwrap_err();
    assert_refused(&status, Code::PermissionDenied, "MISSING_ROLE");
    crate::harness::lookup(&mut alpha, HashType::Sha256, &value, false)
        .await
        .expect("a member reads");
}
