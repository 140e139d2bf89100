//! End-to-end tests of the `assist` binary on the embedded default.

use serde_json::{json, Value};
use std::collections::BTreeSet;
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
        "accepted 1, duplicate 0, conflicting 0, rejected 2\n\
         line 2: 01934a5e-1002-7002-8000-000000000002: actor.region: region code (text, 4 chars) must have 6 digits (province+city+county)\n\
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
    assert_eq!(
        stdout(&out),
        "accepted 1, duplicate 0, conflicting 0, rejected 0\n"
    );
}

#[test]
fn atomic_ingest_stores_nothing_when_a_line_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let input = jsonl(&[contact("01934a5e-1001-7001-8000-000000000001")]) + "[]\n";
    let out = assist_stdin(dir.path(), &["ingest", "--atomic", "-"], input.as_bytes());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "accepted 0, duplicate 0, conflicting 0, rejected 1\nline 2: an event must be a JSON object, found an array\nnothing was stored (--atomic)\n"
    );
    let history = assist(dir.path(), &["history", PERSON]);
    assert_eq!(history.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&history.stderr).contains("has no events in the log"));
}

#[test]
fn no_file_of_the_data_dir_holds_a_plaintext_national_id_after_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = write(dir.path(), "in.jsonl", &jsonl(&[registration()]));
    let out = assist(&data, &["ingest", &file]);
    assert_eq!(
        stdout(&out),
        "accepted 1, duplicate 0, conflicting 0, rejected 0\n"
    );
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
    assert_eq!(out.status.code(), Some(2));
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
        .contains("invalid value 'person-1' for '<STREAM>': stream (text, 8 chars) must be person-<uuid> or household-<uuid>"));
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
        "accepted 39, duplicate 0, conflicting 0, rejected 0\n",
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let again = assist(dir.path(), &["ingest", &file]);
    assert_eq!(
        stdout(&again),
        "accepted 0, duplicate 39, conflicting 0, rejected 0\n"
    );
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
    assert!(
        text.contains(", duplicate 0, conflicting 0, rejected 0\n"),
        "{text}"
    );
    assert!(text.contains("open cases"), "{text}");
    assert!(text.contains("response-2473/contact"), "{text}");
    assert!(text.contains("county 350121"), "{text}");
    // The command it suggests next takes the time as the demo showed it: China time.
    let next = text.lines().last().unwrap();
    let at = next
        .split("--at ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert!(at.ends_with("+08:00"), "{next}");
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
        vec!["policies", "--help"],
        vec!["notify", "--help"],
        vec!["notices", "--help"],
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
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains(
        "a region prefix must be 2, 4 or 6 digits (province, city, county); got 3 digits"
    ));
}

#[test]
fn caseload_lists_cases_by_next_step_due_overdue_first_as_the_service_pages_them() {
    let dir = county();
    let v: Value =
        serde_json::from_slice(&assist(dir.path(), &["caseload", "--json"]).stdout).unwrap();
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(
        cases.len() as u64,
        v["total"].as_u64().unwrap(),
        "JSON lists all"
    );
    // By deadline (a case without a next step last), ties by subject.
    let key = |c: &Value| {
        (
            c["next_step"]["due_at"].as_str().unwrap_or("~").to_string(),
            c["subject"].as_str().unwrap().to_string(),
        )
    };
    let keys: Vec<_> = cases.iter().map(key).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    let dues: BTreeSet<&str> = keys.iter().map(|(d, _)| d.as_str()).collect();
    assert!(dues.len() > 2 && dues.contains("~"), "{dues:?}");
    // The text shows the first ones and says how many more there are.
    let text = stdout(&assist(dir.path(), &["caseload", "--limit", "3"]));
    let listed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.contains('-') && !w.ends_with(':'))
        .collect();
    let first: Vec<&str> = keys[..3].iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(listed, first, "{text}");
    assert!(
        text.contains(&format!("({} more; --limit 0 lists all)", cases.len() - 3)),
        "{text}"
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
        out.contains("status at 2026-02-20T23:59:59.999+08:00: breached"),
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
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr)
        .contains("calendar cn-2028.toml: 2027-12-31 is not in year 2028"));
}

/// A policy directory holding the shipped policies and calendars and a changed 2473 rule
/// from 1 January 2027 (contact within 5 working days).
fn policies_with_a_2473_of_2027(dir: &Path) -> String {
    let policies = dir.join("policies");
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
        policies.join("response-2473-2027.toml"),
        "id = \"response-2473\"\nname = \"2473 from 2027\"\ndays = \"working\"\neffective_from = \"2027-01-01\"\n\
         starts_on = [\"alert_raised\"]\ncancelled_by = [\"hired\", \"case_closed\"]\n\
         [[steps]]\nid = \"contact\"\nwithin_days = 5\nmet_by = \"contact_made\"\n",
    )
    .unwrap();
    policies.display().to_string()
}

const OTHER_RULES: &str = "warning: the views were built with other SLA policies";

