//! `assist serve` and `assist token issue` as a user runs them: the binary on a free port,
//! spoken to over loopback, stopped with SIGTERM.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{
    assist, body_json, fresh_postgres, post_json, request, spawn_serve_command, spawn_serve_with,
};

#[test]
fn serve_takes_tokens_from_token_issue_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let issued = assist(dir.path())
        .args([
            "token",
            "issue",
            "--role",
            "supervisor",
            "--region",
            "35",
            "--sub",
            "sup-1",
        ])
        .output()
        .unwrap();
    assert!(
        issued.status.success(),
        "{}",
        String::from_utf8_lossy(&issued.stderr)
    );
    let token = String::from_utf8(issued.stdout).unwrap().trim().to_string();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("jwt.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let mut server = assist(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("{first}"))
        .to_string();

    let load = request(&addr, "GET", "/v1/caseload", Some(&token));
    assert!(load.starts_with("HTTP/1.1 200"), "{load}");
    assert!(load.contains("+08:00"), "times in China time: {load}");
    let anonymous = request(&addr, "GET", "/v1/caseload", None);
    assert!(anonymous.starts_with("HTTP/1.1 401"), "{anonymous}");
    assert!(
        anonymous.contains("application/problem+json"),
        "{anonymous}"
    );
    let ready = request(&addr, "GET", "/readyz", None);
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");

    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = server.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn serve_with_jwt_public_key_takes_the_providers_tokens_and_refuses_local_ones() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assist-http/tests/keys");
    let local = assist(dir.path())
        .args([
            "token",
            "issue",
            "--role",
            "supervisor",
            "--region",
            "35",
            "--sub",
            "sup-1",
        ])
        .output()
        .unwrap();
    let local = String::from_utf8(local.stdout).unwrap().trim().to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "sub": "sup-idp", "role": "supervisor", "region": "35",
        "iss": "assist", "aud": "assist", "exp": now + 600, "iat": now,
    });
    let idp = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_pem(
            &std::fs::read(keys.join("idp-es256.key")).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let mut with_provider = assist(dir.path());
    with_provider.env("ASSIST_JWT_PUBLIC_KEY", keys.join("idp-es256.pub"));
    let (mut server, addr) = spawn_serve_command(with_provider, &[]);
    let taken = request(&addr, "GET", "/v1/caseload", Some(&idp));
    let refused = request(&addr, "GET", "/v1/caseload", Some(&local));
    let _ = server.kill();
    let _ = server.wait();
    assert!(taken.starts_with("HTTP/1.1 200"), "{taken}");
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
}

/// Starts `assist serve` on a free port of `dir`; its address.
fn spawn_serve(dir: &Path) -> (std::process::Child, String) {
    spawn_serve_with(dir, &[])
}

#[test]
fn cli_ingest_and_erase_run_beside_serve_on_one_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/examples");
    let lines: String = [
        "person_registered",
        "alert_raised",
        "case_opened",
        "case_assigned",
    ]
    .iter()
    .map(|t| {
        let text = std::fs::read_to_string(examples.join(format!("{t}.v1.json"))).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        format!("{v}\n")
    })
    .collect();
    let stream = "person-0192f0c1-8a3b-7cde-9f00-0123456789ab";
    let file = dir.path().join("in.jsonl");
    std::fs::write(&file, lines).unwrap();
    let token = |role: &str| {
        let out = assist(dir.path())
            .args([
                "token", "issue", "--role", role, "--region", "35", "--sub", "u-1",
            ])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let (supervisor, auditor) = (token("supervisor"), token("auditor"));
    let (mut server, addr) = spawn_serve(dir.path());

    let ingest = assist(dir.path())
        .arg("ingest")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        ingest.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ingest.stderr)
    );
    let start = Instant::now();
    loop {
        let load = request(&addr, "GET", "/v1/caseload", Some(&supervisor));
        if load.contains(stream) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{load}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let erase = assist(dir.path()).args(["erase", stream]).output().unwrap();
    assert_eq!(
        erase.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&erase.stderr)
    );
    let history = request(
        &addr,
        "GET",
        &format!("/v1/streams/{stream}/history?reason=erasure%20check"),
        Some(&auditor),
    );
    let _ = server.kill();
    let _ = server.wait();
    assert!(history.starts_with("HTTP/1.1 200"), "{history}");
    assert!(history.contains("[erased]"), "{history}");
    assert!(!history.contains("Lin Xiaomei"), "{history}");
}

