//! End-to-end tests of the `assist` binary on the embedded default.

use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const PERSON: &str = "person-0192f0c1-8a3b-7cde-9f00-0123456789ab";
const NATIONAL_ID: &str = "35012119900307002X";
const NAME: &str = "Lin Xiaomei (fictitious)";

fn assist(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_assist"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("ASSIST_LOG", "debug")
        .output()
        .expect("assist runs")
}

fn assist_stdin(data_dir: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_assist"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("assist runs");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn event(type_: &str, id: &str, data: Value) -> Value {
    json!({
        "event_id": id, "stream": PERSON, "type": type_, "schema_version": 1,
        "occurred_at": "2026-03-02T09:00:00+08:00", "recorded_at": "2026-03-02T10:00:00+08:00",
        "actor": {"id": "cw-350121-007", "role": "caseworker", "region": "350121"},
        "data": data,
    })
}

fn registration() -> Value {
    event(
        "person_registered",
        "01934a5e-1001-7001-8000-000000000001",
        json!({"name": NAME, "national_id": NATIONAL_ID, "phone": "13800000000",
               "address": "No. 1 Example Road (fictitious)", "birth_year": 1990, "sex": "female",
               "region": "350121", "groups": ["poverty_relieved"]}),
    )
}

fn contact(id: &str) -> Value {
    event("contact_made", id, json!({"channel": "phone"}))
}

fn jsonl(events: &[Value]) -> String {
    events.iter().map(|e| format!("{e}\n")).collect()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn ingest_prints_the_summary_then_each_rejection_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let mut bad = contact("01934a5e-1002-7002-8000-000000000002");
    bad["actor"]["region"] = json!("3501");
    let file = write(
        dir.path(),
        "in.jsonl",
        &(jsonl(&[contact("01934a5e-1001-7001-8000-000000000001"), bad]) + "{not json\n"),
    );
    let out = assist(&dir.path().join("data"), &["ingest", &file]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "accepted 1, duplicate 0, rejected 2\n\
         line 2: 01934a5e-1002-7002-8000-000000000002: actor.region: region code \"3501\" must have 6 digits (province+city+county)\n\
         line 3: invalid JSON at column 2: key must be a string\n"
    );
}

#[test]
fn ingest_reads_standard_input_and_succeeds_when_all_lines_are_valid() {
    let dir = tempfile::tempdir().unwrap();
    let input = jsonl(&[contact("01934a5e-1001-7001-8000-000000000001")]);
    let out = assist_stdin(dir.path(), &["ingest", "-"], input.as_bytes());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout(&out), "accepted 1, duplicate 0, rejected 0\n");
}

#[test]
fn atomic_ingest_stores_nothing_when_a_line_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let input = jsonl(&[contact("01934a5e-1001-7001-8000-000000000001")]) + "[]\n";
    let out = assist_stdin(dir.path(), &["ingest", "--atomic", "-"], input.as_bytes());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "accepted 0, duplicate 0, rejected 1\nline 2: an event must be a JSON object, found an array\nnothing was stored (--atomic)\n"
    );
    let history = assist(dir.path(), &["history", PERSON]);
    assert_eq!(stdout(&history), format!("{PERSON}: 0 events\n"));
}

