//! A batch is durable when `append` returns: a process killed right after keeps it.
//!
//! A kill shows durability against a process crash (the commit reached the WAL). Against
//! power loss the log relies on `synchronous=FULL` (an fsync per commit), which no test
//! on one machine can show by pulling the plug.

use assist_log::conformance::event;
use assist_log::{AppendBatch, Appender, EmbeddedLog, PartitionReader};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const CHILD_ENV: &str = "ASSIST_LOG_DURABILITY_CHILD";
const EVENTS: usize = 5_000;

/// In the child: append one batch, say so, and wait to be killed.
async fn child(path: &str) {
    let log = EmbeddedLog::open(std::path::Path::new(path), None)
        .await
        .unwrap();
    let events = (0..EVENTS)
        .map(|i| event(&format!("person-00000000-0000-4000-8000-{:012}", i % 50), i))
        .collect();
    let out = log.append(AppendBatch::new(events)).await.unwrap();
    println!("APPENDED {}", out.len());
    std::thread::sleep(std::time::Duration::from_secs(120));
}

#[tokio::test]
async fn a_batch_survives_a_kill_right_after_append_returns() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        child(&path).await;
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let mut proc = Command::new(std::env::current_exe().unwrap())
        .args([
            "a_batch_survives_a_kill_right_after_append_returns",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = proc.stdout.take().unwrap();
    let line = BufReader::new(stdout)
        .lines()
        .map(Result::unwrap)
        .find(|l| l.starts_with("APPENDED"))
        .expect("the child appended");
    proc.kill().unwrap(); // SIGKILL: no destructors, no checkpoint, no clean close
    proc.wait().unwrap();
    assert_eq!(line, format!("APPENDED {EVENTS}"));

    let log = EmbeddedLog::open(&path, None).await.unwrap();
    assert_eq!(log.record_count().await.unwrap(), EVENTS as u64);
}
