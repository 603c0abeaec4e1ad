//! Many callers at once: the sequencer's group commit hands out every index exactly once, and a
//! job refused in a group (by the re-check at sequencing) leaves the group's other jobs alone.

use std::collections::BTreeMap;
use std::sync::Arc;

use hashforum::pb;
use hashforum::statement::admin::{register_key, suspend};
use hashforum::statement::{hash_submission, Signer};
use hashforum::types::HashType;
use tokio::sync::Barrier;
use tonic::Code;

use crate::harness::{assert_refused, members, sha256_value, submit, submit_all, TestServer};

/// Looks every value up (SHA-256), and returns each one's (member, log index, time).
async fn where_logged(
    client: &mut hashforum::client::Client,
    values: &[String],
) -> Vec<Option<(String, u64, u64)>> {
    let mut out = Vec::new();
    for chunk in values.chunks(10_000) {
        let results = client
            .registry
            .lookup_hashes(pb::LookupHashesRequest {
                queries: chunk
                    .iter()
                    .map(|v| pb::HashQuery {
                        hash_type: pb::HashType::Sha256 as i32,
                        value: v.clone(),
                    })
                    .collect(),
                include_envelopes: false,
            })
            .await
            .unwrap()
            .into_inner()
            .results;
        out.extend(results.into_iter().map(|r| {
            r.record.map(|rec| {
                let s = &rec.submissions[0];
                (s.member_id.clone(), s.log_index, s.sequenced_at_unix_ms)
            })
        }));
    }
    out
}

/// Concurrent clients get every index from 1 to the last exactly once, in time order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submissions_get_dense_unique_indexes() {
    const MEMBERS: [&str; 4] = ["alpha", "beta", "gamma", "delta"];
    const CLIENTS_PER_MEMBER: u64 = 4;
    let server = TestServer::start(&MEMBERS).await;
    let start = Arc::new(Barrier::new(MEMBERS.len() * CLIENTS_PER_MEMBER as usize));
    let mut tasks = Vec::new();
    for (m, member) in MEMBERS.iter().enumerate() {
        for c in 0..CLIENTS_PER_MEMBER {
            let mut client = server.client(member).await;
            let signer = server.signer(member);
            let start = start.clone();
            let base = (m as u64 * CLIENTS_PER_MEMBER + c) * 1_000;
            let member = (*member).to_owned();
            tasks.push(tokio::spawn(async move {
                let envelope = |n: u64| {
                    (
                        sha256_value(n),
                        signer.submit(hash_submission(HashType::Sha256, &sha256_value(n))),
                    )
                };
                start.wait().await;
                let mut logged = Vec::new();
                for round in 0..10 {
                    // One entry alone, then a batch of five.
                    let n = base + round * 10;
                    let (value, one) = envelope(n);
                    let receipt = submit(&mut client, one).await.unwrap();
                    logged.push((value, member.clone(), receipt.log_index));
                    let (values, batch): (Vec<_>, Vec<_>) = (n + 1..n + 6).map(envelope).unzip();
                    let receipts = submit_all(&mut client, batch).await.unwrap();
                    for (value, r) in values.into_iter().zip(receipts) {
                        assert!(!r.duplicate);
                        logged.push((value, member.clone(), r.log_index));
                    }
                }
                logged
            }));
        }
    }
    let mut logged = Vec::new();
    for task in tasks {
        logged.extend(task.await.unwrap());
    }
    let total = logged.len() as u64;
    assert_eq!(total, 16 * 10 * 6);
    let mut indexes: Vec<u64> = logged.iter().map(|(_, _, i)| *i).collect();
    indexes.sort_unstable();
    assert_eq!(indexes, (1..=total).collect::<Vec<_>>());

    let mut client = server.client("alpha").await;
    let values: Vec<String> = logged.iter().map(|(v, _, _)| v.clone()).collect();
    let found = where_logged(&mut client, &values).await;
    let mut times = BTreeMap::new();
    for ((value, member, index), found) in logged.iter().zip(found) {
        let (who, at, time) = found.unwrap_or_else(|| panic!("{value} is missing"));
        assert_eq!((&who, at), (member, *index), "{value}");
        times.insert(at, time);
    }
    let times: Vec<u64> = times.into_values().collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "time goes backwards along the log"
    );
}

/// A job refused in a group (at its re-check) leaves the group's other jobs unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_job_leaves_the_other_jobs_of_its_group_unaffected() {
    const ADMIN_JOBS: usize = 8;
    const SUBMITTERS: [&str; 3] = ["beta", "gamma", "delta"];
    let server = TestServer::start(&["alpha", "beta", "gamma", "delta"]).await;
    let start = Arc::new(Barrier::new(ADMIN_JOBS + SUBMITTERS.len()));
    let admin = server.signer("admin");
    let mut admin_jobs = Vec::new();
    for _ in 0..ADMIN_JOBS {
        let mut client = server.client("admin").await;
        let key = hashforum::crypto::generate_key().verifying_key();
        let envelopes = vec![
            admin.admin(register_key("alpha", &key)),
            admin.admin(suspend("alpha", "race")),
        ];
        let start = start.clone();
        admin_jobs.push(tokio::spawn(async move {
            start.wait().await;
            (key, submit_all(&mut client, envelopes).await)
        }));
    }
    let mut hash_jobs = Vec::new();
    for (m, member) in SUBMITTERS.iter().enumerate() {
        let mut client = server.client(member).await;
        let signer: Signer = server.signer(member);
        let start = start.clone();
        hash_jobs.push(tokio::spawn(async move {
            start.wait().await;
            let mut indexes = Vec::new();
            for round in 0..10u64 {
                let batch = (0..4)
                    .map(|i| {
                        let n = 10_000 * m as u64 + 10 * round + i;
                        signer.submit(hash_submission(HashType::Sha256, &sha256_value(n)))
                    })
                    .collect();
                let receipts = submit_all(&mut client, batch).await.unwrap();
                indexes.extend(receipts.iter().map(|r| r.log_index));
            }
            indexes
        }));
    }

    let mut indexes = Vec::new();
    let mut admitted = Vec::new();
    for job in admin_jobs {
        let (key, result) = job.await.unwrap();
        match result {
            Ok(receipts) => {
                indexes.extend(receipts.iter().map(|r| r.log_index));
                admitted.push(key);
            }
            Err(status) => assert_refused(&status, Code::FailedPrecondition, "NOT_ACTIVE"),
        }
    }
    assert_eq!(admitted.len(), 1, "exactly one suspension gets in");
    for job in hash_jobs {
        indexes.extend(job.await.unwrap());
    }
    indexes.sort_unstable();
    let last = 2 + 3 * 10 * 4;
    assert_eq!(indexes, (1..=last).collect::<Vec<_>>());

    let directory = members(&mut server.client("beta").await).await;
    let alpha = directory.iter().find(|m| m.member_id == "alpha").unwrap();
    assert_eq!(alpha.status, pb::MemberStatus::Suspended as i32);
    let keys: Vec<&[u8]> = alpha.keys.iter().map(|k| k.public_key.as_slice()).collect();
    assert_eq!(keys.len(), 2, "the founding key and the admitted job's");
    assert!(keys.contains(&admitted[0].as_bytes().as_slice()));
    let next = submit(
        &mut server.client("beta").await,
        server
            .signer("beta")
            .submit(hash_submission(HashType::Sha256, &sha256_value(1 << 40))),
    )
    .await
    .unwrap();
    assert_eq!(next.log_index, last + 1, "refused jobs wrote nothing");
}