#[test]
fn no_file_of_the_data_dir_holds_a_plaintext_national_id_after_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = write(dir.path(), "in.jsonl", &jsonl(&[registration()]));
    let out = assist(&data, &["ingest", &file]);
    assert_eq!(stdout(&out), "accepted 1, duplicate 0, rejected 0\n");
    // Reading the history opens the fields for the reader, and writes nothing in plaintext.
    let history = assist(&data, &["history", PERSON]);
    assert!(stdout(&history).contains(NATIONAL_ID));
    for o in [&out, &history] {
        assert!(
            !String::from_utf8_lossy(&o.stderr).contains(NATIONAL_ID),
            "the program's logs"
        );
    }
    let mut files = 0;
    for entry in walk(&data) {
        let bytes = std::fs::read(&entry).unwrap();
        files += 1;
        for secret in [NATIONAL_ID, NAME, "13800000000", "No. 1 Example Road"] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} in {}",
                entry.display()
            );
        }
    }
    assert!(files >= 2, "the log and the key table were checked");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn erase_destroys_the_key_and_history_shows_the_fields_as_erased() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "in.jsonl",
        &jsonl(&[
            registration(),
            contact("01934a5e-1002-7002-8000-000000000002"),
        ]),
    );
    assist(dir.path(), &["ingest", &file]);
    let out = assist(dir.path(), &["erase", PERSON]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).starts_with(&format!(
        "{PERSON}: data key destroyed; erasure recorded at partition "
    )));

    let history: Value =
        serde_json::from_slice(&assist(dir.path(), &["history", PERSON, "--json"]).stdout).unwrap();
    let events = history["events"].as_array().unwrap();
    assert_eq!(
        events.len(),
        3,
        "every event is still there, plus the erasure fact"
    );
    let data = &events[0]["event"]["data"];
    for field in ["name", "national_id", "phone", "address"] {
        assert_eq!(data[field], "[erased]", "{field}");
    }
    assert_eq!(data["birth_year"], 1990, "non-personal fields remain");
    assert_eq!(events[2]["event"]["type"], "personal_data_erased");
    assert_eq!(
        events[2]["event"]["actor"]["region"], "350121",
        "the registration's region"
    );

    let again = assist(dir.path(), &["erase", PERSON]);
    assert_eq!(
        stdout(&again),
        format!("{PERSON}: data key destroyed; the erasure was already recorded\n")
    );
    let history: Value =
        serde_json::from_slice(&assist(dir.path(), &["history", PERSON, "--json"]).stdout).unwrap();
    assert_eq!(
        history["events"].as_array().unwrap().len(),
        3,
        "no second erasure fact"
    );
}

#[test]
fn erase_refuses_a_household_stream() {
    let dir = tempfile::tempdir().unwrap();
    let out = assist(
        dir.path(),
        &["erase", "household-0192f0c1-8a3b-7cde-9f00-00000000a001"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: household-0192f0c1-8a3b-7cde-9f00-00000000a001 is not a person stream: only people have personal data\n"
    );
}

#[test]
fn history_json_shows_an_old_version_upcast_with_the_version_it_was_written_in() {
    let dir = tempfile::tempdir().unwrap();
    let mut offer = event(
        "job_offer_pushed",
        "01934a5e-1003-7003-8000-000000000003",
        json!({"offer_id": "01934a5e-0000-7000-8000-00000000f0f2", "job_id": "JB-7", "job_title": "clerk",
               "employer": {"id": "E1", "name": "Minhou Foods"}, "monthly_wage": 3900, "location": "350121"}),
    );
    offer["schema_version"] = json!(1);
    let file = write(dir.path(), "in.jsonl", &jsonl(&[offer]));
    assist(dir.path(), &["ingest", &file]);
    let history: Value =
        serde_json::from_slice(&assist(dir.path(), &["history", PERSON, "--json"]).stdout).unwrap();
    let e = &history["events"][0];
    assert_eq!(e["written_version"], 1);
    assert_eq!(e["event"]["schema_version"], 2);
    assert_eq!(e["event"]["data"]["wage"], 3900.0);
    assert_eq!(e["event"]["data"]["wage_period"], "month");
}

#[test]
fn a_malformed_stream_argument_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = assist(dir.path(), &["history", "person-1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("invalid value 'person-1' for '<STREAM>': stream \"person-1\" must be person-<uuid> or household-<uuid>"));
}

fn examples_jsonl() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/examples");
    let mut events: Vec<Value> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            serde_json::from_str(&std::fs::read_to_string(e.unwrap().path()).unwrap()).unwrap()
        })
        .collect();
    events.sort_by(|a, b| a["occurred_at"].as_str().cmp(&b["occurred_at"].as_str()));
    jsonl(&events)
}

#[test]
fn every_shipped_example_ingests_and_the_example_persons_history_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "examples.jsonl", &examples_jsonl());
    let first = assist(dir.path(), &["ingest", &file]);
    assert_eq!(
        stdout(&first),
        "accepted 39, duplicate 0, rejected 0\n",
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let again = assist(dir.path(), &["ingest", &file]);
    assert_eq!(stdout(&again), "accepted 0, duplicate 39, rejected 0\n");
    let history = stdout(&assist(dir.path(), &["history", PERSON]));
    insta::with_settings!({snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/snapshots")}, {
        insta::assert_snapshot!("demo_person_history", history);
    });
}

