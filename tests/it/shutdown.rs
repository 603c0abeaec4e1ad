//! Shutdown is bounded (review finding M6): calls that never end, such as a health `Watch`
//! stream, get the configured grace and are then cut, and the registry is still closed cleanly.

use std::time::{Duration, Instant};

use hashforum::client::Client;
use hashforum::config::Config;
use hashforum::identity::Identity;
use hashforum::storage::Store;
use tokio::sync::oneshot;
use tokio::time::timeout;
use tonic::Streaming;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

/// The shutdown grace of the test server.
const GRACE: Duration = Duration::from_secs(1);
/// What `serve` may take past the grace: closing connections, draining an idle sequencer,
/// closing RocksDB. Generous, for a loaded CI machine.
const MARGIN: Duration = Duration::from_secs(5);

/// The next status on a `Watch` stream, within 10 s.
async fn next(watch: &mut Streaming<HealthCheckResponse>) -> ServingStatus {
    timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("a health update within 10 s")
        .expect("the Watch stream is open")
        .expect("the Watch stream has not ended")
        .status()
}

/// An open `Health/Watch` stream sees `NOT_SERVING` at shutdown, then holds the server no
/// longer than its grace: `serve` returns after the grace plus a margin, the stream is cut, and
/// the database is closed (another store can open the directory).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_stream_holds_shutdown_only_for_the_grace() {
    let dir = crate::harness::dev_forum(&["alpha"]);
    let mut config = Config::load(&dir.path().join("server/hashforum.toml")).unwrap();
    config.limits.shutdown_grace = GRACE;
    let data_dir = config.data_dir.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("https://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let mut server = tokio::spawn(hashforum::server::serve(config, listener, async {
        let _ = stopped.await;
    }));

    let alpha = Identity::load(&dir.path().join("identities/alpha")).unwrap();
    let client = Client::connect(&alpha, Some(&addr)).await.unwrap();
    let mut watch = HealthClient::new(client.channel())
        .watch(HealthCheckRequest {
            service: "hashforum.v1.RegistryService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next(&mut watch).await, ServingStatus::Serving);

    let started = Instant::now();
    stop.send(()).unwrap();
    assert_eq!(next(&mut watch).await, ServingStatus::NotServing);
    let served = timeout(GRACE + MARGIN, &mut server).await;
    let took = started.elapsed();
    let Ok(served) = served else {
        server.abort();
        panic!(
            "serve did not return within {:?} of the shutdown",
            GRACE + MARGIN
        );
    };
    served.unwrap().unwrap();
    // The open stream was given its grace before it was cut.
    assert!(took >= GRACE, "returned after {took:?}, before the grace");

    // The stream is over: an error (the connection was closed), never another update.
    let after = timeout(MARGIN, watch.message())
        .await
        .expect("the stream ended");
    assert!(
        !matches!(after, Ok(Some(_))),
        "an update after shutdown: {after:?}"
    );
    // RocksDB's lock is released: the registry was closed, not leaked.
    Store::open(&data_dir).expect("the data directory reopens");
}

/// With nothing open, shutdown does not wait for the grace at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_server_stops_at_once() {
    let dir = crate::harness::dev_forum(&["alpha"]);
    let mut config = Config::load(&dir.path().join("server/hashforum.toml")).unwrap();
    config.limits.shutdown_grace = Duration::from_secs(60);
    let data_dir = config.data_dir.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("https://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(hashforum::server::serve(config, listener, async {
        let _ = stopped.await;
    }));
    let alpha = Identity::load(&dir.path().join("identities/alpha")).unwrap();
    let mut client = Client::connect(&alpha, Some(&addr)).await.unwrap();
    client
        .admin
        .list_members(hashforum::pb::ListMembersRequest {})
        .await
        .unwrap();
    drop(client);

    stop.send(()).unwrap();
    timeout(MARGIN, server)
        .await
        .expect("serve returned well before the 60 s grace")
        .unwrap()
        .unwrap();
    Store::open(&data_dir).expect("the data directory reopens");
}
