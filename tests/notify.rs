//! `assist notify` and `assist notices` as an operator runs them: the binary on a data
//! dir, on a chosen time (`--once --at`), delivering to a real webhook receiver on
//! loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

fn assist(data_dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_assist"));
    c.arg("--data-dir").arg(data_dir).env_remove("ASSIST_TZ");
    c
}

const PERSON: &str = "person-0192f0c1-8a3b-7cde-9f00-0000000000c1";

fn event(n: u32, kind: &str, occurred: &str, data: serde_json::Value) -> String {
    serde_json::json!({
        "event_id": format!("01935000-0000-7000-8000-00000c{n:06}"),
        "stream": PERSON,
        "type": kind,
        "schema_version": 1,
        "occurred_at": occurred,
        "recorded_at": occurred,
        "actor": {"id": "cw-350121-007", "role": "caseworker", "region": "350121"},
        "data": data,
    })
    .to_string()
}

/// A case assigned to cw-350121-007 and an alert on Monday 2 March 2026 09:00 (China
/// time): the 2473 contact step is due Wednesday 09:00, its reminder Tuesday 09:00.
fn data_dir_with_an_alert() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        event(
            1,
            "case_opened",
            "2026-03-02T08:50:00+08:00",
            serde_json::json!({"groups": ["college_graduate"], "reason": "alert"}),
        ),
        event(
            2,
            "case_assigned",
            "2026-03-02T08:55:00+08:00",
            serde_json::json!({"caseworker": "cw-350121-007"}),
        ),
        event(
            3,
            "alert_raised",
            "2026-03-02T09:00:00+08:00",
            serde_json::json!({"alert_id": "01935000-0000-7000-8000-0000000a1c01", "trigger": "job_lost", "source": "data_sharing"}),
        ),
    ];
    let file = dir.path().join("events.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = assist(dir.path())
        .arg("ingest")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(dir.path().join("webhook.secret"), "0123456789abcdef-test\n").unwrap();
    dir
}

/// One POST as the receiver saw it.
#[derive(Debug, Clone)]
struct Post {
    idempotency_key: String,
    signature: String,
    body: Vec<u8>,
}

/// A webhook receiver on loopback that keeps every POST; before answering the first one
/// it SIGKILLs the process whose pid is in `kill_first` (when set; `u32::MAX` while the
/// pid is not known yet): a sender killed after sending and before recording the delivery.
fn receiver(kill_first: Arc<AtomicU32>) -> (String, Arc<Mutex<Vec<Post>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let posts: Arc<Mutex<Vec<Post>>> = Arc::default();
    let kept = posts.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut length, mut key, mut signature) = (0usize, String::new(), String::new());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap_or((&line, ""));
                let value = value.trim().to_string();
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.parse().unwrap_or(0),
                    "idempotency-key" => key = value,
                    "x-assist-signature" => signature = value,
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            kept.lock().unwrap().push(Post {
                idempotency_key: key,
                signature,
                body,
            });
            // Armed (u32::MAX) before the sender's pid is known: wait for it.
            while kill_first.load(Ordering::SeqCst) == u32::MAX {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            let pid = kill_first.swap(0, Ordering::SeqCst);
            if pid != 0 {
                Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status()
                    .unwrap();
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, posts)
}

/// A receiver that answers 503 to its first `refuse` POSTs, then 200; it keeps the ids it
/// took.
fn flaky_receiver(refuse: usize) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let taken: Arc<Mutex<Vec<String>>> = Arc::default();
    let kept = taken.clone();
    std::thread::spawn(move || {
        let mut seen = 0;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut length, mut key) = (0usize, String::new());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap_or((&line, ""));
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    "idempotency-key" => key = value.trim().to_string(),
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            seen += 1;
            let answer: &[u8] = if seen <= refuse {
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            } else {
                kept.lock().unwrap().push(key);
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            };
            let _ = stream.write_all(answer);
        }
    });
    (url, taken)
}