#[test]
fn history_as_of_and_known_on_cut_the_history_by_business_and_record_time() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "examples.jsonl", &examples_jsonl());
    assist(dir.path(), &["ingest", &file]);
    let count = |args: &[&str]| -> usize {
        let mut all = vec!["history", PERSON, "--json"];
        all.extend_from_slice(args);
        let v: Value = serde_json::from_slice(&assist(dir.path(), &all).stdout).unwrap();
        v["events"].as_array().unwrap().len()
    };
    assert_eq!(count(&[]), 33);
    // The example person's events occur from 2026-03-02 on, recorded an hour later.
    assert_eq!(
        count(&["--as-of", "2026-03-02"]),
        3,
        "as happened by the end of March 2 (China time)"
    );
    assert_eq!(count(&["--as-of", "2026-03-02T01:02:00Z"]), 2);
    assert_eq!(
        count(&["--known-on", "2026-03-02T02:02:00Z"]),
        2,
        "recorded an hour after they occurred"
    );
    assert_eq!(count(&["--known-on", "2026-03-02T02:01:59Z"]), 1);
}

#[test]
fn every_history_read_is_in_the_access_log() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "in.jsonl",
        &jsonl(&[contact("01934a5e-1001-7001-8000-000000000001")]),
    );
    assist(dir.path(), &["ingest", &file]);
    assist(dir.path(), &["history", PERSON, "--actor", "auditor-7"]);
    assist(
        dir.path(),
        &[
            "history",
            PERSON,
            "--actor",
            "auditor-7",
            "--known-on",
            "2026-03-05",
        ],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rows: Vec<(String, String, String)> = rt.block_on(async {
        let pool =
            sqlx::SqlitePool::connect(&format!("sqlite:{}", dir.path().join("views.db").display()))
                .await
                .unwrap();
        sqlx::query_as("SELECT actor, stream, command FROM access_log ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap()
    });
    assert_eq!(
        rows,
        vec![
            ("auditor-7".into(), PERSON.into(), "history".into()),
            (
                "auditor-7".into(),
                PERSON.into(),
                "history --known-on 2026-03-05".into()
            ),
        ]
    );
}

#[test]
fn the_demo_projects_a_simulated_county_and_prints_caseload_and_sla() {
    let dir = tempfile::tempdir().unwrap();
    let out = assist(dir.path(), &["demo", "--persons", "150", "--days", "60"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(text.contains(", duplicate 0, rejected 0\n"), "{text}");
    assert!(text.contains("open cases"), "{text}");
    assert!(text.contains("response-2473/contact"), "{text}");
    assert!(text.contains("county 350121"), "{text}");
    let again = stdout(&assist(
        dir.path(),
        &["demo", "--persons", "150", "--days", "60"],
    ));
    assert!(again.contains(": accepted 0, duplicate "), "{again}");
    let sla: Value = serde_json::from_slice(
        &assist(dir.path(), &["sla", "--json", "--at", "2026-03-05"]).stdout,
    )
    .unwrap();
    assert!(sla["total"]["total"].as_u64().unwrap() > 300);
}

#[test]
fn verify_and_findings_run_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    assist(dir.path(), &["demo", "--persons", "100", "--days", "60"]);
    let v = assist(dir.path(), &["verify"]);
    assert_eq!(v.status.code(), Some(0));
    assert!(
        stdout(&v).ends_with("log and audit store agree\n"),
        "{}",
        stdout(&v)
    );
    let f = stdout(&assist(dir.path(), &["audit", "findings"]));
    assert!(f.contains("backdated"), "{f}");
}

#[test]
fn every_subcommand_answers_help() {
    let dir = tempfile::tempdir().unwrap();
    for sub in [
        vec!["--help"],
        vec!["ingest", "--help"],
        vec!["history", "--help"],
        vec!["erase", "--help"],
        vec!["catalog", "--help"],
        vec!["catalog", "list", "--help"],
        vec!["catalog", "write", "--help"],
        vec!["demo", "--help"],
        vec!["project", "--help"],
        vec!["follow", "--help"],
        vec!["caseload", "--help"],
        vec!["sla", "--help"],
        vec!["sla", "explain", "--help"],
        vec!["verify", "--help"],
        vec!["audit", "findings", "--help"],
        vec!["deadletters", "--help"],
        vec!["rebuild", "--help"],
        vec!["simulate", "--help"],
        vec!["bench", "--help"],
        vec!["bench", "ingest", "--help"],
    ] {
        let out = assist(dir.path(), &sub);
        assert_eq!(out.status.code(), Some(0), "{sub:?}");
        assert!(stdout(&out).contains("Usage: assist"), "{sub:?}");
    }
}

#[test]
fn catalog_list_names_every_event_type() {
    let dir = tempfile::tempdir().unwrap();
    let out = stdout(&assist(dir.path(), &["catalog", "list"]));
    assert_eq!(out.lines().count(), 38);
    assert!(out.contains("job_offer_pushed             v2  Person (also reads v1)"));
}

#[test]
fn simulate_writes_the_same_bytes_for_the_same_seed() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a.jsonl"),
        dir.path().join("b.jsonl"),
        dir.path().join("c.jsonl"),
    );
    for (out, seed) in [(&a, "3"), (&b, "3"), (&c, "4")] {
        let o = assist(
            dir.path(),
            &[
                "simulate",
                "--persons",
                "40",
                "--days",
                "30",
                "--seed",
                seed,
                "--out",
                out.to_str().unwrap(),
            ],
        );
        assert_eq!(o.status.code(), Some(0));
    }
    let (a, b, c) = (
        std::fs::read(a).unwrap(),
        std::fs::read(b).unwrap(),
        std::fs::read(c).unwrap(),
    );
    assert!(a.len() > 10_000);
    assert_eq!(a, b);
    assert_ne!(a, c);
}

