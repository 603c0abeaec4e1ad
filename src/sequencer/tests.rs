//! The sequencer against a naive model (M1, M3): random jobs of admin actions, hash
//! submissions, opinions, retractions, withdrawals, incidents, relays and repeats, sent at once so that they are grouped, staged on top of
//! each other and committed in a pipeline, must get exactly the answers, and leave exactly the
//! state, that applying their entries one at a time gives, job by job, all or nothing.

use ed25519_dalek::SigningKey;
use proptest::prelude::*;

use super::*;
use crate::entry::ParsedEntry;
use crate::genesis::{self, Founder};
use crate::pb;
use crate::state::{decode_record, Pending};
use crate::statement::{admin, hash_submission, Signer};
use crate::types::{ContentHash, HashType, Role};

const ORIGIN: &str = "model.example/forum";
/// Members: the founders, then ids an admin may add.
const IDS: [&str; 5] = ["admin", "alpha", "beta", "gamma", "delta"];
const HASHES: usize = 3;
/// Incident ids the generator declares, closes and names.
const INCIDENTS: [&str; 2] = ["halle", "buffalo"];

fn key(seed: usize) -> SigningKey {
    SigningKey::from_bytes(&[u8::try_from(seed + 1).unwrap_or(1); 32])
}

/// Member `m`'s keys: seeds `m * 3 .. m * 3 + 3`. Founders are registered with the first.
fn member_key(m: usize, k: usize) -> SigningKey {
    key(m * 3 + k)
}

fn cert(c: usize) -> Vec<u8> {
    vec![u8::try_from(c + 1).unwrap_or(1); 16]
}

fn fingerprint(c: usize) -> Vec<u8> {
    crate::crypto::cert_fingerprint(&cert(c))
        .as_bytes()
        .to_vec()
}

fn hash_value(h: usize) -> String {
    format!("{:064x}", h + 1)
}

/// One entry of a job, as the test describes it.
#[derive(Debug, Clone)]
enum Op {
    /// `author` (signing with its key `k`) submits hash `h` with tag variant `t`, naming
    /// incident `incident - 1` if not 0.
    Submit {
        author: usize,
        k: usize,
        h: usize,
        t: u8,
        incident: usize,
    },
    /// `author` says `kind` (agree, disagree, false positive) of hash `h`.
    Opinion {
        author: usize,
        k: usize,
        h: usize,
        kind: u8,
    },
    /// `author` retracts its submission of hash `h`.
    Retract { author: usize, k: usize, h: usize },
    /// `author` withdraws hash `h`.
    Withdraw { author: usize, k: usize, h: usize },
    /// `author` declares (or, with `close`, closes) incident `i`.
    Incident {
        author: usize,
        k: usize,
        i: usize,
        close: bool,
    },
    /// `author` makes an admin action `action` about member `target`.
    Admin {
        author: usize,
        k: usize,
        target: usize,
        action: u8,
        arg: usize,
    },
    /// The envelope of an earlier op of this job, again.
    Repeat(usize),
}

#[derive(Debug, Clone)]
struct JobSpec {
    caller: usize,
    ops: Vec<Op>,
}

/// Mostly a member's first key (registered), sometimes its second (registered only by an op).
fn key_index() -> impl Strategy<Value = usize> {
    prop_oneof![4 => Just(0usize), 1 => Just(1usize)]
}

