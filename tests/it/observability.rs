//! Metrics, call logs and quotas, on the real binary (issue 11, items 1 and 2): `/metrics`
//! counts each call by method, code and member and reads the log's state, parses with the
//! stock Python Prometheus client, the JSON call log names member, method, code and latency and
//! nothing secret, and a member over its quota gets `RESOURCE_EXHAUSTED` with a `RetryInfo`
//! while the others go on.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use hashforum::client::Client;
use hashforum::identity::Identity;
use hashforum::pb;
use hashforum::types::HashType;
use tonic::Code;

use crate::harness::{
    assert_refused, dev_forum, lookup, pyenv_python, sha256_value, signed, submission, submit,
    ServeProcess, CHILD_TIMEOUT,
};

/// The metrics address the server logged at start.
fn metrics_addr(server: &ServeProcess) -> String {
    assert!(
        server.wait_for_line("metrics on http://", CHILD_TIMEOUT),
        "no metrics line: {}",
        server.stderr()
    );
    let log = server.stderr();
    let at = log.find("metrics on http://").unwrap() + "metrics on http://".len();
    let rest = &log[at..];
    rest[..rest.find("/metrics").unwrap()].to_owned()
}

/// `GET /metrics` over plain HTTP/1.1: the body.
fn scrape(addr: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    body.to_owned()
}

/// The value of the sample `name{labels}` (labels as exposed, in order), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

fn identity(forum: &Path, name: &str) -> Identity {
    Identity::load(&forum.join("identities").join(name)).unwrap()
}

async fn client(server: &ServeProcess, identity: &Identity) -> Client {
    Client::connect(identity, Some(&server.addr)).await.unwrap()
}

/// Each call is counted under its method, code and member; the state gauges follow the log;
/// the text parses with the Python Prometheus client; the JSON call log has one line a call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_call_logs_show_each_call_and_the_logs_state() {
    let forum = dev_forum(&["alpha", "beta"]);
    let config = forum.path().join("server/hashforum.toml");
    let mut server = ServeProcess::start_with(&config, &[("HASHFORUM_LOG_FORMAT", "json")])
        .unwrap_or_else(|(status, err)| panic!("serve exited with {status}: {err}"));
    let addr = metrics_addr(&server);
    let before = scrape(&addr);
    assert_eq!(sample(&before, "hashforum_log_size"), Some(1.0), "{before}");

    let alpha = identity(forum.path(), "alpha");
    let mut alpha_client = client(&server, &alpha).await;
    let value = sha256_value(7);
    submit(
        &mut alpha_client,
        signed(&alpha, &submission("alpha", HashType::Sha256, &value)),
    )
    .await
    .unwrap();
    lookup(&mut alpha_client, HashType::Sha256, &value, false)
        .await
        .unwrap();
    let missing = lookup(&mut alpha_client, HashType::Sha256, &sha256_value(8), false)
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let text = scrape(&addr);
    let calls = |rpc: &str, code: &str, member: &str| {
        sample(
            &text,
            &format!("hashforum_calls_total{{rpc=\"{rpc}\",code=\"{code}\",member=\"{member}\"}}"),
        )
    };
    assert_eq!(
        calls("RegistryService/SubmitEntry", "OK", "alpha"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        calls("RegistryService/LookupHash", "OK", "alpha"),
        Some(1.0)
    );
    assert_eq!(
        calls("RegistryService/LookupHash", "NOT_FOUND", "alpha"),
        Some(1.0)
    );
    assert_eq!(calls("RegistryService/SubmitEntry", "OK", "beta"), None);
    assert_eq!(
        sample(
            &text,
            "hashforum_call_seconds_count{rpc=\"RegistryService/SubmitEntry\",code=\"OK\",member=\"alpha\"}"
        ),
        Some(1.0)
    );
    assert_eq!(sample(&text, "hashforum_log_size"), Some(2.0));
    assert_eq!(sample(&text, "hashforum_entries_appended_total"), Some(1.0));
    assert_eq!(sample(&text, "hashforum_group_entries_count"), Some(1.0));
    assert!(sample(&text, "hashforum_commit_seconds_count").unwrap() >= 1.0);
    assert_eq!(sample(&text, "hashforum_queue_jobs"), Some(0.0));
    assert_eq!(sample(&text, "hashforum_members"), Some(3.0));
    assert_eq!(sample(&text, "hashforum_halted"), Some(0.0));
    assert!(sample(&text, "hashforum_checkpoint_age_seconds").is_some());
    assert!(
        sample(
            &text,
            "hashforum_rocksdb{property=\"estimate-num-keys\",cf=\"entries\"}"
        )
        .is_some(),
        "{text}"
    );
    assert!(sample(
        &text,
        "hashforum_rocksdb{property=\"block-cache-usage\",cf=\"\"}"
    )
    .is_some());

    // The stock parser reads all of it.
    let script = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
families = {f.name: f for f in text_string_to_metric_families(sys.stdin.read())}
calls = families["hashforum_calls"]
print(len(families), sum(1 for s in calls.samples if s.name == "hashforum_calls_total"))
"#;
    let mut python = std::process::Command::new(pyenv_python());
    python.args(["-c", script]);
    let parsed = crate::harness::run_with_timeout(python, text.as_bytes(), CHILD_TIMEOUT);
    assert!(parsed.status.success(), "{parsed:?}");
    let out = String::from_utf8(parsed.stdout).unwrap();
    let counts: Vec<usize> = out.split_whitespace().map(|n| n.parse().unwrap()).collect();
    assert!(counts[0] >= 15, "{out}");
    assert_eq!(counts[1], text.matches("hashforum_calls_total{").count());

    // The JSON call log: one object per call, with member, method, code and latency; none of
    // the request's content, and no key material.
    server.signal("TERM");
    let status = tokio::task::block_in_place(|| server.wait(CHILD_TIMEOUT));
    assert!(status.success(), "{status}");
    let log = server.stderr();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let calls: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["target"] == "hashforum::call")
        .map(|l| &l["fields"])
        .collect();
    let submit_line = calls
        .iter()
        .find(|f| f["rpc"] == "RegistryService/SubmitEntry")
        .unwrap_or_else(|| panic!("no SubmitEntry call line in {log}"));
    assert_eq!(submit_line["member"], "alpha");
    assert_eq!(submit_line["code"], "OK");
    assert!(submit_line["latency_ms"].as_f64().unwrap() > 0.0);
    assert!(calls
        .iter()
        .any(|f| f["rpc"] == "RegistryService/LookupHash" && f["code"] == "NOT_FOUND"));
    assert!(!log.contains(&value), "a looked-up hash was logged");
    assert!(!log.contains("PRIVATE KEY"));
    let signing_key = std::fs::read_to_string(forum.path().join("server/log.key")).unwrap();
    for line in signing_key.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!log.contains(line), "log key material in the log");
    }
}