/// A data dir with a small simulated county, projected.
fn county() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = assist(
        dir.path(),
        &["demo", "--persons", "120", "--days", "60", "--seed", "9"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

#[test]
fn caseload_filters_roll_up_by_region_prefix() {
    let dir = county();
    let total = |args: &[&str]| -> u64 {
        let mut all = vec!["caseload", "--json", "--as-of", "2026-03-05"];
        all.extend_from_slice(args);
        let v: Value = serde_json::from_slice(&assist(dir.path(), &all).stdout).unwrap();
        v["total"].as_u64().unwrap()
    };
    let city = total(&["--region", "3501"]);
    assert_eq!(
        total(&["--region", "35"]),
        city,
        "the province holds only this city"
    );
    let counties: u64 = ["350102", "350103", "350104", "350111", "350121", "350122"]
        .iter()
        .map(|c| total(&["--region", c]))
        .sum();
    assert_eq!(counties, city, "the counties add up to the city");
    assert!(city > 50);
    let bad = assist(dir.path(), &["caseload", "--region", "350"]);
    assert_eq!(
        String::from_utf8_lossy(&bad.stderr),
        "error: --region \"350\" must be a 2-, 4- or 6-digit region code prefix\n"
    );
}

#[test]
fn sla_explain_on_the_command_line_lists_the_facts_of_a_clock() {
    let dir = county();
    let sla: Value = serde_json::from_slice(
        &assist(dir.path(), &["sla", "--json", "--at", "2026-02-20"]).stdout,
    )
    .unwrap();
    let clock = sla["breached"][0]["clock_id"]
        .as_str()
        .expect("a breached clock")
        .to_string();
    let out = stdout(&assist(
        dir.path(),
        &["sla", "explain", &clock, "--at", "2026-02-20"],
    ));
    assert!(out.starts_with(&format!("{clock}: ")), "{out}");
    assert!(
        out.contains("status at 2026-02-20T15:59:59.999Z: breached"),
        "{out}"
    );
    assert!(out.contains("  started   "), "{out}");
}

#[test]
fn a_what_if_policy_re_evaluates_the_history_without_touching_the_views() {
    let dir = county();
    let stored = |d: &Path| -> Value {
        serde_json::from_slice(&assist(d, &["sla", "--json", "--at", "2026-03-01"]).stdout).unwrap()
    };
    let before = stored(dir.path());
    // A province that gives 10 calendar days for everything.
    let lenient = write(
        dir.path(),
        "lenient.toml",
        "id = \"response-lenient\"\nname = \"lenient\"\ndays = \"calendar\"\nstarts_on = [\"alert_raised\"]\n\
         [[steps]]\nid = \"contact\"\nwithin_days = 10\nmet_by = \"contact_made\"\n",
    );
    let what_if: Value = serde_json::from_slice(
        &assist(
            dir.path(),
            &["sla", "--json", "--at", "2026-03-01", "--policy", &lenient],
        )
        .stdout,
    )
    .unwrap();
    let keys: Vec<&str> = what_if["by_step"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, vec!["response-lenient/contact"]);
    let stored_contact = before["by_step"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["key"] == "response-2473/contact")
        .unwrap()
        .clone();
    assert!(
        what_if["by_step"][0]["counts"]["on_time_rate"]
            .as_f64()
            .unwrap()
            > stored_contact["counts"]["on_time_rate"].as_f64().unwrap(),
        "10 calendar days are easier to meet than 2 working days"
    );
    assert_eq!(stored(dir.path()), before, "the stored views are untouched");
}

#[test]
fn a_policy_directory_adds_a_2027_calendar_without_code() {
    let dir = county();
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(policies.join("calendars")).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    for f in [
        "response-2473.toml",
        "household-clearing.toml",
        "retention-followup.toml",
        "training-subsidy.toml",
    ] {
        std::fs::copy(root.join(f), policies.join(f)).unwrap();
    }
    for f in ["cn-2025.toml", "cn-2026.toml"] {
        std::fs::copy(
            root.join("calendars").join(f),
            policies.join("calendars").join(f),
        )
        .unwrap();
    }
    std::fs::write(
        policies.join("calendars/cn-2027.toml"),
        "year = 2027\nholidays = [\"2027-01-01\"]\nworkdays = []\n",
    )
    .unwrap();
    let out = assist(
        dir.path(),
        &["--policies", policies.to_str().unwrap(), "rebuild"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        policies.join("calendars/cn-2028.toml"),
        "year = 2028\nholidays = [\"2027-12-31\"]\nworkdays = []\n",
    )
    .unwrap();
    let bad = assist(
        dir.path(),
        &["--policies", policies.to_str().unwrap(), "sla"],
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr)
        .contains("calendar cn-2028.toml: 2027-12-31 is not in year 2028"));
}

#[test]
fn the_audit_trail_still_verifies_after_a_person_is_erased() {
    let dir = county();
    let jsonl = stdout(&assist(dir.path(), &["caseload", "--json", "--limit", "1"]));
    let v: Value = serde_json::from_str(&jsonl).unwrap();
    let person = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "person")
        .unwrap()["subject"]
        .as_str()
        .unwrap()
        .to_string();
    let erased = assist(dir.path(), &["erase", &person]);
    assert_eq!(
        erased.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&erased.stderr)
    );
    let verify = assist(dir.path(), &["verify"]);
    assert_eq!(verify.status.code(), Some(0), "{}", stdout(&verify));
    let h: Value =
        serde_json::from_slice(&assist(dir.path(), &["history", &person, "--json"]).stdout)
            .unwrap();
    assert_eq!(h["events"][0]["event"]["data"]["national_id"], "[erased]");
}

#[test]
fn deadletters_lists_a_record_the_projections_could_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use assist_log::{AppendBatch, Appender, EmbeddedLog, LogEvent};
        let log = EmbeddedLog::open(&dir.path().join("log.db"), None)
            .await
            .unwrap();
        let poison = LogEvent {
            event_id: uuid::Uuid::now_v7(),
            stream: PERSON.into(),
            payload: b"not json".to_vec(),
        };
        log.append(AppendBatch::new(vec![poison])).await.unwrap();
        log.close().await;
    });
    let out = stdout(&assist(dir.path(), &["deadletters"]));
    assert_eq!(out, "partition 4 offset 0: not JSON: expected ident at line 1 column 2 (8 bytes)\n1 dead letters\n");
}

#[test]
fn an_unreachable_kafka_broker_is_a_clear_error_naming_it_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_assist"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--log", "kafka:127.0.0.1:1/events", "project"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A guard, not a timing assertion: a hang would otherwise block the suite forever.
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "assist hangs on an unreachable broker"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: cannot reach Kafka at 127.0.0.1:1 within 10 s: "),
        "{err}"
    );
}