/// The value of an unlabelled figure in a Prometheus text exposition.
fn figure(exposition: &str, name: &str) -> Option<f64> {
    exposition.lines().find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        (n == name).then(|| v.trim().parse().ok())?
    })
}

#[test]
fn serve_bounds_sqlite_memory_by_its_flag_and_reports_it_in_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr) = spawn_serve_with(dir.path(), &["--sqlite-memory-mib", "8"]);
    let answer = request(&addr, "GET", "/metrics", None);
    let _ = server.kill();
    let _ = server.wait();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(
        figure(&answer, "assist_sqlite_memory_limit_bytes"),
        Some(8.0 * 1024.0 * 1024.0),
        "{answer}"
    );
    let used = figure(&answer, "assist_sqlite_memory_bytes").expect("SQLite's heap reported");
    assert!(used > 0.0 && used <= 8.0 * 1024.0 * 1024.0, "{used}");
}

#[test]
fn serve_print_openapi_prints_the_checked_in_document_without_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    let out = assist(&missing)
        .args(["serve", "--print-openapi"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let checked_in = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../assist-http/openapi.json"),
    )
    .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), checked_in);
    assert!(!missing.exists(), "printing the document creates nothing");
}

#[test]
fn schemathesis_with_all_checks_finds_no_failure_in_the_live_server() {
    let Some(schemathesis) = std::env::var_os("ASSIST_SCHEMATHESIS") else {
        panic!(
            "ASSIST_SCHEMATHESIS is not set: run this test through ./scripts/test, which \
             installs schemathesis into target/schemathesis-venv and sets it to its binary"
        );
    };
    let dir = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/examples");
    let lines: String = [
        "person_registered",
        "alert_raised",
        "case_opened",
        "case_assigned",
    ]
    .iter()
    .map(|t| {
        let text = std::fs::read_to_string(examples.join(format!("{t}.v1.json"))).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        format!("{v}\n")
    })
    .collect();
    let file = dir.path().join("in.jsonl");
    std::fs::write(&file, lines).unwrap();
    let ingest = assist(dir.path())
        .arg("ingest")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(ingest.status.code(), Some(0));
    let token = |role: &str| {
        let out = assist(dir.path())
            .args([
                "token", "issue", "--role", role, "--region", "35", "--sub", "u-1",
            ])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assist-http/schemathesis.toml");
    let (mut server, addr) = spawn_serve(dir.path());
    let mut failures = Vec::new();
    for role in ["supervisor", "service", "auditor"] {
        let out = Command::new(&schemathesis)
            // Its cache (`.schemathesis/`) goes to the temporary dir, not the source tree.
            .current_dir(dir.path())
            .arg("--no-color")
            .arg("--config-file")
            .arg(&config)
            .args(["run", &format!("http://{addr}/openapi.json")])
            .args(["--checks", "all", "--max-examples", "25", "--workers", "1"])
            .args(["--seed", "12"])
            .arg("-H")
            .arg(format!("Authorization: Bearer {}", token(role)))
            .output()
            .unwrap();
        if !out.status.success() {
            failures.push(format!(
                "as {role}:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn serve_with_notify_records_the_notices_due_and_shows_each_person_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/examples");
    // An alert in March 2026 that nobody acted on: by now every 2473 step has reminded its
    // caseworker and escalated.
    let lines: String = ["alert_raised", "case_opened", "case_assigned"]
        .iter()
        .map(|t| {
            let text = std::fs::read_to_string(examples.join(format!("{t}.v1.json"))).unwrap();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            format!("{v}\n")
        })
        .collect();
    let file = dir.path().join("in.jsonl");
    std::fs::write(&file, lines).unwrap();
    let ingest = assist(dir.path())
        .arg("ingest")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(ingest.status.code(), Some(0));
    let token = |role: &str, region: &str, sub: &str| {
        let out = assist(dir.path())
            .args([
                "token", "issue", "--role", role, "--region", region, "--sub", sub,
            ])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let caseworker = token("caseworker", "3501", "cw-350121-007");
    let county = token("supervisor", "350121", "sup-minhou");
    let (mut server, addr) = spawn_serve_with(dir.path(), &["--notify"]);
    let start = Instant::now();
    let mine = loop {
        let answer = request(&addr, "GET", "/v1/notices", Some(&caseworker));
        if answer.contains("\"total\":3") {
            break answer;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{answer}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let theirs = request(&addr, "GET", "/v1/notices", Some(&county));
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(mine.matches("\"kind\":\"reminder\"").count(), 3, "{mine}");
    assert!(!mine.contains("escalation"), "{mine}");
    assert!(theirs.contains("\"total\":3"), "{theirs}");
    assert_eq!(
        theirs.matches("\"kind\":\"escalation-1\"").count(),
        3,
        "{theirs}"
    );
}

#[test]
fn on_tansu_and_postgresql_every_endpoint_answers_with_what_it_serves() {
    let dir = tempfile::tempdir().unwrap();
    let brokers = std::env::var("ASSIST_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:19092".into());
    let log = format!("kafka:{brokers}/serve-{}", uuid::Uuid::new_v4().simple());
    let (store, _db) = fresh_postgres();
    let on_kafka = |c: &mut Command| {
        c.env("ASSIST_KAFKA_BATCH_MESSAGES", "1")
            .args(["--log", &log, "--store", &store]);
    };
    let token = |role: &str| {
        let out = assist(dir.path())
            .args([
                "token", "issue", "--role", role, "--region", "35", "--sub", "u-1",
            ])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let (service, supervisor, auditor, admin) = (
        token("service"),
        token("supervisor"),
        token("auditor"),
        token("admin"),
    );
    let mut serve = assist(dir.path());
    on_kafka(&mut serve);
    let (mut server, addr) = spawn_serve_command(serve, &["--notify"]);
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/examples");
    let events: Vec<serde_json::Value> = [
        "person_registered",
        "alert_raised",
        "case_opened",
        "case_assigned",
    ]
    .iter()
    .map(|t| {
        serde_json::from_str(
            &std::fs::read_to_string(examples.join(format!("{t}.v1.json"))).unwrap(),
        )
        .unwrap()
    })
    .collect();
    let stream = "person-0192f0c1-8a3b-7cde-9f00-0123456789ab";
    let mut results = Vec::new();
    let written = post_json(
        &addr,
        "/v1/events",
        &service,
        &serde_json::json!(events).to_string(),
    )
    .unwrap();
    assert!(written.starts_with("HTTP/1.1 200"), "{written}");
    assert_eq!(body_json(&written)["counts"]["accepted"], 4, "{written}");
    results.push(("POST /v1/events", 200));
    let start = Instant::now();
    loop {
        let load = request(&addr, "GET", "/v1/caseload", Some(&supervisor));
        if load.contains(stream) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{load}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let clocks = body_json(&request(
        &addr,
        "GET",
        "/v1/sla/clocks?limit=1",
        Some(&supervisor),
    ));
    let clock = clocks["clocks"][0]["clock_id"]
        .as_str()
        .unwrap()
        .replace('/', "%2F");
    let reads: Vec<(&str, String, &str, &str)> = vec![
        ("caseload", "/v1/caseload".into(), &supervisor, stream),
        (
            "sla",
            "/v1/sla?at=2026-03-31".into(),
            &supervisor,
            "response-2473/contact",
        ),
        (
            "clocks",
            "/v1/sla/clocks".into(),
            &supervisor,
            "response-2473",
        ),
        (
            "explain",
            format!("/v1/sla/clocks/{clock}"),
            &supervisor,
            "alert_raised",
        ),
        (
            "history",
            format!("/v1/streams/{stream}/history?reason=audit%20check"),
            &auditor,
            "Lin Xiaomei",
        ),
        (
            "access log",
            "/v1/access-log".into(),
            &auditor,
            "audit check",
        ),
        (
            "findings",
            "/v1/audit/findings".into(),
            &auditor,
            "findings",
        ),
        (
            "verify",
            "/v1/audit/verify".into(),
            &auditor,
            "\"agrees\":true",
        ),
        (
            "deadletters",
            "/v1/deadletters".into(),
            &auditor,
            "\"total\":0",
        ),
        ("healthz", "/healthz".into(), &auditor, "ok"),
        ("readyz", "/readyz".into(), &auditor, "lag"),
        (
            "metrics",
            "/metrics".into(),
            &auditor,
            "assist_http_requests_total",
        ),
        ("openapi", "/openapi.json".into(), &auditor, "/v1/notices"),
    ];
    for (name, path, token, expect) in &reads {
        let answer = request(&addr, "GET", path, Some(token));
        assert!(answer.starts_with("HTTP/1.1 200"), "{name}: {answer}");
        assert!(answer.contains(expect), "{name} lacks {expect}: {answer}");
    }
    // The timer runs in the server: the unanswered alert of March has escalated.
    let start = Instant::now();
    loop {
        let notices = request(&addr, "GET", "/v1/notices", Some(&auditor));
        if notices.contains("escalation-1") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{notices}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let erased = post_json(&addr, &format!("/v1/streams/{stream}/erase"), &admin, "").unwrap();
    assert!(erased.starts_with("HTTP/1.1 200"), "{erased}");
    let rebuilt = post_json(&addr, "/v1/rebuild", &admin, "").unwrap();
    assert!(rebuilt.starts_with("HTTP/1.1 200"), "{rebuilt}");
    let history = request(
        &addr,
        "GET",
        &format!("/v1/streams/{stream}/history?reason=after%20erasure"),
        Some(&auditor),
    );
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        history.contains("[erased]") && !history.contains("Lin Xiaomei"),
        "{history}"
    );
}

#[test]
fn serve_demo_fills_an_empty_data_dir_and_prints_sign_in_links_that_open_the_pages() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = assist(dir.path())
        .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("demo data into "), "{first}");
    assert!(first.contains("accepted 56165"), "{first}");
    let addr = lines.next().unwrap().unwrap();
    let addr = addr.trim_start_matches("listening on http://").to_string();
    let links: Vec<(String, String)> = (0..5)
        .map(|_| {
            let line = lines.next().unwrap().unwrap();
            let (who, url) = line.split_once(": ").unwrap();
            (who.to_string(), url.to_string())
        })
        .collect();
    let who: Vec<&str> = links.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(
        who,
        [
            "sign in as a caseworker",
            "sign in as a county supervisor",
            "sign in as a city supervisor",
            "sign in as an observer",
            "sign in as an auditor"
        ]
    );
    // The city supervisor's link sets the session and leads to the dashboard.
    let path = links[2].1.trim_start_matches(&format!("http://{addr}"));
    assert!(path.starts_with("/signin/demo/"), "{path}");
    let answer = request(&addr, "GET", path, None);
    assert!(answer.starts_with("HTTP/1.1 303"), "{answer}");
    let cookie = answer
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap();
    let session = cookie.split(';').next().unwrap();
    let mut s = TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "GET /dashboard HTTP/1.1\r\nHost: {addr}\r\nCookie: {session}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut page = String::new();
    s.read_to_string(&mut page).unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        page.contains("<title>督导看板 3501"),
        "the city's dashboard"
    );
    // Running it again on the same data dir adds nothing: the log is no longer empty.
    let _ = server.kill();
    let _ = server.wait();
    let again = assist(dir.path())
        .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut again = again;
    let first = BufReader::new(again.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    assert!(first.starts_with("listening on "), "{first}");
    let _ = again.kill();
    let _ = again.wait();
}

#[test]
fn two_instances_on_kafka_and_postgresql_share_the_keys_and_see_an_erasure_through_either() {
    const PERSON: &str = "person-0192f0c1-8a3b-7cde-9f00-0123456789ab";
    let (a, b, secrets) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let brokers = std::env::var("ASSIST_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:19092".into());
    let log = format!("kafka:{brokers}/keys-{}", uuid::Uuid::new_v4().simple());
    let (store, _db) = fresh_postgres();
    // One KEK for the province, kept outside both data dirs and the database.
    let kek = secrets.path().join("kek");
    let made = assist(a.path())
        .args(["keys", "new-kek", "--out", kek.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    assert!(String::from_utf8_lossy(&made.stdout).starts_with("wrote key-encryption key "));
    // One instance's command with KEK file `kek`.
    let with = |dir: &Path, kek: &Path, args: &[&str]| {
        assist(dir)
            .env("ASSIST_KAFKA_BATCH_MESSAGES", "1")
            .args(["--log", &log, "--store", &store, "--kek-file"])
            .arg(kek)
            .args(args)
            .output()
            .unwrap()
    };
    let ok = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let name = |dir: &Path, kek: &Path| {
        let out = ok(with(dir, kek, &["history", PERSON, "--json"]));
        let history: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        history["events"][0]["event"]["data"]["name"].clone()
    };
    let new_kek = |path: &Path| {
        ok(assist(a.path())
            .args(["keys", "new-kek", "--out", path.to_str().unwrap()])
            .output()
            .unwrap());
    };
    // Instance A records a registration; instance B opens its personal fields.
    let example = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events/examples/person_registered.v1.json");
    let event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(example).unwrap()).unwrap();
    let file = a.path().join("in.jsonl");
    std::fs::write(&file, format!("{event}\n")).unwrap();
    ok(with(a.path(), &kek, &["ingest", file.to_str().unwrap()]));
    assert_eq!(name(b.path(), &kek), "Lin Xiaomei (fictitious)");
    // The keys are in PostgreSQL, in neither data dir.
    for dir in [a.path(), b.path()] {
        assert!(!dir.join("keys.db").exists(), "{}", dir.display());
    }
    // A KEK that is not the province's opens nothing, and says which one is needed.
    let other = secrets.path().join("other");
    new_kek(&other);
    let wrong = with(a.path(), &other, &["history", PERSON]);
    assert_eq!(wrong.status.code(), Some(2), "the command failed");
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert!(said.contains("wrapped with key-encryption key"), "{said}");
    // Rotated through A to a new KEK: B opens the fields with the new one only.
    let new = secrets.path().join("kek-2027");
    new_kek(&new);
    let rotated = ok(with(
        a.path(),
        &kek,
        &["keys", "rotate", "--new-kek-file", new.to_str().unwrap()],
    ));
    assert!(String::from_utf8_lossy(&rotated.stdout).starts_with("re-wrapped 1 data keys"));
    assert_eq!(name(b.path(), &new), "Lin Xiaomei (fictitious)");
    let with_old = with(b.path(), &kek, &["history", PERSON]);
    assert_eq!(with_old.status.code(), Some(2), "the old KEK is refused");
    // Erased through B: A shows the fields erased at once.
    ok(with(b.path(), &new, &["erase", PERSON]));
    assert_eq!(name(a.path(), &new), "[erased]");
}

#[test]
fn serve_reads_its_ratings_from_the_file_named_and_refuses_one_out_of_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ratings.toml");
    std::fs::write(&file, "green = 0.5\namber = 0.8\n").unwrap();
    let out = assist(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--ratings"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("ratings.toml"), "{said}");
}