/// Quotas from the config: alpha's entries, lookups and calls are limited, beta's not. Over a
/// quota alpha gets `RESOURCE_EXHAUSTED` `QUOTA_EXCEEDED` with a `RetryInfo`, nothing is
/// written, and beta is served meanwhile; after the delay alpha is served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_over_its_quota_waits_and_the_others_do_not() {
    let forum = dev_forum(&["alpha", "beta"]);
    let config = forum.path().join("server/hashforum.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "\n[quotas.members.alpha]\nentries-per-second = 2\nlookups-per-second = 3\n\
         concurrent-calls = 1\n",
    );
    std::fs::write(&config, text).unwrap();
    let server = ServeProcess::start(&config)
        .unwrap_or_else(|(status, err)| panic!("serve exited with {status}: {err}"));
    let alpha = identity(forum.path(), "alpha");
    let beta = identity(forum.path(), "beta");
    let mut alpha_client = client(&server, &alpha).await;
    let mut beta_client = client(&server, &beta).await;

    // A batch of 5 is admitted on a full bucket of 2, leaving alpha 3 in debt: 1.5 s.
    let batch: Vec<pb::Envelope> = (0..5)
        .map(|i| {
            signed(
                &alpha,
                &submission("alpha", HashType::Sha256, &sha256_value(i)),
            )
        })
        .collect();
    let receipts = alpha_client
        .registry
        .submit_entries(pb::SubmitEntriesRequest { envelopes: batch })
        .await
        .unwrap()
        .into_inner()
        .receipts;
    assert_eq!(receipts.len(), 5);
    let extra = signed(
        &alpha,
        &submission("alpha", HashType::Sha256, &sha256_value(99)),
    );
    let refused = submit(&mut alpha_client, extra.clone()).await.unwrap_err();
    assert_refused(&refused, Code::ResourceExhausted, "QUOTA_EXCEEDED");
    // The debt (3 at 2 a second) is paid 1.5 s after the batch was charged, less the time
    // since.
    let retry = retry_after(&refused);
    assert!(
        retry > Duration::ZERO && retry <= Duration::from_millis(1500),
        "{retry:?}"
    );
    // Nothing was written: the value is not there.
    let missing = lookup(&mut beta_client, HashType::Sha256, &sha256_value(99), false)
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    // beta has no quota: served meanwhile.
    submit(
        &mut beta_client,
        signed(
            &beta,
            &submission("beta", HashType::Sha256, &sha256_value(100)),
        ),
    )
    .await
    .unwrap();
    // After the delay, alpha is served again.
    tokio::time::sleep(retry).await;
    submit(&mut alpha_client, extra).await.unwrap();

    // Lookups: 3 a second, in batches.
    let queries = |n: u64| pb::LookupHashesRequest {
        queries: (0..n)
            .map(|i| pb::HashQuery {
                hash_type: pb::HashType::Sha256.into(),
                value: sha256_value(i),
            })
            .collect(),
        include_envelopes: false,
    };
    alpha_client
        .registry
        .lookup_hashes(queries(5))
        .await
        .unwrap();
    let refused = alpha_client
        .registry
        .lookup_hashes(queries(1))
        .await
        .unwrap_err();
    assert_refused(&refused, Code::ResourceExhausted, "QUOTA_EXCEEDED");
    assert!(retry_after(&refused) > Duration::ZERO);

    // One call in progress at a time: a checkpoint watch holds alpha's only slot.
    let watch = alpha_client
        .log
        .watch_checkpoints(pb::WatchCheckpointsRequest::default())
        .await
        .unwrap();
    let refused = alpha_client
        .log
        .get_checkpoint(pb::GetCheckpointRequest::default())
        .await
        .unwrap_err();
    assert_refused(&refused, Code::ResourceExhausted, "QUOTA_EXCEEDED");
    assert!(
        refused.message().contains("1 calls in progress"),
        "{refused:?}"
    );
    beta_client
        .log
        .get_checkpoint(pb::GetCheckpointRequest::default())
        .await
        .unwrap();
    drop(watch);
    // The slot is free once the stream is gone.
    let mut freed = false;
    for _ in 0..50 {
        if alpha_client
            .log
            .get_checkpoint(pb::GetCheckpointRequest::default())
            .await
            .is_ok()
        {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(freed, "alpha's call slot was not released");
}

/// A client's deadline ends its call on the server: a lookup waiting for the server's only
/// call slot (held by another member's checkpoint watch) with a 500 ms deadline is ended then,
/// not after `max-queue-wait` (30 s here) or `request-timeout`; the server counts and logs it as
/// `CANCELLED` after about 500 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_deadline_ends_its_call_on_the_server() {
    let forum = dev_forum(&["alpha", "beta"]);
    let config = forum.path().join("server/hashforum.toml");
    let text = std::fs::read_to_string(&config).unwrap()
        + "\n[limits]\nmax-requests = 1\nmax-queue-wait = \"30s\"\n";
    std::fs::write(&config, text).unwrap();
    let mut server = ServeProcess::start_with(&config, &[("HASHFORUM_LOG_FORMAT", "json")])
        .unwrap_or_else(|(status, err)| panic!("serve exited with {status}: {err}"));
    let addr = metrics_addr(&server);
    let mut alpha = client(&server, &identity(forum.path(), "alpha")).await;
    let mut beta = client(&server, &identity(forum.path(), "beta")).await;
    let watch = alpha
        .log
        .watch_checkpoints(pb::WatchCheckpointsRequest::default())
        .await
        .unwrap();
    let mut request = tonic::Request::new(pb::LookupHashRequest {
        query: Some(pb::HashQuery {
            hash_type: pb::HashType::Sha256.into(),
            value: sha256_value(1),
        }),
        include_envelopes: false,
    });
    request.set_timeout(Duration::from_millis(500));
    let refused = beta.registry.lookup_hash(request).await.unwrap_err();
    assert!(
        matches!(refused.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{refused:?}"
    );
    // The server's record of it.
    let series =
        "hashforum_calls_total{rpc=\"RegistryService/LookupHash\",code=\"CANCELLED\",member=\"\"}";
    let mut counted = None;
    for _ in 0..50 {
        counted = sample(&scrape(&addr), series);
        if counted.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(counted, Some(1.0), "{}", scrape(&addr));
    drop(watch);
    server.signal("TERM");
    tokio::task::block_in_place(|| server.wait(CHILD_TIMEOUT));
    let log = server.stderr();
    let line: serde_json::Value = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|l| {
            l["target"] == "hashforum::call" && l["fields"]["rpc"] == "RegistryService/LookupHash"
        })
        .unwrap_or_else(|| panic!("no LookupHash call line: {log}"));
    let latency = line["fields"]["latency_ms"].as_f64().unwrap();
    assert_eq!(line["fields"]["code"], "CANCELLED");
    assert!(
        (400.0..10_000.0).contains(&latency),
        "the call ended after {latency} ms"
    );
}

/// The `RetryInfo` delay of a status.
fn retry_after(status: &tonic::Status) -> Duration {
    use tonic_types::StatusExt;
    status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .expect("a RetryInfo with a delay")
}