/// Authors are mostly the members who may say it, so that most entries are accepted and the
/// interesting cases (repeats, relays, indexes) come up often.
fn op() -> impl Strategy<Value = Op> {
    let submitter = prop_oneof![4 => 1..3usize, 1 => 0..IDS.len()];
    let admin = prop_oneof![4 => Just(0usize), 1 => 0..IDS.len()];
    let member = 0..IDS.len();
    let incident = prop_oneof![3 => Just(0usize), 1 => 1..=INCIDENTS.len()];
    prop_oneof![
        3 => (submitter.clone(), key_index(), 0..HASHES, 0..2u8, incident)
            .prop_map(|(author, k, h, t, incident)| Op::Submit { author, k, h, t, incident }),
        3 => (admin.clone(), key_index(), 0..IDS.len(), 0..9u8, 0..4usize)
            .prop_map(|(author, k, target, action, arg)| Op::Admin { author, k, target, action, arg }),
        2 => (member, key_index(), 0..HASHES, 0..3u8)
            .prop_map(|(author, k, h, kind)| Op::Opinion { author, k, h, kind }),
        1 => (submitter, key_index(), 0..HASHES)
            .prop_map(|(author, k, h)| Op::Retract { author, k, h }),
        1 => (admin.clone(), key_index(), 0..HASHES)
            .prop_map(|(author, k, h)| Op::Withdraw { author, k, h }),
        1 => (admin, key_index(), 0..INCIDENTS.len(), any::<bool>())
            .prop_map(|(author, k, i, close)| Op::Incident { author, k, i, close }),
        1 => (0..6usize).prop_map(Op::Repeat),
    ]
}

fn job() -> impl Strategy<Value = JobSpec> {
    let caller = prop_oneof![2 => Just(0usize), 1 => 1..3usize];
    (caller, prop::collection::vec(op(), 1..6)).prop_map(|(caller, ops)| JobSpec { caller, ops })
}

fn roles_of(arg: usize) -> Vec<Role> {
    match arg % 4 {
        0 => vec![Role::Admin],
        1 => vec![Role::Reader],
        2 => vec![Role::Contributor, Role::Reader],
        _ => vec![Role::Admin, Role::Contributor],
    }
}

fn admin_body(target: usize, action: u8, arg: usize) -> pb::statement::Body {
    let id = IDS[target];
    match action {
        0 => admin::set_roles(id, &roles_of(arg)),
        1 => admin::suspend(id, ""),
        2 => admin::reinstate(id, ""),
        3 => admin::remove(id, ""),
        4 => admin::register_key(id, &member_key(target, 1 + arg % 2).verifying_key()),
        5 => admin::revoke_key(
            id,
            &crate::crypto::key_id(&member_key(target, arg % 3).verifying_key()),
            "",
        ),
        6 => admin::add_member(id, id, &roles_of(arg), vec![fingerprint(target + arg)]),
        7 => admin::bind_cert(id, &fingerprint(arg + 2), ""),
        _ => admin::unbind_cert(id, &fingerprint(arg), ""),
    }
}

/// The envelopes of a job: every op signed as described, admin statements with distinct times.
fn envelopes(spec: &JobSpec, clock: &mut u64) -> Vec<pb::Envelope> {
    let mut out: Vec<pb::Envelope> = Vec::new();
    for op in &spec.ops {
        let signer =
            |author: usize, k: usize| Signer::new(ORIGIN, IDS[author], member_key(author, k));
        let mut admin_statement = |author: usize, k: usize, body| {
            *clock += 1;
            let signer = signer(author, k);
            signer.sign(&signer.statement(*clock, body))
        };
        let envelope = match *op {
            Op::Submit {
                author,
                k,
                h,
                t,
                incident,
            } => {
                let mut s = hash_submission(HashType::Sha256, &hash_value(h));
                s.tags = vec![format!("t{t}")];
                if let Some(id) = incident.checked_sub(1) {
                    s.incident_id = INCIDENTS[id].into();
                }
                signer(author, k).submit(s)
            }
            Op::Opinion { author, k, h, kind } => {
                let kind = match kind {
                    0 => pb::OpinionKind::Agree,
                    1 => pb::OpinionKind::Disagree,
                    _ => pb::OpinionKind::FalsePositive,
                };
                signer(author, k).opinion(&hash(h), kind, "")
            }
            Op::Retract { author, k, h } => signer(author, k).retract(&hash(h), "mistake"),
            Op::Withdraw { author, k, h } => {
                admin_statement(author, k, admin::withdraw(&hash(h), "appeal"))
            }
            Op::Incident {
                author,
                k,
                i,
                close,
            } => {
                let body = if close {
                    admin::close_incident(INCIDENTS[i], "")
                } else {
                    let level = pb::IncidentLevel::ContentIncident;
                    admin::declare_incident(INCIDENTS[i], INCIDENTS[i], level)
                };
                admin_statement(author, k, body)
            }
            Op::Admin {
                author,
                k,
                target,
                action,
                arg,
            } => admin_statement(author, k, admin_body(target, action, arg)),
            Op::Repeat(i) => match out.get(i % out.len().max(1)) {
                Some(earlier) => earlier.clone(),
                None => continue,
            },
        };
        out.push(envelope);
    }
    out
}