#[test]
fn a_webhook_receiver_that_is_down_for_a_while_gets_every_notice_afterwards() {
    let dir = data_dir_with_an_alert();
    // Down for the first three attempts: both notices at 09:00, one retry 30 s later.
    let (url, taken) = flaky_receiver(3);
    let round = |at: &str| {
        let out = notify_at(dir.path(), &url, at).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(
        round("2026-03-04T09:00:00+08:00"),
        "2 notices recorded; 0 delivered, 2 not delivered (retried later)"
    );
    assert_eq!(
        round("2026-03-04T09:00:10+08:00"),
        "0 notices recorded; 0 delivered, 0 not delivered (retried later)",
        "not before the backoff"
    );
    assert_eq!(
        round("2026-03-04T09:00:30+08:00"),
        "0 notices recorded; 1 delivered, 1 not delivered (retried later)"
    );
    assert_eq!(
        round("2026-03-04T10:00:00+08:00"),
        "0 notices recorded; 1 delivered, 0 not delivered (retried later)"
    );
    let listed = assist(dir.path())
        .args(["notices", "--json"])
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let mut ids: Vec<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["notice_id"].as_str().unwrap().to_string())
        .collect();
    let mut got = taken.lock().unwrap().clone();
    ids.sort();
    got.sort();
    assert_eq!(got, ids, "every notice, once it was up");
}

fn notify_at(dir: &Path, url: &str, at: &str) -> Command {
    let mut c = assist(dir);
    c.args(["notify", "--once", "--at", at, "--webhook", url])
        .arg("--webhook-secret-file")
        .arg(dir.join("webhook.secret"));
    c
}

#[test]
fn a_kill_between_sending_and_recording_sends_the_same_notice_id_again_and_a_deduping_receiver_sees_one(
) {
    let dir = data_dir_with_an_alert();
    let kill_first = Arc::new(AtomicU32::new(u32::MAX));
    let (url, posts) = receiver(kill_first.clone());
    // Wednesday 09:00: the contact step's reminder and first escalation are due.
    let at = "2026-03-04T09:00:00+08:00";
    let child = notify_at(dir.path(), &url, at).spawn().unwrap();
    kill_first.store(child.id(), Ordering::SeqCst);
    let status = child.wait_with_output().unwrap().status;
    assert_eq!(status.signal(), Some(9), "the kill landed: {status:?}");
    assert_eq!(
        posts.lock().unwrap().len(),
        1,
        "killed after its first send"
    );

    let again = notify_at(dir.path(), &url, at).output().unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).trim(),
        "0 notices recorded; 2 delivered, 0 not delivered (retried later)"
    );
    let posts = posts.lock().unwrap().clone();
    assert_eq!(posts.len(), 3, "the first notice was sent twice");
    assert_eq!(posts[0].idempotency_key, posts[1].idempotency_key);
    assert_eq!(
        posts[0].body, posts[1].body,
        "the same notice, byte for byte"
    );
    let mut seen: Vec<&str> = posts.iter().map(|p| p.idempotency_key.as_str()).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen.len(),
        2,
        "a receiver that drops ids it has seen gets two"
    );
    for p in &posts {
        assert_eq!(
            p.signature,
            assist_webhook::signature(b"0123456789abcdef-test", &p.body)
        );
        let json: serde_json::Value = serde_json::from_slice(&p.body).unwrap();
        assert_eq!(json["notice_id"], p.idempotency_key.as_str());
    }

    let listed = assist(dir.path())
        .args(["notices", "--json"])
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let kinds: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            assert!(n["deliveries"][0]["delivered_at"].is_string(), "{n}");
            (
                n["kind"].as_str().unwrap(),
                n["recipient"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [("escalation-1", "350121"), ("reminder", "cw-350121-007")]
    );
}