#[test]
fn policies_shows_every_version_and_whether_the_views_were_built_with_them() {
    let dir = county();
    let shipped = stdout(&assist(dir.path(), &["policies"]));
    assert!(
        shipped.contains("the views (generation 1) were built with these policies"),
        "{shipped}"
    );
    assert!(shipped.contains("response-2473        always"), "{shipped}");
    let p = policies_with_a_2473_of_2027(dir.path());
    let changed = stdout(&assist(dir.path(), &["--policies", &p, "policies"]));
    assert!(changed.contains("response-2473        from 2027-01-01  working days  contact 5d (contact_made)  [response-2473-2027.toml]"), "{changed}");
    assert!(
        changed.contains("were built with other policies"),
        "{changed}"
    );
    assert!(
        changed.contains("run `assist rebuild` (with the same --policies)"),
        "{changed}"
    );
}

#[test]
fn every_sla_command_says_when_the_views_were_built_with_other_policies_until_a_rebuild() {
    let dir = county();
    let figures = |d: &Path, extra: &[&str]| {
        let mut args = extra.to_vec();
        args.extend(["sla", "--json", "--at", "2026-03-01"]);
        let out = assist(d, &args);
        (
            stdout(&out),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (before, quiet) = figures(dir.path(), &[]);
    assert!(!quiet.contains(OTHER_RULES), "{quiet}");
    let p = policies_with_a_2473_of_2027(dir.path());
    let with = ["--policies", p.as_str()];
    let listed: Value = serde_json::from_str(&stdout(&assist(
        dir.path(),
        &["sla", "clocks", "--json", "--limit", "1"],
    )))
    .unwrap();
    let clock = listed["clocks"][0]["clock_id"]
        .as_str()
        .unwrap()
        .to_string();
    for cmd in [
        vec!["sla"],
        vec!["sla", "clocks", "--limit", "1"],
        vec!["sla", "explain", clock.as_str()],
        vec!["caseload", "--limit", "1"],
    ] {
        let mut args = with.to_vec();
        args.extend(cmd.iter());
        let out = assist(dir.path(), &args);
        assert_eq!(out.status.code(), Some(0), "{cmd:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(OTHER_RULES) && err.contains("`assist rebuild`"),
            "{cmd:?}: {err}"
        );
    }
    // A what-if is read-only: it changes neither the views nor what they were built with.
    let fp = |d: &Path| -> Value {
        serde_json::from_slice(&assist(d, &["policies", "--json"]).stdout).unwrap()
    };
    let recorded = fp(dir.path())["views_fingerprint"].clone();
    let file = format!("{p}/response-2473-2027.toml");
    let what_if = assist(dir.path(), &["sla", "--policy", &file]);
    assert_eq!(what_if.status.code(), Some(0));
    assert_eq!(fp(dir.path())["views_fingerprint"], recorded);
    assert_eq!(
        figures(dir.path(), &[]).0,
        before,
        "the views' figures are as before the what-if"
    );
    // Rebuilt under the new set: no warning, and the figures of 2026 (before the new
    // rule's date) are the same.
    let out = assist(dir.path(), &["--policies", &p, "rebuild"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (after, quiet) = figures(dir.path(), &with);
    assert!(!quiet.contains(OTHER_RULES), "{quiet}");
    assert_eq!(after, before, "history before 2027 keeps its figures");
    assert_ne!(
        serde_json::from_slice::<Value>(
            &assist(dir.path(), &["--policies", &p, "policies", "--json"]).stdout
        )
        .unwrap()["views_fingerprint"],
        recorded
    );
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
    // Bytes that are not JSON cannot be checked for personal values: none is kept.
    assert_eq!(out, "partition 4 offset 0: not JSON: expected ident at line 1 column 2 (0 bytes kept, redacted)\n1 dead letters\n");
}

#[test]
fn erasing_a_person_clears_what_their_dead_letters_kept() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let poison = br#"{"note":"no personal value here"}"#;
    rt.block_on(async {
        use assist_log::{AppendBatch, Appender, EmbeddedLog, LogEvent};
        let log = EmbeddedLog::open(&dir.path().join("log.db"), None)
            .await
            .unwrap();
        let poison = LogEvent {
            event_id: uuid::Uuid::now_v7(),
            stream: PERSON.into(),
            payload: poison.to_vec(),
        };
        log.append(AppendBatch::new(vec![poison])).await.unwrap();
        log.close().await;
    });
    let file = write(dir.path(), "in.jsonl", &jsonl(&[registration()]));
    assert_eq!(
        assist(dir.path(), &["ingest", &file]).status.code(),
        Some(0)
    );
    let listed = stdout(&assist(dir.path(), &["deadletters"]));
    assert!(
        listed.contains(&format!("({} bytes)", poison.len())),
        "{listed}"
    );
    let erased = stdout(&assist(dir.path(), &["erase", PERSON]));
    assert!(
        erased.ends_with(&format!(
            "{PERSON}: cleared what 1 dead letters kept of the person\n"
        )),
        "{erased}"
    );
    let listed = stdout(&assist(dir.path(), &["deadletters"]));
    assert!(listed.contains("(0 bytes kept, redacted)"), "{listed}");
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
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: cannot reach Kafka at 127.0.0.1:1 within 10 s: "),
        "{err}"
    );
}

// ---------------------------------------------------------------- commands that say what is true

/// Runs `assist` with its standard output closed before it writes (`assist … | head -c0`).
fn assist_into_closed_pipe(data_dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_assist"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("assist runs");
    drop(child.stdout.take());
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_reader_that_closes_the_pipe_ends_the_output_quietly() {
    let dir = county();
    for args in [
        &["sla"][..],
        &["caseload", "--json"],
        &["audit", "findings"],
        &["sla", "clocks", "--limit", "0"],
    ] {
        let out = assist_into_closed_pipe(dir.path(), args, None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn ingest_into_a_closed_pipe_stores_everything_and_keeps_its_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let mut bad = contact("01934a5e-1002-7002-8000-000000000002");
    bad["actor"]["region"] = json!("3501");
    let input = jsonl(&[registration(), bad]);
    let out = assist_into_closed_pipe(dir.path(), &["ingest", "-"], Some(input.as_bytes()));
    assert_eq!(
        out.status.code(),
        Some(1),
        "one line was rejected: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let h: Value =
        serde_json::from_slice(&assist(dir.path(), &["history", PERSON, "--json"]).stdout).unwrap();
    assert_eq!(h["events"].as_array().unwrap().len(), 1);
}

#[test]
fn reading_commands_on_a_data_dir_without_a_log_fail_and_create_nothing() {
    let parent = tempfile::tempdir().unwrap();
    let typo = parent.path().join("asist-data");
    for args in [
        &["verify"][..],
        &["history", PERSON],
        &["sla"],
        &["sla", "clocks"],
        &["caseload"],
        &["audit", "findings"],
        &["deadletters"],
        &["project"],
        &["rebuild"],
        &["erase", PERSON],
    ] {
        let out = assist(&typo, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.starts_with("error: no event log in the data dir "),
            "{args:?}: {err}"
        );
        assert!(!typo.exists(), "{args:?} created the data dir");
    }
}

#[test]
fn two_ingests_started_at_once_on_a_fresh_data_dir_both_succeed() {
    let parent = tempfile::tempdir().unwrap();
    let input = parent.path().join("in.jsonl");
    let input = input.to_str().unwrap();
    let sim = assist(
        parent.path(),
        &[
            "simulate",
            "--persons",
            "30",
            "--days",
            "10",
            "--seed",
            "4",
            "--out",
            input,
        ],
    );
    assert_eq!(sim.status.code(), Some(0));
    let lines = std::fs::read_to_string(input).unwrap().lines().count() as u64;
    for trial in 0..5 {
        let dir = parent.path().join(format!("d{trial}"));
        let run = || {
            Command::new(env!("CARGO_BIN_EXE_assist"))
                .arg("--data-dir")
                .arg(&dir)
                .args(["ingest", input])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (run(), run());
        let mut accepted = 0;
        for child in [a, b] {
            let out = child.wait_with_output().unwrap();
            let text = stdout(&out);
            assert_eq!(
                out.status.code(),
                Some(0),
                "trial {trial}: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let n: u64 = text
                .strip_prefix("accepted ")
                .and_then(|t| t.split(',').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{text}"));
            accepted += n;
        }
        assert_eq!(accepted, lines, "trial {trial}: each line stored once");
    }
}

#[test]
fn logs_written_to_a_pipe_carry_no_terminal_escape_codes() {
    let dir = tempfile::tempdir().unwrap();
    let out = assist(dir.path(), &["demo", "--persons", "10", "--days", "10"]);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("DEBUG"),
        "the run logged nothing to check: {err}"
    );
    assert!(!err.contains('\u{1b}'), "an escape code reached the log");
}

#[test]
fn help_documents_what_each_exit_status_means() {
    let out = stdout(&assist(Path::new("."), &["--help"]));
    assert!(
        out.contains("Exit status:\n  0  done\n  1  done, but some input was refused"),
        "{out}"
    );
    assert!(out.contains("  2  the command failed"), "{out}");
}

#[test]
fn an_unreachable_postgres_store_names_the_cause() {
    let dir = county();
    let out = assist(
        dir.path(),
        &[
            "--store",
            "postgres://postgres:secret@127.0.0.1:1/none",
            "sla",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("Connection refused"), "{err}");
    assert!(
        !err.contains("secret"),
        "the password is never shown: {err}"
    );
    assert!(!err.contains("pool timed out"), "{err}");
}

#[test]
fn an_error_prints_each_cause_once_on_its_own_line() {
    let dir = county();
    let out = assist(
        dir.path(),
        &["--store", "sqlite:/nonexistent-dir/views.db", "sla"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    // The debug log lines of the test harness come first.
    let lines: Vec<&str> = err
        .lines()
        .skip_while(|l| !l.starts_with("error: "))
        .collect();
    assert_eq!(lines[0], "error: cannot open the view store", "{err}");
    assert!(
        lines[1].starts_with("  caused by: store sqlite:/nonexistent-dir/views.db: "),
        "{err}"
    );
    assert_eq!(
        err.matches("unable to open database file").count(),
        1,
        "{err}"
    );
}

#[test]
fn times_print_in_china_time_by_default_and_in_utc_when_asked() {
    let dir = county();
    let china = stdout(&assist(dir.path(), &["sla", "--at", "2026-02-20"]));
    assert!(
        china.starts_with("SLA at 2026-02-20T23:59:59.999+08:00 "),
        "{china}"
    );
    let utc = stdout(&assist(dir.path(), &["--utc", "sla", "--at", "2026-02-20"]));
    assert!(utc.starts_with("SLA at 2026-02-20T15:59:59.999Z "), "{utc}");
    let tz = Command::new(env!("CARGO_BIN_EXE_assist"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["sla", "--json", "--at", "2026-02-20"])
        .env("ASSIST_TZ", "UTC")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&tz.stdout).unwrap();
    assert_eq!(v["at"], "2026-02-20T15:59:59.999Z");
    let v: Value = serde_json::from_slice(
        &assist(dir.path(), &["sla", "--json", "--at", "2026-02-20"]).stdout,
    )
    .unwrap();
    assert_eq!(v["at"], "2026-02-20T23:59:59.999+08:00");
    assert!(
        v["breached"][0]["due_at"]
            .as_str()
            .unwrap()
            .ends_with("+08:00"),
        "{v}"
    );
}

#[test]
fn utc_on_the_command_line_wins_over_a_zone_set_in_the_environment() {
    let dir = county();
    let out = Command::new(env!("CARGO_BIN_EXE_assist"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--utc", "sla", "--json", "--at", "2026-02-20"])
        .env("ASSIST_TZ", "+08:00")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["at"], "2026-02-20T15:59:59.999Z");
}

#[test]
fn sla_and_caseload_refuse_the_same_bad_region_prefixes() {
    let dir = county();
    for bad in ["abc", "35012100", "350", "99"] {
        for cmd in ["sla", "caseload"] {
            let out = assist(dir.path(), &[cmd, "--region", bad]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{cmd} {bad}: {err}");
            assert!(err.contains("a region prefix must"), "{cmd} {bad}: {err}");
        }
    }
}

#[test]
fn under_a_region_filter_the_province_and_city_lines_say_they_count_only_that_part() {
    let dir = county();
    let out = stdout(&assist(
        dir.path(),
        &["sla", "--at", "2026-03-01", "--region", "350121"],
    ));
    assert!(out.contains("  province 35 (only 350121) "), "{out}");
    assert!(out.contains("  city     3501 (only 350121) "), "{out}");
    assert!(out.contains("  county   350121 "), "{out}");
    let v: Value = serde_json::from_slice(
        &assist(
            dir.path(),
            &["sla", "--json", "--at", "2026-03-01", "--region", "350121"],
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(v["by_region"][0]["only"], "350121");
    assert!(v["by_region"][2].get("only").is_none());
}

#[test]
fn the_clocks_of_every_status_are_listed_and_add_up_to_the_summary() {
    let dir = county();
    let at = "2026-03-01";
    let summary: Value =
        serde_json::from_slice(&assist(dir.path(), &["sla", "--json", "--at", at]).stdout).unwrap();
    let mut listed = 0;
    for status in [
        "on_track",
        "at_risk",
        "paused",
        "breached",
        "met",
        "met_late",
        "cancelled",
    ] {
        let v: Value = serde_json::from_slice(
            &assist(
                dir.path(),
                &[
                    "sla", "clocks", "--json", "--at", at, "--status", status, "--limit", "0",
                ],
            )
            .stdout,
        )
        .unwrap();
        let clocks = v["clocks"].as_array().unwrap();
        assert_eq!(
            v["total"], summary["total"]["by_status"][status],
            "{status}"
        );
        assert_eq!(clocks.len() as u64, v["total"].as_u64().unwrap());
        assert!(clocks.iter().all(|c| c["status"] == status), "{status}");
        listed += clocks.len() as u64;
    }
    assert_eq!(listed, summary["total"]["total"].as_u64().unwrap());
    assert!(
        summary["total"]["by_status"]["met"].as_u64().unwrap() > 0,
        "the workload has met clocks to list"
    );
}

#[test]
fn clocks_are_listed_by_policy_step_region_and_caseworker_a_page_at_a_time() {
    let dir = county();
    let list = |args: &[&str]| -> Value {
        let mut all = vec!["sla", "clocks", "--json", "--at", "2026-03-01"];
        all.extend_from_slice(args);
        serde_json::from_slice(&assist(dir.path(), &all).stdout).unwrap()
    };
    let all = list(&["--limit", "0"]);
    let every = all["clocks"].as_array().unwrap();
    let first = &every[0];
    let (policy, step) = first["step"].as_str().unwrap().split_once('/').unwrap();
    let by_step = list(&["--policy", policy, "--step", step, "--limit", "0"]);
    let expected = every.iter().filter(|c| c["step"] == first["step"]).count();
    assert_eq!(by_step["total"].as_u64().unwrap() as usize, expected);
    let county = list(&["--region", "350121", "--limit", "0"]);
    assert!(county["clocks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["region"].as_str().unwrap().starts_with("350121")));
    let worker = first["caseworker"].as_str().unwrap();
    let mine = list(&["--caseworker", worker, "--limit", "0"]);
    assert!(mine["clocks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["caseworker"] == worker));
    let page2 = list(&["--limit", "5", "--offset", "5"]);
    assert_eq!(page2["clocks"].as_array().unwrap()[..], every[5..10]);
}

#[test]
fn sla_explain_at_a_time_lists_and_counts_only_what_had_occurred_by_then() {
    let dir = county();
    let met: Value = serde_json::from_slice(
        &assist(
            dir.path(),
            &[
                "sla",
                "clocks",
                "--json",
                "--at",
                "2026-03-01",
                "--status",
                "met",
                "--limit",
                "0",
            ],
        )
        .stdout,
    )
    .unwrap();
    // A clock met some time after it started, so there is a moment in between.
    let clock = met["clocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["started_at"].as_str().unwrap()[..10] < c["due_at"].as_str().unwrap()[..10])
        .expect("a met clock")
        .clone();
    let id = clock["clock_id"].as_str().unwrap();
    let explain = |at: &str| -> Value {
        serde_json::from_slice(
            &assist(
                dir.path(),
                &["--utc", "sla", "explain", id, "--json", "--at", at],
            )
            .stdout,
        )
        .unwrap()
    };
    let after = explain("2026-03-01");
    let met_fact = after["facts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["role"] == "met")
        .expect("the fact that met it")
        .clone();
    // One millisecond before the meeting fact occurred: it is not listed, nor counted.
    let met_at =
        chrono::DateTime::parse_from_rfc3339(met_fact["occurred_at"].as_str().unwrap()).unwrap();
    let before_at = (met_at - chrono::Duration::milliseconds(1)).to_rfc3339();
    let before = explain(&before_at);
    let facts = before["facts"].as_array().unwrap();
    assert!(facts.iter().all(|f| f["role"] != "met"), "{before}");
    assert!(facts
        .iter()
        .all(|f| f["occurred_at"].as_str().unwrap() < met_fact["occurred_at"].as_str().unwrap()));
    assert_eq!(
        before["counted"].as_u64().unwrap(),
        after["counted"].as_u64().unwrap() - 1,
        "the meeting fact is not counted yet"
    );
    assert_ne!(before["clock"]["status"], "met");
}

#[test]
fn sla_explain_at_a_time_before_the_clock_started_is_an_error() {
    let dir = county();
    let all: Value = serde_json::from_slice(
        &assist(
            dir.path(),
            &[
                "sla",
                "clocks",
                "--json",
                "--at",
                "2026-03-01",
                "--limit",
                "1",
            ],
        )
        .stdout,
    )
    .unwrap();
    let clock = &all["clocks"][0];
    let started =
        chrono::DateTime::parse_from_rfc3339(clock["started_at"].as_str().unwrap()).unwrap();
    let before = (started - chrono::Duration::seconds(1)).to_rfc3339();
    let id = clock["clock_id"].as_str().unwrap();
    let out = assist(dir.path(), &["sla", "explain", id, "--at", &before]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("had not started by"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn options_of_sla_given_before_a_subcommand_are_refused_not_ignored() {
    let dir = county();
    for (args, named) in [
        (&["sla", "--region", "350121", "clocks"][..], "--region"),
        (
            &["sla", "--caseworker", "cw-350121-001", "clocks"],
            "--caseworker",
        ),
        (&["sla", "--limit", "3", "clocks"], "--limit"),
        (&["sla", "--region", "3501", "explain", "x"], "--region"),
    ] {
        let out = assist(dir.path(), args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.starts_with(&format!("error: {named} given before")),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // After the subcommand they filter, as documented.
    let ok = assist(dir.path(), &["sla", "clocks", "--region", "350121"]);
    assert_eq!(ok.status.code(), Some(0));
}

#[test]
fn history_json_shows_the_envelope_in_china_time_and_the_data_as_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let looks_like_a_time = "2026-03-01T00:00:00Z";
    let training = event(
        "training_referred",
        "01934a5e-100a-700a-8000-00000000000a",
        json!({"course_id": "C-1", "course_name": looks_like_a_time,
               "provider": "Minhou Vocational School", "subsidised": true}),
    );
    let file = write(dir.path(), "in.jsonl", &jsonl(&[registration(), training]));
    assert_eq!(
        assist(dir.path(), &["ingest", &file]).status.code(),
        Some(0)
    );
    let v: Value =
        serde_json::from_slice(&assist(dir.path(), &["history", PERSON, "--json"]).stdout).unwrap();
    let e = &v["events"][1]["event"];
    assert_eq!(e["occurred_at"], "2026-03-02T09:00:00+08:00");
    assert_eq!(e["recorded_at"], "2026-03-02T10:00:00+08:00");
    assert_eq!(e["data"]["course_name"], looks_like_a_time);
    let text = stdout(&assist(dir.path(), &["history", PERSON]));
    assert!(text.contains(looks_like_a_time), "{text}");
}

#[test]
fn history_of_an_unknown_stream_is_an_error_like_erase() {
    let dir = county();
    let unknown = "person-0192f0c1-8a3b-7cde-9f00-00000000dead";
    for args in [&["history", unknown][..], &["erase", unknown]] {
        let out = assist(dir.path(), args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("has no events in the log"), "{args:?}: {err}");
    }
}

#[test]
fn history_warns_about_a_record_altered_after_it_was_projected() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "in.jsonl",
        &jsonl(&[
            registration(),
            contact("01934a5e-1002-7002-8000-000000000002"),
        ]),
    );
    assert_eq!(
        assist(dir.path(), &["ingest", &input]).status.code(),
        Some(0)
    );
    let clean = assist(dir.path(), &["history", PERSON]);
    assert!(!String::from_utf8_lossy(&clean.stderr).contains("warning"));
    // Someone with write access to log.db changes the contact's channel.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let url = format!("sqlite://{}", dir.path().join("log.db").display());
        let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let changed = sqlx::query(
            "UPDATE events SET payload = CAST(replace(CAST(payload AS TEXT), '\"phone\"', '\"visit\"') AS BLOB) WHERE payload LIKE '%contact_made%'",
        )
        .execute(&mut db)
        .await
        .unwrap();
        assert_eq!(changed.rows_affected(), 1);
        db.close().await.unwrap();
    });
    let out = assist(dir.path(), &["history", PERSON]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: the record at partition 4 offset 1 does not match the hash the audit trail recorded for it"),
        "{err}"
    );
    let v: Value =
        serde_json::from_slice(&assist(dir.path(), &["history", PERSON, "--json"]).stdout).unwrap();
    assert_eq!(v["events"][1]["altered"], true);
    assert!(v["events"][0].get("altered").is_none());
}

/// A fresh PostgreSQL database for one test (the test command provides the server).
fn fresh_postgres_db(rt: &tokio::runtime::Runtime, name: &str) -> String {
    let admin = std::env::var("ASSIST_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut c)
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await
            .unwrap();
    });
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    format!("{base}/{name}")
}

#[test]
fn project_rides_out_a_postgres_that_drops_its_connections() {
    let dir = tempfile::tempdir().unwrap();
    let demo = assist(
        dir.path(),
        &["demo", "--persons", "40", "--days", "60", "--seed", "5"],
    );
    assert_eq!(demo.status.code(), Some(0));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = format!("assist_outage_{}", std::process::id());
    let url = fresh_postgres_db(&rt, &db);
    let admin = std::env::var("ASSIST_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    // The views' database is set up and in use; then much more is recorded.
    let first = assist(dir.path(), &["--store", &url, "project"]);
    assert_eq!(first.status.code(), Some(0));
    let more = dir.path().join("more.jsonl");
    let more = more.to_str().unwrap();
    let sim = assist(
        dir.path(),
        &[
            "simulate",
            "--persons",
            "1500",
            "--days",
            "60",
            "--seed",
            "6",
            "--out",
            more,
        ],
    );
    assert_eq!(sim.status.code(), Some(0));
    assert_eq!(assist(dir.path(), &["ingest", more]).status.code(), Some(0));
    let child = Command::new(env!("CARGO_BIN_EXE_assist"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--store", &url, "project"])
        .env("ASSIST_LOG", "warn")
        .env("ASSIST_PROJECTION_BATCH", "500")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The fault, as its clients see a restart: every connection to the views' database is
    // cut, again and again, while `project` runs.
    let pid = child.id();
    let cutter = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
            let mut cut = 0u64;
            for round in 0.. {
                tokio::time::sleep(std::time::Duration::from_millis(if round % 2 == 0 {
                    150
                } else {
                    400
                }))
                .await;
                let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| !s.contains(") Z "));
                if !alive || round == 40 {
                    break;
                }
                let n: Vec<(bool,)> = sqlx::query_as(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                )
                .bind(&db)
                .fetch_all(&mut c)
                .await
                .unwrap();
                cut += n.len() as u64;
            }
            cut
        })
    });
    let out = child.wait_with_output().unwrap();
    let cut = cutter.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(cut > 0, "no connection was cut");
    assert!(
        err.contains("lost the store's connection; retrying"),
        "the fault landed while it projected: {err}"
    );
    // What the tries before the last committed is counted too.
    let recorded = std::fs::read_to_string(more).unwrap().lines().count();
    let said = stdout(&out);
    assert!(
        said.starts_with(&format!("projected {recorded} records: ")),
        "{said}"
    );
    // The views are those of a projection that nothing disturbed (the SQLite views),
    // compared as stored: clocks, caseload and findings, all of them.
    let read = |store: Option<&str>, command: &[&str]| -> Value {
        let mut args: Vec<&str> = store.map(|s| vec!["--store", s]).unwrap_or_default();
        args.extend_from_slice(command);
        let mut v: Value = serde_json::from_slice(&assist(dir.path(), &args).stdout).unwrap();
        if let Some(o) = v.as_object_mut() {
            o.remove("at");
        }
        v
    };
    for command in [
        &["sla", "--json", "--at", "2026-03-01"][..],
        &[
            "sla",
            "clocks",
            "--json",
            "--at",
            "2026-03-01",
            "--limit",
            "0",
        ],
        &["caseload", "--json", "--all", "--limit", "0"],
        &["audit", "findings", "--json"],
    ] {
        let (pg, sqlite) = (read(Some(&url), command), read(None, command));
        assert!(pg == sqlite, "{command:?} differs after the outage");
        assert!(
            sqlite.to_string().len() > 1000,
            "{command:?} read next to nothing"
        );
    }
}

/// Runs `assist` on `dir` as on read-only media: as root in a private mount namespace
/// where `dir` is bind-mounted read-only, otherwise with the directory's write permission
/// taken away for the run.
fn assist_read_only(dir: &Path, args: &[&str]) -> Output {
    let bin = env!("CARGO_BIN_EXE_assist");
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    if root {
        let mountpoint = tempfile::tempdir().unwrap();
        let out = Command::new("unshare")
            .args(["-m", "sh", "-c"])
            .arg(
                r#"mount --bind "$1" "$2" || exit 98; mount -o remount,bind,ro "$2" || exit 98; if touch "$2/probe" 2>/dev/null; then exit 99; fi; shift 2; exec "$@""#,
            )
            .arg("sh")
            .arg(dir)
            .arg(mountpoint.path())
            .arg(bin)
            .arg("--data-dir")
            .arg(mountpoint.path())
            .args(args)
            .output()
            .expect("unshare runs");
        assert_ne!(
            out.status.code(),
            Some(98),
            "the read-only bind mount could not be made: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_ne!(
            out.status.code(),
            Some(99),
            "the read-only mount was writable"
        );
        out
    } else {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        let out = Command::new(bin)
            .arg("--data-dir")
            .arg(dir)
            .args(args)
            .output()
            .expect("assist runs");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        out
    }
}

fn file_contents(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = walk(dir)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn reading_commands_run_on_a_read_only_copy_of_the_data_dir_and_change_nothing() {
    let dir = county();
    // Events the views have not seen yet: the copy must catch up without writing.
    let more = write(dir.path(), "more.jsonl", &jsonl(&[registration()]));
    assert_eq!(
        assist(dir.path(), &["ingest", &more]).status.code(),
        Some(0)
    );
    std::fs::remove_file(&more).unwrap();
    let at = "2026-12-01T00:00:00+08:00";
    let commands: Vec<Vec<&str>> = vec![
        vec!["verify"],
        vec!["history", PERSON],
        vec!["sla", "--at", at, "--json"],
        vec!["sla", "clocks", "--at", at, "--json", "--limit", "0"],
        vec!["caseload", "--json", "--limit", "0"],
        vec!["audit", "findings"],
        vec!["deadletters"],
    ];
    let before = file_contents(dir.path());
    let mut read_only = Vec::new();
    for args in &commands {
        let out = assist_read_only(dir.path(), args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(err.contains("the data dir is read-only"), "{args:?}: {err}");
        read_only.push(stdout(&out));
    }
    assert!(
        file_contents(dir.path()) == before,
        "a reading command changed a file of the read-only data dir"
    );
    for (args, ro) in commands.iter().zip(&read_only) {
        let out = assist(dir.path(), args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        // The caseload says when it was computed: the one line that may differ.
        let same = |a: &str, b: &str| {
            let keep = |t: &str| -> Vec<String> {
                t.lines()
                    .filter(|l| !l.starts_with("  \"at\": "))
                    .map(str::to_owned)
                    .collect()
            };
            keep(a) == keep(b)
        };
        assert!(
            same(&stdout(&out), ro),
            "{args:?} differs on the read-only copy"
        );
    }
    assert!(
        read_only[1].contains(NAME),
        "history opened the personal fields"
    );
}

/// The next offsets the views in `url` have reached, summed over `partitions`; `None`
/// while the database cannot be read (its connections are being cut).
async fn projected_in_async(url: &str, partitions: u32) -> Option<u64> {
    let store = assist_projections::Store::open(url).await.ok()?;
    let mut sum = 0;
    for p in 0..partitions {
        let (next, _) = assist_projections::runner::checkpoint(&store, 1, p)
            .await
            .ok()?;
        sum += next;
    }
    store.close().await;
    Some(sum)
}

fn projected_in(rt: &tokio::runtime::Runtime, url: &str, partitions: u32) -> Option<u64> {
    rt.block_on(projected_in_async(url, partitions))
}

#[test]
fn follow_rides_out_a_postgres_that_drops_its_connections() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    cluster.create_topic("events", 8, 1).unwrap();
    let log = format!("kafka:{}/events", cluster.bootstrap_servers());
    let input = dir.path().join("in.jsonl");
    let input = input.to_str().unwrap();
    let sim = assist(
        dir.path(),
        &[
            "simulate",
            "--persons",
            "600",
            "--days",
            "60",
            "--seed",
            "8",
            "--out",
            input,
        ],
    );
    assert_eq!(sim.status.code(), Some(0));
    let recorded = std::fs::read_to_string(input).unwrap().lines().count() as u64;
    // Recorded on the topic, and projected once, undisturbed, into a SQLite reference.
    let reference = format!("sqlite:{}", dir.path().join("reference.db").display());
    let ingest = assist(
        dir.path(),
        &["--log", &log, "--store", &reference, "ingest", input],
    );
    assert_eq!(
        ingest.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ingest.stderr)
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = format!("assist_follow_outage_{}", std::process::id());
    let url = fresh_postgres_db(&rt, &db);
    let admin = std::env::var("ASSIST_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let child = Command::new(env!("CARGO_BIN_EXE_assist"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--log", &log, "--store", &url])
        .args(["follow", "--group", "outage", "--interval-ms", "100"])
        .env("ASSIST_LOG", "warn")
        .env("ASSIST_PROJECTION_BATCH", "100")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the worker is projecting, every connection to the views' database is cut,
    // again and again for a few seconds, as a restart would.
    let mut started = false;
    for _ in 0..600 {
        if projected_in(&rt, &url, 8).is_some_and(|n| n > 0) {
            started = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(started, "follow never started projecting");
    let mut cut_while_behind = 0u64;
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
        for round in 0..600 {
            let n: Vec<(bool,)> = sqlx::query_as(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            )
            .bind(&db)
            .fetch_all(&mut c)
            .await
            .unwrap();
            cut_while_behind += n.len() as u64;
            // Cut often enough that a statement in flight is hit, not only idle
            // connections (the pool replaces those unseen).
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            // A restart is over after a few seconds: the cuts stop then.
            if round == 120
                || (round % 10 == 9 && projected_in_async(&url, 8).await == Some(recorded))
            {
                break;
            }
        }
    });
    let mut caught_up = false;
    for _ in 0..1200 {
        if projected_in(&rt, &url, 8) == Some(recorded) {
            caught_up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(caught_up, "follow never caught up: {err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(cut_while_behind > 0, "no connection was cut");
    assert!(
        err.lines().any(|l| l.contains("assist_kafka::group")
            && l.contains("lost the store's connection; retrying")),
        "the fault landed while it projected: {err}"
    );
    // Every record projected once, and again where a cut made its partition of the first
    // build start over.
    let said = stdout(&out);
    let count = |before: &str, after: &str| -> u64 {
        said.split_once(before)
            .and_then(|(_, rest)| rest.split_once(after))
            .map_or(0, |(n, _)| n.parse().unwrap())
    };
    let (projected, again) = (
        count("stopped after projecting ", " records"),
        count("applied) (", " of the records projected again"),
    );
    assert_eq!(projected - again, recorded, "{said}");
    // The views equal the undisturbed projection's, compared as stored.
    let read = |store: &str, command: &[&str]| -> Value {
        let mut args = vec!["--log", &log, "--store", store];
        args.extend_from_slice(command);
        let out = assist(dir.path(), &args);
        let mut v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{command:?}: {}", String::from_utf8_lossy(&out.stderr)));
        if let Some(o) = v.as_object_mut() {
            o.remove("at");
        }
        v
    };
    for command in [
        &[
            "sla",
            "clocks",
            "--json",
            "--at",
            "2026-03-01",
            "--limit",
            "0",
        ][..],
        &["caseload", "--json", "--all", "--limit", "0"],
        &["audit", "findings", "--json"],
    ] {
        let (pg, sqlite) = (read(&url, command), read(&reference, command));
        assert!(pg == sqlite, "{command:?} differs after the outage");
        assert!(
            sqlite.to_string().len() > 1000,
            "{command:?} read next to nothing"
        );
    }
}

#[test]
fn bench_serve_posts_every_event_and_measures_each_read() {
    let dir = tempfile::tempdir().unwrap();
    let out = assist(
        dir.path(),
        &[
            "bench",
            "serve",
            "--persons",
            "60",
            "--days",
            "20",
            "--requests",
            "3",
        ],
    );
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "command line ingest",
        "HTTP ingest",
        "ratio (HTTP / command line)",
        "history (auditor)",
        "caseload page (city)",
        "clock list page (city)",
        "SLA summary (city)",
        "SLA summary (province)",
        "clock page, present (city)",
        "SLA summary, present (prov.)",
        "server process memory:",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
}