fn hash(h: usize) -> ContentHash {
    ContentHash::parse(HashType::Sha256, &hash_value(h)).expect("hash")
}

fn parse(envelopes: &[pb::Envelope]) -> Vec<ParsedEntry> {
    envelopes
        .iter()
        .map(|e| ParsedEntry::parse(e.clone(), ORIGIN).expect("well-formed"))
        .collect()
}

fn open_forum(dir: &std::path::Path) -> Store {
    let store = Store::open(dir).expect("open");
    let founders: Vec<Founder> = [
        (0, vec![Role::Admin, Role::Reader]),
        (1, vec![Role::Contributor, Role::Reader]),
        (2, vec![Role::Contributor]),
    ]
    .into_iter()
    .map(|(m, roles)| Founder {
        member_id: IDS[m].into(),
        display_name: IDS[m].into(),
        roles,
        cert_der: cert(m),
        signing_key: member_key(m, 0).verifying_key(),
    })
    .collect();
    let log_key = key(200);
    let leaf = genesis::create(&log_key, ORIGIN, &founders, 1);
    genesis::bootstrap(&store, &leaf, &log_key.verifying_key(), ORIGIN).expect("genesis");
    store
}

/// An answer with what may differ between two runs (times, leaf hashes) left out.
type Answer = Result<Vec<(u64, bool)>, (Option<usize>, Option<&'static str>)>;

fn answer(outcome: Result<Vec<Appended>, Refusal>) -> Answer {
    outcome
        .map(|receipts| receipts.iter().map(|a| (a.index, a.duplicate)).collect())
        .map_err(|e| (e.position, e.error.reason()))
}

/// The sequencer's answer, after checking that its checkpoint verifies with the log key and
/// that every entry's inclusion proof (from the group's hashes, or the store for
/// resubmissions) leads to the checkpoint's root.
fn committed(store: &Store, outcome: Result<Committed, Refusal>) -> Answer {
    if let Ok(committed) = &outcome {
        let checkpoint = signer()
            .verifier()
            .verify(&committed.checkpoint.note)
            .expect("the checkpoint verifies");
        assert_eq!(
            store.checkpoint(checkpoint.head.size).expect("read"),
            Some(committed.checkpoint.note.clone()),
            "a receipt's checkpoint is kept before the receipt is sent"
        );
        let proofs = committed
            .inclusion_proofs(committed.appended.iter().map(|a| a.index), store)
            .expect("proofs");
        for (appended, proof) in committed.appended.iter().zip(proofs) {
            tree::verify_inclusion(
                &proof,
                appended.index,
                checkpoint.head.size,
                checkpoint.head.root,
                appended.leaf_hash,
            )
            .expect("the receipt's proof verifies");
        }
    }
    answer(outcome.map(|c| c.appended))
}

/// The forum's log signer (its key signed the genesis entry of [`open_forum`]).
fn signer() -> LogSigner {
    LogSigner::new(ORIGIN, key(200)).expect("origin")
}

/// The log's tree is that of its entries, and its latest kept checkpoint is signed over it.
fn check_tree(store: &Store) {
    let size = store.size().expect("size");
    let leaves: Vec<tree::Hash> = store
        .entries(&(0..size).collect::<Vec<_>>())
        .expect("entries")
        .into_iter()
        .map(|leaf| crate::log::leaf_hash(&leaf.expect("leaf")).into())
        .collect();
    let mut frontier = Frontier::default();
    for leaf in &leaves {
        frontier.append(crate::types::LeafHash(leaf.0));
    }
    assert_eq!(tree::root(size, store).expect("root"), frontier.root());
    let (kept, note) = store.latest_checkpoint().expect("read").expect("kept");
    let checkpoint = signer().verifier().verify(&note).expect("verifies");
    assert_eq!((kept, checkpoint.head.size), (size, size));
    assert_eq!(checkpoint.head.root, frontier.root());
}

/// The model: each job applied entry by entry with `Pending::apply`, committed only when every
/// entry was accepted.
fn model(store: &Store, jobs: &[(usize, Vec<ParsedEntry>)]) -> Vec<Answer> {
    let mut answers = Vec::new();
    for (caller, entries) in jobs {
        let dir = Directory::load(store).expect("directory");
        let size = store.size().expect("size");
        let frontier = Frontier::load(size, store).expect("frontier");
        let mut pending = Pending::new(store, None, dir, frontier, 5);
        let mut receipts = Vec::new();
        let mut refused = None;
        for (i, entry) in entries.iter().enumerate() {
            match pending.apply(entry.clone(), IDS[*caller]).expect("store") {
                Ok(appended) => receipts.push(appended),
                Err(error) => {
                    refused = Some(Refusal {
                        position: Some(i),
                        error,
                    });
                    break;
                }
            }
        }
        answers.push(answer(match refused {
            Some(refusal) => Err(refusal),
            None => {
                store.commit(pending.finish().batch).expect("commit");
                Ok(receipts)
            }
        }));
    }
    answers
}

/// Everything the views hold: the log size, the members, the incidents, each hash's record
/// and each entry's envelope and relayer.
type Views = (
    u64,
    Vec<pb::Member>,
    Vec<pb::Incident>,
    Vec<Option<crate::state::StoredRecord>>,
    Vec<(pb::Envelope, String)>,
);

/// A record with its sequencing times left out.
fn timeless(mut r: crate::state::StoredRecord) -> crate::state::StoredRecord {
    for s in &mut r.submissions {
        s.sequenced_at_unix_ms = 0;
        if let Some(retraction) = &mut s.retraction {
            retraction.sequenced_at_unix_ms = 0;
        }
    }
    for o in &mut r.opinions {
        o.sequenced_at_unix_ms = 0;
    }
    if let Some(w) = &mut r.withdrawal {
        w.sequenced_at_unix_ms = 0;
    }
    r
}

/// Everything the views hold, with sequencing times left out.
fn state(store: &Store) -> Views {
    let dir = Directory::load(store).expect("directory");
    let members = dir.members().cloned().collect();
    let mut incidents = dir.incidents().list();
    for i in &mut incidents {
        i.declared_at_unix_ms = 0;
        if let Some(c) = &mut i.closure {
            c.sequenced_at_unix_ms = 0;
        }
    }
    let hashes: Vec<ContentHash> = (0..HASHES).map(hash).collect();
    let records = store
        .records(&hashes.iter().collect::<Vec<_>>())
        .expect("records")
        .into_iter()
        .map(|r| r.map(|r| timeless(decode_record(&r).expect("record"))))
        .collect();
    let size = store.size().expect("size");
    let leaves = store
        .entries(&(1..size).collect::<Vec<_>>())
        .expect("entries")
        .into_iter()
        .map(|leaf| {
            let stored = crate::log::StoredEntry::decode(&leaf.expect("leaf")).expect("decodes");
            (stored.envelope, stored.relayed_by)
        })
        .collect();
    (size, members, incidents, records, leaves)
}

fn run(specs: &[JobSpec]) -> Result<(), TestCaseError> {
    let mut clock = 1_000;
    let jobs: Vec<(usize, Vec<ParsedEntry>)> = specs
        .iter()
        .map(|spec| (spec.caller, parse(&envelopes(spec, &mut clock))))
        .filter(|(_, entries)| !entries.is_empty())
        .collect();
    let (a, b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (real, naive) = (open_forum(a.path()), open_forum(b.path()));
    let directory = Arc::new(ArcSwap::from_pointee(Directory::load(&real).expect("dir")));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let answers: Vec<Answer> = runtime.block_on(async {
        let sequencer = Sequencer::start(
            real.clone(),
            directory,
            crate::pdq::index::PdqIndex::default(),
            signer(),
        )
        .expect("start");
        // `join_all` polls in order, so the jobs are queued in order, then grouped as the
        // sequencer drains them.
        let calls = jobs.iter().map(|(caller, entries)| {
            let caller = crate::types::MemberId::parse(IDS[*caller]).expect("id");
            let sequencer = &sequencer;
            let real = &real;
            async move { committed(real, sequencer.submit(&caller, entries.clone()).await) }
        });
        let answers = futures::future::join_all(calls).await;
        sequencer.close().await;
        answers
    });
    prop_assert_eq!(&answers, &model(&naive, &jobs));
    prop_assert_eq!(state(&real), state(&naive));
    check_tree(&real);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn the_sequencer_answers_as_entries_applied_one_at_a_time(specs in prop::collection::vec(job(), 1..12)) {
        run(&specs)?;
    }
}

/// The batch from the review (M1): promote alpha, demote it, repeat the promotion (a
/// resubmission inside the job), then demote the only other admin. Applied one at a time, the
/// repeat is a no-op and the last action leaves no admin: the job is refused with `LAST_ADMIN`
/// at position 3, and nothing else in the group is affected.
#[test]
fn the_review_batch_is_refused_at_its_last_entry_alone() {
    let admin_signer = Signer::new(ORIGIN, "admin", member_key(0, 0));
    let promote = admin_signer.admin(admin::set_roles("alpha", &[Role::Admin]));
    let demote = admin_signer.admin(admin::set_roles("alpha", &[Role::Reader]));
    let demote_admin = admin_signer.admin(admin::set_roles("admin", &[Role::Reader]));
    let job = parse(&[promote.clone(), demote, promote, demote_admin]);
    let other = parse(&[Signer::new(ORIGIN, "alpha", member_key(1, 0))
        .submit(hash_submission(HashType::Sha256, &hash_value(0)))]);
    let dir = tempfile::tempdir().expect("dir");
    let store = open_forum(dir.path());
    let directory = Arc::new(ArcSwap::from_pointee(Directory::load(&store).expect("dir")));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let (refused, accepted) = runtime.block_on(async {
        let sequencer = Sequencer::start(
            store.clone(),
            directory,
            crate::pdq::index::PdqIndex::default(),
            signer(),
        )
        .expect("start");
        let admin_id = crate::types::MemberId::parse("admin").expect("id");
        let alpha_id = crate::types::MemberId::parse("alpha").expect("id");
        let out = futures::future::join(
            sequencer.submit(&admin_id, job),
            sequencer.submit(&alpha_id, other),
        )
        .await;
        sequencer.close().await;
        out
    });
    let refused = refused.expect_err("refused");
    assert_eq!(refused.position, Some(3));
    assert_eq!(refused.error.reason(), Some("LAST_ADMIN"));
    assert_eq!(committed(&store, accepted), Ok(vec![(1, false)]));
    assert_eq!(store.size().expect("size"), 2);
}

/// A resubmission of an entry already in the log takes no index: an admin action after it in
/// the same job gets the index it lands at (here, the key's `valid_from_log_index`).
#[test]
fn a_resubmission_in_a_job_takes_no_index() {
    let dir = tempfile::tempdir().expect("dir");
    let store = open_forum(dir.path());
    let alpha = Signer::new(ORIGIN, "alpha", member_key(1, 0));
    let logged = alpha.submit(hash_submission(HashType::Sha256, &hash_value(0)));
    let admin_signer = Signer::new(ORIGIN, "admin", member_key(0, 0));
    let key = admin_signer.admin(admin::register_key(
        "alpha",
        &member_key(1, 1).verifying_key(),
    ));
    let directory = Arc::new(ArcSwap::from_pointee(Directory::load(&store).expect("dir")));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let receipts = runtime.block_on(async {
        let sequencer = Sequencer::start(
            store.clone(),
            directory,
            crate::pdq::index::PdqIndex::default(),
            signer(),
        )
        .expect("start");
        let alpha_id = crate::types::MemberId::parse("alpha").expect("id");
        let admin_id = crate::types::MemberId::parse("admin").expect("id");
        sequencer
            .submit(&alpha_id, parse(std::slice::from_ref(&logged)))
            .await
            .expect("first");
        let out = sequencer.submit(&admin_id, parse(&[logged, key])).await;
        sequencer.close().await;
        out
    });
    assert_eq!(committed(&store, receipts), Ok(vec![(1, true), (2, false)]));
    check_tree(&store);
    let alpha = Directory::load(&store)
        .expect("dir")
        .member("alpha")
        .cloned()
        .expect("alpha");
    assert_eq!(alpha.keys[1].valid_from_log_index, 2);
}

/// L5: the log's time never goes backwards, also across a restart after the clock stepped
/// back: the sequencer starts from the last entry's time.
#[test]
fn log_time_never_goes_backwards_across_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let store = open_forum(dir.path());
    let future = crate::log::now_ms() + 86_400_000;
    let alpha = Signer::new(ORIGIN, "alpha", member_key(1, 0));
    let first = parse(&[alpha.submit(hash_submission(HashType::Sha256, &hash_value(0)))]);
    let mut pending = Pending::new(
        &store,
        None,
        Directory::load(&store).expect("dir"),
        Frontier::load(1, &store).expect("frontier"),
        future,
    );
    pending
        .append(first[0].clone(), crate::state::Effect::Submission, "alpha")
        .expect("append");
    store.commit(pending.finish().batch).expect("commit");

    let directory = Arc::new(ArcSwap::from_pointee(Directory::load(&store).expect("dir")));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let second = parse(&[alpha.submit(hash_submission(HashType::Sha256, &hash_value(1)))]);
    runtime.block_on(async {
        let sequencer = Sequencer::start(
            store.clone(),
            directory,
            crate::pdq::index::PdqIndex::default(),
            signer(),
        )
        .expect("start");
        let alpha_id = crate::types::MemberId::parse("alpha").expect("id");
        sequencer.submit(&alpha_id, second).await.expect("accepted");
        sequencer.close().await;
    });
    let leaf = store.entry(2).expect("read").expect("stored");
    let time = crate::log::StoredEntry::decode(&leaf)
        .expect("decodes")
        .sequenced_at_unix_ms;
    assert!(time >= future, "{time} < {future}");
}

/// A job is refused at its first refused entry, whether the record or the membership refuses
/// it: records are checked entry by entry with the membership, not after the whole job (the
/// property test's first finding).
#[test]
fn a_job_is_refused_at_its_first_refused_entry() {
    let dir = tempfile::tempdir().expect("dir");
    let store = open_forum(dir.path());
    let retract = Signer::new(ORIGIN, "alpha", member_key(1, 0)).retract(&hash(0), "never sent");
    let admin_signer = Signer::new(ORIGIN, "admin", member_key(0, 0));
    let demote = admin_signer.admin(admin::set_roles("admin", &[Role::Reader]));
    let job = parse(&[retract, demote]);
    let pending = Pending::new(
        &store,
        None,
        Directory::load(&store).expect("dir"),
        Frontier::load(1, &store).expect("frontier"),
        5,
    );
    let refusal = pending
        .check_job("admin", &job)
        .expect("store")
        .expect_err("refused");
    assert_eq!(refusal.position, Some(0));
    assert_eq!(refusal.error.reason(), Some("HASH_NOT_FOUND"));
    assert_eq!(
        refusal.error.to_string(),
        "payload.hash_retraction: the hash is not in the registry"
    );
}

mod disk_full;
