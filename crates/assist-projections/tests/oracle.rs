//! The runner against an independent oracle: the reference projection of
//! `support/reference.rs` (all events of each stream, in plain memory, through the pure
//! folds) says what rows the views must hold; the store after the runner must hold exactly
//! those, on SQLite and PostgreSQL, whatever the batch size and wherever the runner is
//! killed, live or while it rebuilds a generation beside the live one.

mod support;

use assist_log::{ProjectionLog, Record};
use assist_projections::sla::Rules;
use assist_projections::{MemoryLimits, Runner, Store};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use support::reference::{read_all, reference_dump};
use support::*;

/// Where the store of a trial lives: a SQLite file or a fresh PostgreSQL database.
enum Where {
    Sqlite,
    Postgres,
}

/// A store of one trial and what keeps it alive.
struct Trial {
    url: String,
    _dir: tempfile::TempDir,
    _pg: Option<PgDatabase>,
}

async fn trial(at: &Where) -> Trial {
    let dir = tempfile::tempdir().unwrap();
    match at {
        Where::Sqlite => {
            let url = format!("sqlite:{}", dir.path().join("views.db").display());
            Store::open(&url).await.unwrap().close().await;
            Trial {
                url,
                _dir: dir,
                _pg: None,
            }
        }
        Where::Postgres => {
            let (store, pg) = postgres_store().await;
            store.close().await;
            Trial {
                url: pg.url(),
                _dir: dir,
                _pg: Some(pg),
            }
        }
    }
}

/// Projects `log` into generation `gen` of the store at `url` (the live one when
/// `None`) in batches of `batch`; before that, one run per entry of `kills` is killed after that many committed
/// batches: its runtime is shut down where it stands, every task of the runner dropped
/// mid-flight, as a SIGKILL would. Returns the kills that landed while the run still had
/// work to do.
fn project_with_kills(
    log: Arc<dyn ProjectionLog>,
    url: &str,
    batch: usize,
    kills: &[usize],
    gen: Option<i64>,
    memory: MemoryLimits,
) -> usize {
    let mut landed = 0;
    for &after in kills.iter().chain(std::iter::once(&usize::MAX)) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (log, url) = (log.clone(), url.to_string());
        let finished = rt.block_on(async move {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            // A killed run's result is never looked at (its runtime is gone); the last
            // run's must be a success.
            let run = tokio::spawn(async move {
                let store = Store::open(&url).await.unwrap();
                let gen = match gen {
                    Some(gen) => gen,
                    None => store.live_gen().await.unwrap(),
                };
                let rules = Rules::shipped().unwrap();
                let done = Runner {
                    log: log.as_ref(),
                    store: &store,
                    rules: &rules,
                    batch,
                    memory,
                }
                .catch_up(gen, |_| {
                    let _ = tx.send(());
                })
                .await;
                store.close().await;
                done
            });
            let mut batches = 0;
            while batches < after && rx.recv().await.is_some() {
                batches += 1;
            }
            if after == usize::MAX || run.is_finished() {
                run.await
                    .unwrap()
                    .expect("the run after the kills finishes");
                true
            } else {
                false
            }
        });
        if !finished {
            landed += 1;
        }
        rt.shutdown_background();
    }
    landed
}

/// The active generation of the store at `url`, dumped.
async fn dumped(url: &str) -> String {
    let store = Store::open(url).await.unwrap();
    let gen = store.active_gen().await.unwrap();
    let dump = store.dump(gen).await.unwrap();
    store.close().await;
    dump
}

/// Fails with the first table whose rows differ, showing the rows on each side.
fn assert_same_views(store: &str, reference: &str) {
    if store == reference {
        return;
    }
    let tables = |d: &str| -> Vec<(String, Vec<String>)> {
        d.split("## ")
            .filter(|t| !t.is_empty())
            .map(|t| {
                let mut lines = t.lines();
                let name = lines.next().unwrap_or_default().to_string();
                (name, lines.map(str::to_string).collect())
            })
            .collect()
    };
    for ((name, got), (_, want)) in tables(store).into_iter().zip(tables(reference)) {
        if got != want {
            let only_store: Vec<&String> = got.iter().filter(|r| !want.contains(r)).collect();
            let only_ref: Vec<&String> = want.iter().filter(|r| !got.contains(r)).collect();
            panic!(
                "table {name}: {} rows in the store, {} in the reference\nonly in the store:\n{}\nonly in the reference:\n{}",
                got.len(),
                want.len(),
                only_store.iter().take(5).map(|r| r.as_str()).collect::<Vec<_>>().join("\n"),
                only_ref.iter().take(5).map(|r| r.as_str()).collect::<Vec<_>>().join("\n"),
            );
        }
    }
    panic!("the dumps differ outside their tables");
}