#[test]
fn notices_list_what_the_timer_recorded_for_one_recipient_in_china_time() {
    let dir = data_dir_with_an_alert();
    let out = assist(dir.path())
        .args(["notify", "--once", "--at", "2026-03-03T09:00:00+08:00"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "1 notices recorded; 0 delivered, 0 not delivered (retried later)"
    );
    let out = assist(dir.path())
        .args(["notices", "--to", "cw-350121-007"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("2026-03-03T09:00:00+08:00  reminder     caseworker cw-350121-007  response-2473/contact  due 2026-03-04T09:00:00+08:00"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("1 of 1 notices"), "{text}");
    let none = assist(dir.path())
        .args(["notices", "--to", "cw-other"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&none.stdout).trim(),
        "0 of 0 notices"
    );
}

#[test]
fn a_webhook_without_its_secret_is_refused_before_anything_is_sent() {
    let dir = data_dir_with_an_alert();
    let out = assist(dir.path())
        .args(["notify", "--once", "--webhook", "http://127.0.0.1:9/hook"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--webhook needs --webhook-secret-file"));
    let listed = assist(dir.path()).args(["notices"]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout).trim(),
        "0 of 0 notices"
    );
}

#[test]
fn in_the_kafka_mode_notices_also_go_to_a_topic_keyed_by_their_clock() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    let brokers = std::env::var("ASSIST_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:19092".into());
    let run = uuid::Uuid::new_v4().simple().to_string();
    let log = format!("kafka:{brokers}/events-{run}");
    let topic = format!("notices-{run}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let lines = [
        event(
            1,
            "case_opened",
            "2026-03-02T08:50:00+08:00",
            serde_json::json!({"groups": ["college_graduate"], "reason": "alert"}),
        ),
        event(
            3,
            "alert_raised",
            "2026-03-02T09:00:00+08:00",
            serde_json::json!({"alert_id": "01935000-0000-7000-8000-0000000a1c01", "trigger": "job_lost", "source": "data_sharing"}),
        ),
    ];
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let kafka = |c: &mut Command| {
        c.env("ASSIST_KAFKA_BATCH_MESSAGES", "1")
            .args(["--log", &log]);
    };
    let mut ingest = assist(dir.path());
    kafka(&mut ingest);
    let out = ingest.arg("ingest").arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut notify = assist(dir.path());
    kafka(&mut notify);
    let out = notify
        .args(["notify", "--once", "--at", "2026-03-04T09:00:00+08:00"])
        .args(["--notices-topic", &topic])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "2 notices recorded; 2 delivered, 0 not delivered (retried later)",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", format!("t-{run}"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while got.len() < 2 && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(std::time::Duration::from_millis(200)) {
            let body: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            let key = String::from_utf8_lossy(m.key().unwrap()).into_owned();
            assert_eq!(body["clock_id"], key.as_str());
            got.push(format!("{} {}", body["step"], body["kind"]));
        }
    }
    got.sort();
    // No caseworker assigned: the reminder goes to the county's supervisors.
    assert_eq!(
        got,
        ["\"contact\" \"escalation-1\"", "\"contact\" \"reminder\""]
    );
}

/// A copy of the shipped policies and calendars in `dir/policies`, with the notice rules
/// `notices` (file name, text) instead of the shipped ones.
fn policies_with_notices(dir: &Path, notices: &[(&str, &str)]) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let policies = dir.join("policies");
    for sub in ["", "calendars"] {
        std::fs::create_dir_all(policies.join(sub)).unwrap();
        for f in std::fs::read_dir(root.join(sub)).unwrap() {
            let path = f.unwrap().path();
            if path.extension().is_some_and(|x| x == "toml") {
                std::fs::copy(&path, policies.join(sub).join(path.file_name().unwrap())).unwrap();
            }
        }
    }
    if !notices.is_empty() {
        std::fs::create_dir_all(policies.join("notices")).unwrap();
    }
    for (name, text) in notices {
        std::fs::write(policies.join("notices").join(name), text).unwrap();
    }
    policies
}

/// One round of the timer at `at` under the policies of `policies`, which must record
/// `recorded` notices (nothing is delivered: no channel).
fn notify_once_under(
    dir: &Path,
    policies: &Path,
    at: &str,
    recorded: usize,
) -> std::process::Output {
    let out = assist(dir)
        .arg("--policies")
        .arg(policies)
        .args(["notify", "--once", "--at", at])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{recorded} notices recorded; 0 delivered, 0 not delivered (retried later)")
    );
    out
}

#[test]
fn notices_follow_the_notice_rules_of_the_policies_directory() {
    let dir = data_dir_with_an_alert();
    // The contact step is due Wednesday 09:00: a 48-hour reminder is due Monday 09:00,
    // which the shipped 24-hour one is not.
    let policies = policies_with_notices(
        dir.path(),
        &[(
            "response-2473.toml",
            "policy = \"response-2473\"\n[reminder]\nbefore_hours = 48\nto = \"caseworker\"\n",
        )],
    );
    let out = notify_once_under(dir.path(), &policies, "2026-03-02T10:00:00+08:00", 1);
    let listed = assist(dir.path())
        .args(["notices", "--to", "cw-350121-007"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.starts_with("2026-03-02T09:00:00+08:00  reminder     caseworker cw-350121-007  response-2473/contact"),
        "{text}"
    );
    // The other policies of that directory have no notice file: said, not silent.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: policy household-clearing has no notice rules"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("policy response-2473 has no notice rules"),
        "{stderr}"
    );
}

#[test]
fn a_policies_directory_without_notice_rules_sends_nothing_and_says_so() {
    let dir = data_dir_with_an_alert();
    let policies = policies_with_notices(dir.path(), &[]);
    let out = notify_once_under(dir.path(), &policies, "2026-03-04T09:00:00+08:00", 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: policy response-2473 has no notice rules (notices/response-2473.toml in the policies directory): its clocks send no reminders or escalations"),
        "{stderr}"
    );
}
