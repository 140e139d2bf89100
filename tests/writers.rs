//! Writers that die or stall, as an operator would see them: `assist serve` processes killed
//! with SIGKILL mid-batch, or stopped with SIGSTOP while they hold a stream's lock, on the
//! embedded log and on Kafka (tansu) with PostgreSQL deciding versions and ids.

mod support;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{
    assist, body_json, fresh_postgres, post_json, request, spawn_serve_command, Running,
};

/// Events per POST in the SIGKILL tests.
const BATCH: u32 = 10;
/// People the events are about.
const PEOPLE: u32 = 5;

fn person(p: u32) -> String {
    format!("person-0192f0c1-8a3b-7cde-9f00-{p:012}")
}

/// Event `n`: an alert for person `p`.
fn alert(n: u32, p: u32) -> (String, serde_json::Value) {
    let id = format!("01934a5e-{:04x}-7{:03x}-8000-{n:012}", n / 4096, n % 4096);
    let event = serde_json::json!({
        "event_id": id, "stream": person(p), "type": "alert_raised", "schema_version": 1,
        "occurred_at": "2026-03-02T09:03:00+08:00", "recorded_at": "2026-03-02T10:03:00+08:00",
        "actor": {"id": "cw-350121-007", "role": "caseworker", "region": "350121"},
        "correlation_id": null, "causation_id": null,
        "data": {"alert_id": format!("01934a5e-0000-7000-8000-{n:012}"), "trigger": "job_lost", "source": "data_sharing"},
    });
    (id, event)
}

/// Batch `b`: events `b*BATCH ..`, spread over the people; their ids and the POST body.
fn batch(b: u32) -> (Vec<String>, String) {
    let events: Vec<(String, serde_json::Value)> = (b * BATCH..(b + 1) * BATCH)
        .map(|n| alert(n, n % PEOPLE))
        .collect();
    let ids = events.iter().map(|(id, _)| id.clone()).collect();
    let body = serde_json::Value::Array(events.into_iter().map(|(_, e)| e).collect());
    (ids, body.to_string())
}

/// Where the instances keep their facts.
enum Backend {
    Embedded,
    /// A topic on the test command's tansu and a fresh PostgreSQL database (dropped with it).
    KafkaPostgres {
        log: String,
        store: String,
        _db: Box<dyn std::any::Any>,
    },
}

impl Backend {
    fn kafka_postgres() -> Backend {
        let brokers =
            std::env::var("ASSIST_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:19092".into());
        let (store, db) = fresh_postgres();
        Backend::KafkaPostgres {
            log: format!("kafka:{brokers}/writers-{}", uuid::Uuid::new_v4().simple()),
            store,
            _db: Box::new(db),
        }
    }

    /// `assist` on `dir` with this backend, and the shared log's timings shortened so that
    /// the tests see a relay and a takeover within seconds.
    fn assist(&self, dir: &Path) -> Command {
        let mut c = assist(dir);
        if let Backend::KafkaPostgres { log, store, .. } = self {
            c.args(["--log", log, "--store", store])
                .env("ASSIST_KAFKA_BATCH_MESSAGES", "1")
                .env("ASSIST_PUBLISH_AFTER_MS", "300")
                .env("ASSIST_RELAY_EVERY_MS", "100")
                .env("ASSIST_WRITER_HOLD_TIMEOUT_MS", "1500");
        }
        c
    }

    fn serve(&self, dir: &Path) -> (Running, String) {
        let (child, addr) = spawn_serve_command(self.assist(dir), &[]);
        (Running(child), addr)
    }