/// The order a simulation's facts arrive in.
#[derive(Debug, Clone, Copy)]
enum Arrival {
    /// As they occurred (ties: recorded time, then event id): no fact arrives late.
    Occurred,
    /// As they were recorded: what one system sending as it records gives.
    Recorded,
    /// Shuffled by the seed: within and across streams.
    Shuffled(u64),
}

/// The events of a seeded simulation arriving in `arrival` order.
fn arriving(persons: usize, days: u32, seed: u64, arrival: Arrival) -> Vec<assist_catalog::Event> {
    use rand::{seq::SliceRandom, SeedableRng};
    let mut events = assist_simulate::simulate(persons, days, seed);
    match arrival {
        Arrival::Occurred => {
            events.sort_by_key(|e| (e.meta.occurred_at, e.meta.recorded_at, e.meta.event_id))
        }
        Arrival::Recorded => {
            events.sort_by_key(|e| (e.meta.recorded_at, e.meta.occurred_at, e.meta.event_id))
        }
        Arrival::Shuffled(s) => events.shuffle(&mut rand::rngs::StdRng::seed_from_u64(s)),
    }
    events
}

/// How many events arrive after an event of their stream that occurred later (counted
/// here, apart from the runner): a trial with none does not test arrival order.
fn late_arrivals(events: &[assist_catalog::Event]) -> usize {
    let mut newest = std::collections::HashMap::new();
    let mut late = 0;
    for e in events {
        let key = (e.meta.occurred_at, e.meta.recorded_at, e.meta.event_id);
        let top = newest.entry(e.meta.stream).or_insert(key);
        if key < *top {
            late += 1;
        }
        *top = (*top).max(key);
    }
    late
}

/// Ingests `jsonl` into an embedded log in `dir` and serves its records from memory.
async fn served(dir: &std::path::Path, jsonl: &[u8]) -> Served {
    let recorder = log_with(dir, jsonl).await;
    Served::placed(read_all(recorder.log().as_ref()).await)
}

/// How a trial projects: into a live generation, into a fresh store's first build, or as
/// a rebuild (the log projected once, then a new generation built beside it and swapped
/// in).
#[derive(Debug, Clone, Copy)]
enum How {
    /// Into a live generation, read by queries: the views were built on an empty log,
    /// then the facts come (every partition from offset 0, batch by batch).
    Live,
    /// Into a fresh store's first build, read by nobody until it is whole.
    FirstBuild,
    /// Into a new generation beside a live one that holds every fact already.
    Rebuild,
}

/// One trial: `log` projected with `batch` and `kills` into a fresh store at `at`, then
/// compared with the reference. Returns the kills that landed.
async fn check(log: Served, at: &Where, how: How, batch: usize, kills: &[usize]) -> usize {
    check_with(log, at, how, batch, kills, MemoryLimits::default()).await
}