    /// Waits until no committed fact is left unpublished (the relay's work), on Kafka.
    fn wait_for_the_relay(&self) {
        let Backend::KafkaPostgres { store, .. } = self else {
            return;
        };
        on_postgres(store, |mut c| async move {
            let start = Instant::now();
            loop {
                let left: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM log_events WHERE log_offset IS NULL")
                        .fetch_one(&mut c)
                        .await
                        .unwrap();
                if left == 0 {
                    return;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "{left} facts never relayed"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
}

fn token(dir: &Path, role: &str) -> String {
    let out = assist(dir)
        .args([
            "token", "issue", "--role", role, "--region", "35", "--sub", "u-1",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// How many times each event id is in the histories of the first `people`, read through
/// `addr`.
fn histories(addr: &str, auditor: &str, people: u32) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for p in 0..people {
        let answer = request(
            addr,
            "GET",
            &format!("/v1/streams/{}/history?limit=1000", person(p)),
            Some(auditor),
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        for e in body_json(&answer)["events"].as_array().unwrap() {
            let id = e["event"]["event_id"].as_str().unwrap().to_string();
            *seen.entry(id).or_default() += 1;
        }
    }
    seen
}

fn signal(child: &Running, sig: libc::c_int) {
    // SAFETY: kill(2) on our own child's pid; no memory is touched.
    let r = unsafe { libc::kill(child.0.id() as libc::pid_t, sig) };
    assert_eq!(r, 0, "could not signal the server");
}

/// Two clients POST batches to a server until it is killed with SIGKILL; after a restart
/// (and on Kafka, the relay), every batch is in the log whole or not at all, every
/// acknowledged one is there, and resending everything gives the acknowledged ones back as
/// duplicates and stores the rest once.
fn a_sigkill_mid_batch(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (service, auditor) = (token(dir.path(), "service"), token(dir.path(), "auditor"));
    let (mut server, addr) = backend.serve(dir.path());
    let next = Arc::new(AtomicU32::new(0));
    let acknowledged = Arc::new(Mutex::new(Vec::<u32>::new()));
    let sent = Arc::new(Mutex::new(Vec::<u32>::new()));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (next, acknowledged, sent) = (next.clone(), acknowledged.clone(), sent.clone());
            let (addr, service) = (addr.clone(), service.clone());
            std::thread::spawn(move || loop {
                let b = next.fetch_add(1, Ordering::SeqCst);
                sent.lock().unwrap().push(b);
                match post_json(&addr, "/v1/events", &service, &batch(b).1) {
                    Ok(answer) if answer.starts_with("HTTP/1.1 200") => {
                        assert!(
                            answer.contains(&format!("\"accepted\":{BATCH}")),
                            "{answer}"
                        );
                        acknowledged.lock().unwrap().push(b);
                    }
                    Ok(answer) if answer.is_empty() => return,
                    Ok(answer) => panic!("{answer}"),
                    Err(_) => return,
                }
            })
        })
        .collect();
    let start = Instant::now();
    while acknowledged.lock().unwrap().len() < 8 {
        assert!(start.elapsed() < Duration::from_secs(60), "too slow");
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill(); // SIGKILL
    for c in clients {
        c.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let sent = sent.lock().unwrap().clone();
    assert!(
        sent.len() > acknowledged.len(),
        "the kill caught batches in flight"
    );

    let (server, addr) = backend.serve(dir.path());
    backend.wait_for_the_relay();
    let seen = histories(&addr, &auditor, PEOPLE);
    for &b in &sent {
        let there = batch(b)
            .0
            .iter()
            .filter(|id| seen.contains_key(*id))
            .count();
        assert!(
            there == 0 || there == BATCH as usize,
            "batch {b}: {there} of {BATCH} events are in the log"
        );
        if acknowledged.contains(&b) {
            assert_eq!(there, BATCH as usize, "acknowledged batch {b} is lost");
        }
    }
    // The clients resend everything they sent: what was acknowledged is a duplicate.
    for &b in &sent {
        let answer = post_json(&addr, "/v1/events", &service, &batch(b).1).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        if acknowledged.contains(&b) {
            assert!(
                answer.contains(&format!("\"duplicate\":{BATCH}")),
                "batch {b}: {answer}"
            );
        }
    }
    let seen = histories(&addr, &auditor, PEOPLE);
    drop(server);
    for &b in &sent {
        for id in batch(b).0 {
            assert_eq!(seen.get(&id), Some(&1), "{id} is not in the log once");
        }
    }
    assert_eq!(
        seen.len(),
        sent.len() * BATCH as usize,
        "nothing but what was sent"
    );
}

#[test]
fn on_the_embedded_log_a_sigkill_mid_batch_leaves_whole_batches_and_loses_nothing_acknowledged() {
    a_sigkill_mid_batch(Backend::Embedded);
}

#[test]
fn on_kafka_and_postgresql_a_sigkill_mid_batch_leaves_whole_batches_and_loses_nothing_acknowledged()
{
    a_sigkill_mid_batch(Backend::kafka_postgres());
}

/// The PostgreSQL sessions (backend pids) of the server `pid` that hold a stream's lock
/// while they wait for it: in a transaction that has written (and so locked) rows of
/// `log_streams`, idle until the server sends its next statement.
fn sessions_holding_a_stream_lock(store: &str, pid: u32) -> Vec<i32> {
    on_postgres(store, |mut c| async move {
        sqlx::query_scalar(
            "SELECT l.pid FROM pg_locks l
             JOIN pg_stat_activity a ON a.pid = l.pid
             JOIN pg_class c ON c.oid = l.relation
             WHERE a.application_name = $1 AND c.relname = 'log_streams'
               AND l.mode = 'RowExclusiveLock' AND l.granted
               AND a.state = 'idle in transaction'
               AND EXISTS (SELECT 1 FROM pg_locks x WHERE x.pid = l.pid
                           AND x.locktype = 'transactionid' AND x.granted)",
        )
        .bind(format!("assist-writer-{pid}"))
        .fetch_all(&mut c)
        .await
        .unwrap()
    })
}

/// Which of the PostgreSQL sessions `pids` still exist.
fn living_sessions(store: &str, pids: Vec<i32>) -> Vec<i32> {
    on_postgres(store, |mut c| async move {
        sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE pid = ANY($1)")
            .bind(pids)
            .fetch_all(&mut c)
            .await
            .unwrap()
    })
}

/// Runs `f` with a fresh connection to `store`.
fn on_postgres<T, F: std::future::Future<Output = T>>(
    store: &str,
    f: impl FnOnce(sqlx::PgConnection) -> F,
) -> T {
    use sqlx::Connection;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async { f(sqlx::PgConnection::connect(store).await.unwrap()).await })
}

#[test]
fn a_writer_stopped_while_it_holds_a_streams_lock_is_cut_off_and_cannot_write_when_it_wakes() {
    let backend = Backend::kafka_postgres();
    let Backend::KafkaPostgres { store, .. } = &backend else {
        unreachable!()
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (service, auditor) = (token(a.path(), "service"), token(a.path(), "auditor"));
    // Both instances take the same tokens and share the key-encryption key.
    let (zombie, zombie_addr) = backend.serve(a.path());
    for file in ["jwt.key", "kek"] {
        std::fs::copy(a.path().join(file), b.path().join(file)).unwrap();
    }
    let (other, other_addr) = backend.serve(b.path());
    // Two clients post one event at a time for person 0 to the instance that will stall.
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU32::new(0));
    let outcomes = Arc::new(Mutex::new(Vec::<(u32, bool)>::new()));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (stop, next, outcomes) = (stop.clone(), next.clone(), outcomes.clone());
            let (addr, service) = (zombie_addr.clone(), service.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    let body = serde_json::json!([alert(n, 0).1]).to_string();
                    let ok = matches!(post_json(&addr, "/v1/events", &service, &body),
                        Ok(answer) if answer.starts_with("HTTP/1.1 200"));
                    outcomes.lock().unwrap().push((n, ok));
                }
            })
        })
        .collect();
    // Stop it until it is caught holding the stream's lock: the fault must land.
    let mut caught = Vec::new();
    for _ in 0..2000 {
        signal(&zombie, libc::SIGSTOP);
        std::thread::sleep(Duration::from_millis(2));
        caught = sessions_holding_a_stream_lock(store, zombie.0.id());
        if !caught.is_empty() {
            break;
        }
        signal(&zombie, libc::SIGCONT);
        std::thread::sleep(Duration::from_millis(3));
    }
    assert!(
        !caught.is_empty(),
        "the writer was never stopped while it held the lock"
    );
    // Another instance appends to the same stream: it waits until PostgreSQL ends the
    // stalled writer's session, then writes.
    let (z_id, z) = alert(1_000_000, 0);
    let waited = Instant::now();
    let answer = post_json(
        &other_addr,
        "/v1/events",
        &service,
        &serde_json::json!([z]).to_string(),
    )
    .unwrap();
    let takeover = waited.elapsed();
    assert!(answer.contains("\"accepted\":1"), "{answer}");
    assert_eq!(
        living_sessions(store, caught),
        Vec::<i32>::new(),
        "PostgreSQL ended the stalled writer's session"
    );
    // It wakes up; what it was writing fails, and it goes on with new sessions.
    signal(&zombie, libc::SIGCONT);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    let outcomes = outcomes.lock().unwrap().clone();
    let failed: Vec<u32> = outcomes
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(n, _)| *n)
        .collect();
    assert!(!failed.is_empty(), "the stalled request failed");
    // Resent through the other instance, what the stalled writer was writing is stored now:
    // it had not been stored.
    let mut stored_on_resend = 0;
    for &n in &failed {
        let body = serde_json::json!([alert(n, 0).1]).to_string();
        let answer = post_json(&other_addr, "/v1/events", &service, &body).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        if answer.contains("\"accepted\":1") {
            stored_on_resend += 1;
        }
    }
    assert!(
        stored_on_resend >= 1,
        "the stalled append had stored nothing"
    );
    backend.wait_for_the_relay();
    let seen = histories(&other_addr, &auditor, 1);
    drop((zombie, other));
    assert!(
        seen.values().all(|&n| n == 1),
        "an event is in the log twice"
    );
    let expected: HashSet<String> = outcomes
        .iter()
        .map(|(n, _)| alert(*n, 0).0)
        .chain([z_id])
        .collect();
    assert_eq!(
        seen.keys().cloned().collect::<HashSet<_>>(),
        expected,
        "the log holds what was sent, nothing else"
    );
    eprintln!("takeover after {} ms", takeover.as_millis());
}

/// The active generation of the views at PostgreSQL `url`, without the tables that record
/// the log's order; once every partition is projected to the end of `log`.
fn views_when_caught_up(log: &str, url: &str) -> String {
    use assist_log::PartitionReader;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let spec = log.strip_prefix("kafka:").unwrap();
        let log = assist_kafka::SharedKafkaLog::open(
            assist_kafka::KafkaConfig::parse(spec),
            url,
            assist_kafka::SharedSettings::default(),
        )
        .await
        .unwrap();
        let store = assist_projections::Store::open(url).await.unwrap();
        let start = Instant::now();
        loop {
            let gen = store.active_gen().await.unwrap();
            let mut behind = 0;
            for p in log.partitions().await.unwrap() {
                let (next, _) = assist_projections::runner::checkpoint(&store, gen, p.partition)
                    .await
                    .unwrap();
                behind += p.high_water.saturating_sub(next);
            }
            if behind == 0 {
                let views = store.dump_views(gen).await.unwrap();
                store.close().await;
                return views;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "the workers stay {behind} records behind"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

#[test]
fn two_serve_and_two_follow_processes_killed_and_restarted_give_the_views_of_the_embedded_log() {
    let backend = Backend::kafka_postgres();
    let Backend::KafkaPostgres { log, store, .. } = &backend else {
        unreachable!()
    };
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let service = token(dirs[0].path(), "service");
    // A simulated county's traffic, in chunks of JSON Lines, sent by its systems to either
    // instance.
    let jsonl = assist_simulate::to_jsonl(&assist_simulate::simulate(60, 60, 43));
    let lines: Vec<&str> = std::str::from_utf8(&jsonl).unwrap().lines().collect();
    let chunks: Vec<String> = lines.chunks(100).map(|c| c.join("\n") + "\n").collect();
    let serve = |i: usize| backend.serve(dirs[i].path());
    let follow = |i: usize| {
        Running(
            backend
                .assist(dirs[i].path())
                .args(["follow", "--group", "e2e", "--interval-ms", "200"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let (a, a_addr) = serve(0);
    for file in ["jwt.key", "kek"] {
        std::fs::copy(dirs[0].path().join(file), dirs[1].path().join(file)).unwrap();
    }
    let (b, b_addr) = serve(1);
    let (f1, f2) = (follow(2), follow(3));
    let addrs = Arc::new(Mutex::new([a_addr, b_addr]));
    let acknowledged = Arc::new(AtomicU32::new(0));
    // The systems: each chunk to the next instance in turn, to the other while it is down.
    let poster = {
        let (addrs, acknowledged, chunks) = (addrs.clone(), acknowledged.clone(), chunks.clone());
        std::thread::spawn(move || {
            for (i, chunk) in chunks.iter().enumerate() {
                let mut target = i % 2;
                let start = Instant::now();
                loop {
                    let addr = addrs.lock().unwrap()[target].clone();
                    match support::post(
                        &addr,
                        "/v1/events",
                        &service,
                        "application/x-ndjson",
                        chunk,
                    ) {
                        Ok(answer) if answer.starts_with("HTTP/1.1 200") => {
                            assert!(answer.contains("\"rejected\":0"), "{answer}");
                            break;
                        }
                        _ => {
                            assert!(
                                start.elapsed() < Duration::from_secs(60),
                                "no instance takes chunk {i}"
                            );
                            target = 1 - target;
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                }
                acknowledged.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let wait_for = |n: usize| {
        let start = Instant::now();
        while (acknowledged.load(Ordering::SeqCst) as usize) < n {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "the systems stalled"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    // One serve instance killed with SIGKILL a third of the way, and started again.
    wait_for(chunks.len() / 3);
    let mut a = a;
    a.kill();
    std::thread::sleep(Duration::from_millis(300));
    let (a, a_addr) = serve(0);
    addrs.lock().unwrap()[0] = a_addr;
    // One follow worker killed two thirds of the way, and started again.
    wait_for(2 * chunks.len() / 3);
    let mut f1 = f1;
    f1.kill();
    let f1 = follow(2);
    poster.join().unwrap();
    backend.wait_for_the_relay();
    let got = views_when_caught_up(log, store);
    drop((a, b, f1, f2));
    // The same input through the embedded log, projected into another database.
    let embedded = tempfile::tempdir().unwrap();
    let file = embedded.path().join("county.jsonl");
    std::fs::write(&file, &jsonl).unwrap();
    let (other, _other_db) = fresh_postgres();
    for args in [
        vec!["ingest", file.to_str().unwrap()],
        vec!["--store", &other, "project"],
    ] {
        let out = assist(embedded.path()).args(&args).output().unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let want = {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let store = assist_projections::Store::open(&other).await.unwrap();
            let gen = store.active_gen().await.unwrap();
            store.dump_views(gen).await.unwrap()
        })
    };
    assert!(want.lines().count() > 300, "a county's worth of views");
    let first = got.lines().zip(want.lines()).find(|(x, y)| x != y);
    assert!(got == want, "first difference: {first:?}");
}