/// [`check`] with a runner that remembers at most `memory` of a partition.
async fn check_with(
    log: Served,
    at: &Where,
    how: How,
    batch: usize,
    kills: &[usize],
    memory: MemoryLimits,
) -> usize {
    let reference = reference_dump(&log, &Rules::shipped().unwrap()).await;
    let trial = trial(at).await;
    let log: Arc<dyn ProjectionLog> = Arc::new(log);
    let url = trial.url.clone();
    let gen = match how {
        How::FirstBuild => None,
        How::Live => {
            let store = Store::open(&url).await.unwrap();
            let empty = Served::placed(vec![Vec::new(); log.partition_count() as usize]);
            catch_up(&empty, &store, store.live_gen().await.unwrap(), batch).await;
            assert_eq!(
                store.active_gen().await.unwrap(),
                1,
                "built on an empty log"
            );
            store.close().await;
            None
        }
        How::Rebuild => {
            let store = Store::open(&url).await.unwrap();
            catch_up(log.as_ref(), &store, 1, batch).await;
            let gen = store.begin_rebuild().await.unwrap();
            store.close().await;
            Some(gen)
        }
    };
    let kills = kills.to_vec();
    let landed = tokio::task::spawn_blocking(move || {
        project_with_kills(log, &url, batch, &kills, gen, memory)
    })
    .await
    .unwrap();
    if let Some(gen) = gen {
        let store = Store::open(&trial.url).await.unwrap();
        store.finish_rebuild(gen).await.unwrap();
        assert_eq!(store.active_gen().await.unwrap(), gen);
        store.close().await;
    }
    assert_same_views(&dumped(&trial.url).await, &reference);
    landed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hand_made_scenario_projects_to_the_reference_views() {
    let dir = tempfile::tempdir().unwrap();
    let log = served(dir.path(), &scenario_jsonl()).await;
    for how in [How::Live, How::FirstBuild, How::Rebuild] {
        for batch in [1, 7, 1000] {
            check(
                Served::placed(log.parts.clone()),
                &Where::Sqlite,
                how,
                batch,
                &[],
            )
            .await;
        }
    }
}

/// The scenario's log with what only a foreign Kafka producer writes: a record repeated at
/// a later offset, an id reused by another stream, a stream's later events on another
/// partition, and records that are no facts.
async fn foreign_log(dir: &std::path::Path) -> Served {
    let recorder = log_with(dir, &scenario_jsonl()).await;
    let log = Served::by_stream(all_records(&recorder).await, 4);
    let mut parts = log.parts.clone();
    // A retry across producer sessions: the same record again, later.
    let again = parts[1][0].clone();
    parts[1].push(again);
    // Another stream's event under an id already taken.
    let taken = parts[0][0].clone();
    let reused = parts[2].last_mut().unwrap();
    assert_ne!(reused.stream, taken.stream);
    let mut payload: Value = serde_json::from_slice(&reused.payload).unwrap();
    payload["event_id"] = serde_json::json!(taken.event_id.unwrap().to_string());
    reused.payload = serde_json::to_vec(&payload).unwrap();
    reused.event_id = taken.event_id;
    // The later half of partition 0's first stream, appended to partition 3.
    let stream = parts[0][0].stream.clone();
    let mine: Vec<usize> = (0..parts[0].len())
        .filter(|&i| parts[0][i].stream == stream)
        .collect();
    let later: Vec<Record> = mine[mine.len() / 2..]
        .iter()
        .rev()
        .map(|&i| parts[0].remove(i))
        .collect();
    parts[3].extend(later.into_iter().rev());
    // Bytes that are no fact, and a fact keyed under another stream.
    let mut keyed_wrong = parts[2][0].clone();
    keyed_wrong.stream = parts[1][0].stream.clone();
    parts[1].insert(2, keyed_wrong);
    let position = parts[2][0].position;
    parts[2].insert(
        1,
        Record {
            position,
            stream: "person-0192f0c1-8a3b-7cde-9f00-00000000dead".into(),
            event_id: None,
            payload: b"{\"not\": \"a fact\"}".to_vec(),
        },
    );
    Served::placed(parts)
}

/// The foreign producers' log projected at several batch sizes, live and rebuilt.
async fn foreign(at: Where) {
    let dir = tempfile::tempdir().unwrap();
    let log = foreign_log(dir.path()).await;
    for how in [How::Live, How::FirstBuild, How::Rebuild] {
        for batch in [1, 5, 1000] {
            check(Served::placed(log.parts.clone()), &at, how, batch, &[]).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_foreign_producers_write_projects_to_the_reference_views_on_sqlite() {
    foreign(Where::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_foreign_producers_write_projects_to_the_reference_views_on_postgres() {
    foreign(Where::Postgres).await;
}

/// Random simulations (people, days, seed) arriving in random orders (as they occurred,
/// as they were recorded, or shuffled), batch sizes and kills: `cases` trials on `at`.
fn random_workloads(at: Where, cases: u32) {
    // Kills that landed in live trials, first builds and rebuilds.
    let landed = [
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    ];
    // A fixed seed: the same trials every run, so a failure shows again (and the kills
    // asserted below are known to land).
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let strategy = (
        5usize..40,
        10u32..60,
        any::<u64>(),
        1usize..400,
        proptest::collection::vec(1usize..20, 0..3),
        0usize..3,
        0u8..3,
    );
    // Facts that arrived late, over all trials.
    let late = AtomicUsize::new(0);
    runner
        .run(
            &strategy,
            |(persons, days, seed, batch, kills, how, order)| {
                let arrival = match order {
                    0 => Arrival::Occurred,
                    1 => Arrival::Recorded,
                    _ => Arrival::Shuffled(seed),
                };
                let events = arriving(persons, days, seed, arrival);
                late.fetch_add(late_arrivals(&events), Ordering::SeqCst);
                let rt = tokio::runtime::Runtime::new().unwrap();
                let n = rt.block_on(async {
                    let dir = tempfile::tempdir().unwrap();
                    let log = served(dir.path(), &assist_simulate::to_jsonl(&events)).await;
                    let hows = [How::Live, How::FirstBuild, How::Rebuild];
                    check(log, &at, hows[how], batch, &kills).await
                });
                landed[how].fetch_add(n, Ordering::SeqCst);
                Ok(())
            },
        )
        .unwrap();
    eprintln!(
        "kills that landed: {} live, {} in first builds, {} in rebuilds",
        landed[0].load(Ordering::SeqCst),
        landed[1].load(Ordering::SeqCst),
        landed[2].load(Ordering::SeqCst)
    );
    assert!(
        late.load(Ordering::SeqCst) > 0,
        "no fact arrived late in any trial: the trials did not test arrival order"
    );
    // First builds and rebuilds take one path (from memory into a generation nobody
    // reads); `tests/crash.rs` kills first builds on their own.
    let landed: Vec<usize> = landed.iter().map(|n| n.load(Ordering::SeqCst)).collect();
    for (path, n) in [("live", landed[0]), ("unread", landed[1] + landed[2])] {
        assert!(
            n > 0,
            "no kill landed in a {path} trial while the run had work left: the trials did not test kills"
        );
    }
}

#[test]
fn random_workloads_killed_live_or_in_a_rebuild_project_to_the_reference_views_on_sqlite() {
    random_workloads(Where::Sqlite, 24);
}

#[test]
fn random_workloads_killed_live_or_in_a_rebuild_project_to_the_reference_views_on_postgres() {
    random_workloads(Where::Postgres, 12);
}

/// A runner that remembers only a few subjects and ids of a partition forgets them every
/// few events and reads the rows again (in a rebuild, after writing what it deferred).
async fn forgetting(at: Where) {
    let dir = tempfile::tempdir().unwrap();
    // In the order recorded: late facts fold their subjects again from the rows too.
    let events = arriving(40, 45, 17, Arrival::Recorded);
    assert!(late_arrivals(&events) > 0);
    let log = served(dir.path(), &assist_simulate::to_jsonl(&events)).await;
    let tiny = MemoryLimits {
        subjects: 3,
        ids: 40,
    };
    for how in [How::Live, How::FirstBuild, How::Rebuild] {
        for batch in [7, 400] {
            check_with(
                Served::placed(log.parts.clone()),
                &at,
                how,
                batch,
                &[],
                tiny,
            )
            .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_that_forgets_what_it_remembers_projects_to_the_reference_views_on_sqlite() {
    forgetting(Where::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_that_forgets_what_it_remembers_projects_to_the_reference_views_on_postgres() {
    forgetting(Where::Postgres).await;
}

/// A simulation whose facts arrive in the order they were recorded (some days late),
/// projected live and rebuilt at several batch sizes.
async fn in_recorded_order(at: Where) {
    let events = arriving(60, 60, 11, Arrival::Recorded);
    assert!(late_arrivals(&events) > 0, "no fact arrives late");
    let dir = tempfile::tempdir().unwrap();
    let log = served(dir.path(), &assist_simulate::to_jsonl(&events)).await;
    for how in [How::Live, How::FirstBuild, How::Rebuild] {
        for batch in [1, 50, 1000] {
            check(Served::placed(log.parts.clone()), &at, how, batch, &[]).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_arriving_in_the_order_recorded_project_to_the_reference_views_on_sqlite() {
    in_recorded_order(Where::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_arriving_in_the_order_recorded_project_to_the_reference_views_on_postgres() {
    in_recorded_order(Where::Postgres).await;
}

/// Ingests `events` into a fresh embedded log and projects it into a fresh SQLite store
/// in batches of `batch`; returns the views.
async fn views_after(events: &[assist_catalog::Event], batch: usize) -> String {
    let dir = tempfile::tempdir().unwrap();
    let recorder = log_with(dir.path(), &assist_simulate::to_jsonl(events)).await;
    let store = sqlite_store(dir.path(), "views.db").await;
    let gen = project(&recorder, &store, batch).await;
    let views = store.dump_views(gen).await.unwrap();
    store.close().await;
    views
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_facts_in_any_arrival_order_give_byte_identical_views() {
    let occurred = views_after(&arriving(80, 60, 5, Arrival::Occurred), 100).await;
    assert!(occurred.contains("## clocks\n") && occurred.lines().count() > 500);
    for (arrival, batch) in [
        (Arrival::Recorded, 100),
        (Arrival::Recorded, 7),
        (Arrival::Shuffled(1), 100),
        (Arrival::Shuffled(2), 1000),
    ] {
        let events = arriving(80, 60, 5, arrival);
        assert!(
            late_arrivals(&events) > 0,
            "{arrival:?}: no fact arrives late"
        );
        let views = views_after(&events, batch).await;
        assert!(
            views == occurred,
            "{arrival:?}, batch {batch}: the views differ"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_ingests_of_the_same_facts_give_the_views_of_one_in_order() {
    let all = arriving(80, 60, 6, Arrival::Occurred);
    let want = views_after(&all, 100).await;
    // Two systems each sending half of the facts, in the order they recorded them, at once.
    let mut halves = [Vec::new(), Vec::new()];
    for (i, e) in arriving(80, 60, 6, Arrival::Recorded)
        .into_iter()
        .enumerate()
    {
        halves[i % 2].push(e);
    }
    let dir = tempfile::tempdir().unwrap();
    let recorder = assist_ingest::Recorder::open_embedded(dir.path())
        .await
        .unwrap();
    let send = |half: &Vec<assist_catalog::Event>| {
        let jsonl = assist_simulate::to_jsonl(half);
        let recorder = &recorder;
        async move {
            // Small chunks, so that the two ingests interleave in the log.
            for chunk in jsonl
                .split_inclusive(|b| *b == b'\n')
                .collect::<Vec<_>>()
                .chunks(20)
            {
                let report = recorder
                    .ingest(
                        chunk.concat().as_slice(),
                        assist_ingest::IngestOptions::default(),
                    )
                    .await
                    .unwrap();
                assert!(report.rejected.is_empty());
                tokio::task::yield_now().await;
            }
        }
    };
    tokio::join!(send(&halves[0]), send(&halves[1]));
    // What the log holds, in the order it holds it, arrived late in places.
    let landed: Vec<assist_catalog::Event> = all_records(&recorder)
        .await
        .iter()
        .map(|r| assist_projections::runner::decode_record(r).unwrap())
        .collect();
    assert_eq!(landed.len(), all.len());
    assert!(late_arrivals(&landed) > 0, "no fact landed late");
    let store = sqlite_store(dir.path(), "views.db").await;
    let gen = project(&recorder, &store, 100).await;
    let views = store.dump_views(gen).await.unwrap();
    assert!(
        views == want,
        "the views differ from those of the facts in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_fact_for_a_subject_projected_before_fold_keys_were_kept_folds_it_again() {
    let mut events = arriving(30, 45, 21, Arrival::Occurred);
    // The late fact: the middle one of the stream with the most facts.
    let mut counts = std::collections::HashMap::new();
    for e in &events {
        *counts.entry(e.meta.stream).or_insert(0) += 1;
    }
    let (&stream, &n) = counts.iter().max_by_key(|(s, n)| (**n, s.name())).unwrap();
    assert!(n >= 5);
    let mine: Vec<usize> = (0..events.len())
        .filter(|&i| events[i].meta.stream == stream)
        .collect();
    let late = events.remove(mine[mine.len() / 2]);
    let dir = tempfile::tempdir().unwrap();
    let recorder = log_with(dir.path(), &assist_simulate::to_jsonl(&events)).await;
    let trial = trial(&Where::Sqlite).await;
    let store = Store::open(&trial.url).await.unwrap();
    let first = Served::placed(read_all(recorder.log().as_ref()).await);
    catch_up(&first, &store, 1, 100).await;
    store.close().await;
    // As a store migrated from before fold keys were kept: the subject's key unknown.
    let pool = sqlx::SqlitePool::connect(&trial.url).await.unwrap();
    let unknown = sqlx::query("UPDATE chains SET fold_key = '' WHERE stream = ?")
        .bind(stream.name())
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(unknown.rows_affected(), 1);
    pool.close().await;
    // The late fact arrives.
    let report = recorder
        .ingest(
            assist_simulate::to_jsonl(&[late]).as_slice(),
            assist_ingest::IngestOptions::default(),
        )
        .await
        .unwrap();
    assert!(report.rejected.is_empty());
    let full = Served::placed(read_all(recorder.log().as_ref()).await);
    let reference = reference_dump(&full, &Rules::shipped().unwrap()).await;
    let store = Store::open(&trial.url).await.unwrap();
    catch_up(&full, &store, 1, 100).await;
    store.close().await;
    assert_same_views(&dumped(&trial.url).await, &reference);
}
