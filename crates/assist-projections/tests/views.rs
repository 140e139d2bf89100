//! The read side, end to end on the real embedded log and real SQL stores: what
//! supervisors and auditors see for a hand-written scenario, and the guarantees of the
//! runner (exactly once, dead letters, rebuild, determinism, SQLite = PostgreSQL).

mod support;

use assist_log::{
    AppendBatch, LogEvent, PartitionInfo, PartitionReader, ProjectionLog, Record, StreamReader,
};
use assist_projections::audit::{findings::findings, verify::verify};
use assist_projections::caseload::query::{caseload, caseload_as_of, CaseFilter};
use assist_projections::sla::report::{
    clocks_page, explain, list_clocks, load_clocks, report, summarize, summarize_listing,
    ClockLine, ClockWalk, SlaFilter,
};
use assist_projections::sla::Rules;
use assist_projections::sla::{Clock, Status};
use assist_projections::{Runner, Store};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use std::collections::BTreeSet;
use support::*;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The shipped holiday calendar.
fn calendar() -> assist_projections::sla::Calendar {
    Rules::shipped().unwrap().calendar
}

const END_OF_MARCH: &str = "2026-03-31T16:00:00Z";

async fn all_events(recorder: &assist_ingest::Recorder) -> Vec<assist_catalog::Event> {
    let log = recorder.log();
    let mut out = Vec::new();
    for p in log.partitions().await.unwrap() {
        for r in log
            .read_partition(p.partition, 0, usize::MAX)
            .await
            .unwrap()
        {
            out.extend(assist_projections::runner::decode_record(&r).ok());
        }
    }
    out
}

#[tokio::test]
async fn a_stored_event_decodes_straight_from_its_bytes_as_it_does_through_a_json_value() {
    // Every example of every type and version, as the log stores them: those at their
    // type's current version take the fast path and give the very event the JSON value
    // path gives; the others (older versions, to be upcast) are left to that path.
    let dir = tempfile::tempdir().unwrap();
    let recorder = log_with(dir.path(), &scenario_jsonl()).await;
    let log = recorder.log();
    let (mut fast, mut upcast) = (0, 0);
    for p in log.partitions().await.unwrap() {
        for r in log
            .read_partition(p.partition, 0, usize::MAX)
            .await
            .unwrap()
        {
            let wire: assist_catalog::WireEvent = serde_json::from_slice(&r.payload).unwrap();
            let current = assist_catalog::event_type(&wire.type_name).unwrap().version;
            let written = wire.schema_version;
            let through_value =
                assist_catalog::decode_wire_event(wire, assist_catalog::Form::Stored).unwrap();
            match assist_catalog::decode_stored(&r.payload) {
                Some(event) => {
                    assert_eq!(written, current);
                    assert_eq!(event, through_value);
                    fast += 1;
                }
                None => {
                    assert!(written < current, "{r:?} missed the fast path");
                    upcast += 1;
                }
            }
        }
    }
    assert!(fast > 30 && upcast > 0, "fast {fast}, upcast {upcast}");
}

#[tokio::test]
async fn a_stored_event_that_breaks_a_rule_is_not_taken_by_the_fast_path() {
    // Valid JSON of the right shape, but recorded before it occurred: only the precise
    // path may answer, and it names the rule.
    let dir = tempfile::tempdir().unwrap();
    let recorder = log_with(dir.path(), &scenario_jsonl()).await;
    let log = recorder.log();
    let mut first = None;
    for p in log.partitions().await.unwrap() {
        first = first.or(log.read_partition(p.partition, 0, 1).await.unwrap().pop());
    }
    let r = first.expect("the scenario has events");
    let mut value: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
    value["recorded_at"] = serde_json::json!("2001-01-01T00:00:00Z");
    let payload = serde_json::to_vec(&value).unwrap();
    assert_eq!(assist_catalog::decode_stored(&payload), None);
    let bad = assist_log::Record { payload, ..r };
    let reason = assist_projections::runner::decode_record(&bad).unwrap_err();
    assert!(reason.contains("is after recorded_at"), "{reason}");
}

#[tokio::test]
async fn a_backdated_fact_does_not_leak_into_an_earlier_day_of_the_caseload() {
    // The scenario's P5 was contacted on March 15, recorded on March 25.
    let (_d, recorder, _store, _gen) = scenario().await;
    let events = all_events(&recorder).await;
    let rules = Rules::shipped().unwrap();
    let filter = CaseFilter {
        include_closed: true,
        ..CaseFilter::default()
    };
    let stage_on = |day: &str| {
        let load = caseload_as_of(&rules, events.iter(), &filter, at(day));
        load.cases
            .iter()
            .find(|c| c.case.subject.ends_with("0000000000b5"))
            .map(|c| c.case.stage.name())
    };
    assert_eq!(stage_on("2026-03-14T12:00:00Z"), Some("alerted"));
    assert_eq!(
        stage_on("2026-03-15T12:00:00Z"),
        Some("contacted"),
        "counted from when it happened"
    );
}

async fn scenario() -> (tempfile::TempDir, assist_ingest::Recorder, Store, i64) {
    let dir = tempfile::tempdir().unwrap();
    let recorder = log_with(dir.path(), &scenario_jsonl()).await;
    let store = sqlite_store(dir.path(), "views.db").await;
    let gen = project(&recorder, &store, 7).await;
    (dir, recorder, store, gen)
}

#[tokio::test]
async fn the_scenario_caseload() {
    let (_d, _r, store, gen) = scenario().await;
    let filter = CaseFilter {
        include_closed: true,
        ..CaseFilter::default()
    };
    let load = caseload(&store, &calendar(), gen, &filter, at(END_OF_MARCH))
        .await
        .unwrap();
    insta::assert_json_snapshot!("scenario_caseload", load);
}

#[tokio::test]
async fn a_filtered_caseload_is_the_whole_caseload_cut_to_the_filter_next_steps_included() {
    let dir = tempfile::tempdir().unwrap();
    let mut jsonl = scenario_jsonl();
    jsonl.extend(assist_simulate::to_jsonl(&assist_simulate::simulate(
        200, 60, 13,
    )));
    let recorder = log_with(dir.path(), &jsonl).await;
    let store = sqlite_store(dir.path(), "views.db").await;
    let gen = project(&recorder, &store, 500).await;
    // The scenario's person moved from 350121 to 350102 on March 10th, with steps running.
    for at in [at("2026-03-11T00:00:00Z"), at(END_OF_MARCH)] {
        let all = CaseFilter {
            include_closed: true,
            ..CaseFilter::default()
        };
        let whole = caseload(&store, &calendar(), gen, &all, at).await.unwrap();
        let worker = whole.cases[0].case.caseworker.clone();
        for (region, caseworker) in [
            (Some("350102"), None),
            (Some("350121"), None),
            (Some("3501"), None),
            (None, Some(worker.clone())),
        ] {
            let filter = CaseFilter {
                region: region.map(str::to_string),
                caseworker: caseworker.clone(),
                ..all.clone()
            };
            let cut: Vec<_> = whole
                .cases
                .iter()
                .filter(|c| region.is_none_or(|r| c.case.region.starts_with(r)))
                .filter(|c| caseworker.as_ref().is_none_or(|w| *w == c.case.caseworker))
                .cloned()
                .collect();
            let got = caseload(&store, &calendar(), gen, &filter, at)
                .await
                .unwrap();
            assert!(!cut.is_empty(), "{region:?} {caseworker:?} selects nothing");
            assert!(got.cases == cut, "{region:?} {caseworker:?} at {at}");
        }
    }
}

#[tokio::test]
async fn the_scenario_caseload_as_it_stood_on_march_15() {
    let (_d, recorder, _store, _gen) = scenario().await;
    let filter = CaseFilter {
        include_closed: true,
        ..CaseFilter::default()
    };
    let events = all_events(&recorder).await;
    let load = caseload_as_of(
        &Rules::shipped().unwrap(),
        events.iter(),
        &filter,
        at("2026-03-15T16:00:00Z"),
    );
    let p4 = load
        .cases
        .iter()
        .find(|c| c.case.subject.ends_with("0000000000b4"))
        .unwrap();
    assert!(p4.case.open, "closed only on the 19th");
    assert_eq!(
        p4.case.stage.name(),
        "alerted",
        "contacted only on the 18th"
    );
    insta::assert_json_snapshot!("scenario_caseload_as_of_march_15", load);
}

#[tokio::test]
async fn the_scenario_sla_summary() {
    let (_d, _r, store, gen) = scenario().await;
    let clocks = load_clocks(&store, gen).await.unwrap();
    let r = report(
        &clocks,
        &calendar(),
        at(END_OF_MARCH),
        Duration::hours(24),
        &SlaFilter::default(),
    );
    insta::assert_json_snapshot!("scenario_sla", r);
}

#[tokio::test]
async fn the_scenario_audit_findings() {
    let (_d, _r, store, gen) = scenario().await;
    let list = findings(&store, gen, Duration::hours(72)).await.unwrap();
    let kinds: Vec<&str> = list.iter().map(|f| f.kind.as_str()).collect();
    for k in [
        "offer_without_open_case",
        "step_after_close",
        "backdated",
        "cleared_without_employed_member",
        "cleared_after_job_ended",
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    insta::assert_json_snapshot!("scenario_findings", list);
}

const HOUSEHOLD: &str = "household-0192f0c1-8a3b-7cde-9f00-00000000c001";
const MEMBER_A: &str = "person-0192f0c1-8a3b-7cde-9f00-0000000000c1";
const MEMBER_B: &str = "person-0192f0c1-8a3b-7cde-9f00-0000000000c2";

/// One fact as a JSON line, recorded when it occurred unless `recorded` says otherwise;
/// times are China time on a day of March 2026 (`"17T09"` is March 17th, 09:00).
fn fact(n: u32, stream: &str, ty: &str, occurred: &str, data: serde_json::Value) -> Value {
    let t = |s: &str| format!("2026-03-{s}:00:00+08:00");
    serde_json::json!({
        "event_id": format!("01935000-00c0-7000-8000-0000000c{n:04}"),
        "stream": stream,
        "type": ty,
        "schema_version": 1,
        "occurred_at": t(occurred),
        "recorded_at": t(occurred),
        "actor": {"id": "cw-350121-009", "role": "caseworker", "region": "350121"},
        "data": data,
    })
}

fn recorded(mut fact: Value, at: &str) -> Value {
    fact["recorded_at"] = Value::String(format!("2026-03-{at}:00:00+08:00"));
    fact
}

fn member(person: &str) -> Value {
    serde_json::json!({"person": person, "working_age": true, "able_and_willing": true})
}

fn identified(n: u32, occurred: &str, members: &[&str]) -> Value {
    let members: Vec<Value> = members.iter().map(|m| member(m)).collect();
    fact(
        n,
        HOUSEHOLD,
        "household_identified",
        occurred,
        serde_json::json!({"region": "350121", "members": members}),
    )
}

fn hired(n: u32, person: &str, occurred: &str) -> Value {
    fact(
        n,
        person,
        "hired",
        occurred,
        serde_json::json!({
            "employer": {"id": "91350121MA2XYZ1234", "name": "Minhou Food Processing Co."},
            "job_title": "food packer", "wage": 4200, "wage_period": "month",
            "contract": "fixed_term", "public_welfare_post": false, "starts_on": "2026-03-20"
        }),
    )
}

fn cleared(n: u32, person: &str, occurred: &str) -> Value {
    fact(
        n,
        HOUSEHOLD,
        "household_cleared",
        occurred,
        serde_json::json!({"employed_member": person, "employment": "hired"}),
    )
}

/// The findings about clearings once `facts` are ingested in this order and projected
/// (in batches of `batch`), as (kind, events, detail).
async fn clearing_findings(facts: &[Value], batch: usize) -> Vec<(String, Vec<String>, String)> {
    let dir = tempfile::tempdir().unwrap();
    let mut jsonl = Vec::new();
    for f in facts {
        jsonl.extend(serde_json::to_vec(f).unwrap());
        jsonl.push(b'\n');
    }
    let recorder = log_with(dir.path(), &jsonl).await;
    let store = sqlite_store(dir.path(), "views.db").await;
    let gen = project(&recorder, &store, batch).await;
    findings(&store, gen, Duration::hours(72 * 24))
        .await
        .unwrap()
        .into_iter()
        .filter(|f| f.kind.starts_with("cleared"))
        .map(|f| (f.kind, f.events, f.detail))
        .collect()
}

fn id(n: u32) -> String {
    format!("01935000-00c0-7000-8000-0000000c{n:04}")
}

#[tokio::test]
async fn a_household_cleared_by_naming_someone_who_is_not_its_member_at_that_time_is_a_finding() {
    // B is employed, but joins the household only on the 18th, after the clearing on the 17th.
    let facts = [
        identified(1, "16T09", &[MEMBER_A]),
        hired(2, MEMBER_B, "16T10"),
        cleared(3, MEMBER_B, "17T09"),
        fact(
            4,
            HOUSEHOLD,
            "household_member_linked",
            "18T09",
            serde_json::json!({"member": member(MEMBER_B)}),
        ),
    ];
    assert_eq!(
        clearing_findings(&facts, 100).await,
        vec![(
            "cleared_by_non_member".to_string(),
            vec![id(3)],
            format!("cleared at 2026-03-17T01:00:00.000Z for {MEMBER_B}, who was not a member of the household by then"),
        )]
    );
}

#[tokio::test]
async fn a_household_cleared_by_naming_a_member_who_had_left_it_is_a_finding_with_the_leaving() {
    let facts = [
        identified(1, "16T09", &[MEMBER_A, MEMBER_B]),
        hired(2, MEMBER_B, "16T10"),
        fact(
            3,
            HOUSEHOLD,
            "household_member_unlinked",
            "16T11",
            serde_json::json!({"person": MEMBER_B, "reason": "moved_out"}),
        ),
        cleared(4, MEMBER_B, "17T09"),
    ];
    assert_eq!(
        clearing_findings(&facts, 100).await,
        vec![(
            "cleared_by_non_member".to_string(),
            vec![id(4), id(3)],
            format!("cleared at 2026-03-17T01:00:00.000Z for {MEMBER_B}, who had left the household at 2026-03-16T03:00:00.000Z"),
        )]
    );
}

#[tokio::test]
async fn a_household_cleared_by_naming_a_member_whose_job_had_ended_by_then_is_a_finding() {
    // A was hired on the 16th and lost the job on the 17th; the clearing is on the 18th.
    let facts = [
        identified(1, "16T09", &[MEMBER_A]),
        hired(2, MEMBER_A, "16T10"),
        fact(
            3,
            MEMBER_A,
            "job_lost",
            "17T10",
            serde_json::json!({"reason": "dismissed"}),
        ),
        cleared(4, MEMBER_A, "18T09"),
    ];
    assert_eq!(
        clearing_findings(&facts, 100).await,
        vec![(
            "cleared_after_job_ended".to_string(),
            vec![id(4), id(3)],
            format!("cleared at 2026-03-18T01:00:00.000Z for {MEMBER_A}, whose job had ended at 2026-03-17T02:00:00.000Z"),
        )]
    );
}

#[tokio::test]
async fn a_job_lost_after_the_clearing_or_followed_by_a_new_job_is_no_finding() {
    let lost_after = [
        identified(1, "16T09", &[MEMBER_A]),
        hired(2, MEMBER_A, "16T10"),
        cleared(3, MEMBER_A, "17T09"),
        fact(
            4,
            MEMBER_A,
            "job_lost",
            "18T10",
            serde_json::json!({"reason": "dismissed"}),
        ),
    ];
    assert_eq!(clearing_findings(&lost_after, 100).await, vec![]);
    let hired_again = [
        identified(1, "16T09", &[MEMBER_A]),
        hired(2, MEMBER_A, "16T10"),
        fact(
            3,
            MEMBER_A,
            "job_lost",
            "17T10",
            serde_json::json!({"reason": "dismissed"}),
        ),
        hired(4, MEMBER_A, "17T15"),
        cleared(5, MEMBER_A, "18T09"),
    ];
    assert_eq!(clearing_findings(&hired_again, 100).await, vec![]);
}

#[tokio::test]
async fn household_findings_depend_on_when_facts_occurred_not_on_the_order_they_arrive_in() {
    // The same facts, recorded in two orders, projected one event per batch and all at once:
    // B's link to the household and B's hiring occurred before the clearing, A's job loss
    // too; the clearing naming A finds A's job ended, the one naming B finds nothing.
    let link_b = fact(
        5,
        HOUSEHOLD,
        "household_member_linked",
        "16T12",
        serde_json::json!({"member": member(MEMBER_B)}),
    );
    let lost_a = fact(
        3,
        MEMBER_A,
        "job_lost",
        "17T10",
        serde_json::json!({"reason": "dismissed"}),
    );
    let in_order = vec![
        identified(1, "16T09", &[MEMBER_A]),
        hired(2, MEMBER_A, "16T10"),
        link_b.clone(),
        hired(6, MEMBER_B, "16T13"),
        lost_a.clone(),
        cleared(4, MEMBER_A, "18T09"),
        cleared(7, MEMBER_B, "18T10"),
    ];
    let late = vec![
        identified(1, "16T09", &[MEMBER_A]),
        cleared(4, MEMBER_A, "18T09"),
        cleared(7, MEMBER_B, "18T10"),
        recorded(lost_a, "19T09"),
        recorded(link_b, "19T10"),
        recorded(hired(2, MEMBER_A, "16T10"), "19T11"),
        recorded(hired(6, MEMBER_B, "16T13"), "19T12"),
    ];
    let expected = vec![(
        "cleared_after_job_ended".to_string(),
        vec![id(4), id(3)],
        format!("cleared at 2026-03-18T01:00:00.000Z for {MEMBER_A}, whose job had ended at 2026-03-17T02:00:00.000Z"),
    )];
    for facts in [&in_order, &late] {
        for batch in [1, 100] {
            assert_eq!(
                clearing_findings(facts, batch).await,
                expected,
                "batch {batch}"
            );
        }
    }
}

#[tokio::test]
async fn sla_explain_names_the_facts_behind_a_clock() {
    let (_d, recorder, store, gen) = scenario().await;
    let rules = Rules::shipped().unwrap();
    let clocks = load_clocks(&store, gen).await.unwrap();
    let contact = clocks
        .iter()
        .find(|c| c.subject.ends_with("0000000000b4") && c.step == "contact")
        .unwrap();
    let e = explain(
        &store,
        recorder.log().as_ref(),
        gen,
        &rules,
        &contact.clock_id,
        at(END_OF_MARCH),
        Duration::hours(24),
    )
    .await
    .unwrap()
    .unwrap();
    let roles: Vec<(&str, &str)> = e
        .facts
        .iter()
        .map(|f| (f.role, f.event_type.as_str()))
        .collect();
    assert_eq!(
        roles,
        vec![("started", "alert_raised"), ("met", "contact_made")]
    );
    assert_eq!(
        e.clock.status, "met_late",
        "alert Fri 13th, contact Wed 18th: 2 working days is Tue 17th"
    );
}

#[tokio::test]
async fn verify_finds_nothing_wrong_in_an_untouched_log() {
    let (_d, recorder, store, gen) = scenario().await;
    let v = verify(recorder.log().as_ref(), &store, gen).await.unwrap();
    assert!(v.mismatches.is_empty(), "{:?}", v.mismatches);
    assert_eq!(v.records, 50);
}

/// The scenario projected, then every copy of `needle` in the log's file changed by `edit`
/// (SQLite may keep old copies in free pages), and the log opened again.
async fn scenario_with_log_file_edited(
    needle: &[u8],
    edit: impl Fn(&mut [u8], usize),
) -> (tempfile::TempDir, assist_ingest::Recorder, Store, i64) {
    let dir = tempfile::tempdir().unwrap();
    let recorder = log_with(dir.path(), &scenario_jsonl()).await;
    let store = sqlite_store(dir.path(), "views.db").await;
    let gen = project(&recorder, &store, 100).await;
    drop(recorder);
    // Move everything from the WAL into the database file, then edit the file.
    let path = dir.path().join("log.db");
    let raw = sqlx::SqlitePool::connect(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&raw)
        .await
        .unwrap();
    raw.close().await;
    let mut bytes = std::fs::read(&path).unwrap();
    let hits: Vec<usize> = bytes
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    assert!(!hits.is_empty(), "the payload is in the file");
    for i in hits {
        edit(&mut bytes, i);
    }
    std::fs::write(&path, bytes).unwrap();
    let recorder = assist_ingest::Recorder::open_embedded(dir.path())
        .await
        .unwrap();
    (dir, recorder, store, gen)
}

#[tokio::test]
async fn verify_reports_a_byte_changed_in_the_log_file_with_its_stream_and_event() {
    // The job id of the example job offer, JB-2026-0042, becomes JB-2026-0043.
    let (_d, recorder, store, gen) =
        scenario_with_log_file_edited(b"JB-2026-0042", |b, i| b[i + 11] = b'3').await;
    let v = verify(recorder.log().as_ref(), &store, gen).await.unwrap();
    let bad: Vec<_> = v
        .mismatches
        .iter()
        .filter(|m| m.event_id.is_some())
        .collect();
    assert_eq!(bad.len(), 1, "{:?}", v.mismatches);
    assert_eq!(
        bad[0].stream.as_deref(),
        Some("person-0192f0c1-8a3b-7cde-9f00-0123456789ab")
    );
    assert_eq!(
        bad[0].event_id.as_deref(),
        Some("01934a5e-1007-7007-8000-000000000007")
    );
    assert_eq!(
        bad[0].problem,
        "the event's bytes in the log do not match its hash in the audit store"
    );
    assert!(v
        .mismatches
        .iter()
        .any(|m| m.event_id.is_none() && m.problem.starts_with("the digest of the log")));
}

#[tokio::test]
async fn verify_says_a_tampered_record_that_cannot_be_read_is_there_but_unreadable() {
    // The quote that opens the job id of the example job offer becomes a brace: the record
    // at that offset is no longer JSON.
    let (_d, recorder, store, gen) =
        scenario_with_log_file_edited(b"\"JB-2026-0042\"", |b, i| b[i] = b'{').await;
    let v = verify(recorder.log().as_ref(), &store, gen).await.unwrap();
    let bad: Vec<_> = v
        .mismatches
        .iter()
        .filter(|m| m.event_id.is_some())
        .collect();
    assert_eq!(
        bad.len(),
        1,
        "one mismatch at the record, none after it: {:?}",
        v.mismatches
    );
    assert_eq!(
        bad[0].stream.as_deref(),
        Some("person-0192f0c1-8a3b-7cde-9f00-0123456789ab")
    );
    assert_eq!(
        bad[0].event_id.as_deref(),
        Some("01934a5e-1007-7007-8000-000000000007")
    );
    assert_eq!(
        bad[0].problem,
        "the log record at this offset is there but cannot be read (it is not JSON), and its bytes do not match the hash of the event the audit store holds at this offset: it was altered after it was projected"
    );
    assert!(
        !bad[0].problem.contains("JB-2026"),
        "no bytes of the record echoed"
    );
}

#[tokio::test]
async fn verify_says_a_tampered_record_that_is_json_but_no_event_is_there_but_unreadable() {
    // The job id "JB-2026-0042" (14 bytes with its quotes) becomes the number 12345678901234:
    // still JSON, no longer a valid job_offer_pushed.
    let (_d, recorder, store, gen) = scenario_with_log_file_edited(b"\"JB-2026-0042\"", |b, i| {
        b[i..i + 14].copy_from_slice(b"12345678901234")
    })
    .await;
    let v = verify(recorder.log().as_ref(), &store, gen).await.unwrap();
    let bad: Vec<_> = v
        .mismatches
        .iter()
        .filter(|m| m.event_id.is_some())
        .collect();
    assert_eq!(bad.len(), 1, "{:?}", v.mismatches);
    assert_eq!(
        bad[0].event_id.as_deref(),
        Some("01934a5e-1007-7007-8000-000000000007")
    );
    assert_eq!(
        bad[0].problem,
        "the log record at this offset is there but cannot be read (it is JSON but not a valid event), and its bytes do not match the hash of the event the audit store holds at this offset: it was altered after it was projected"
    );
}

#[tokio::test]
async fn verify_reports_a_byte_changed_in_the_audit_table() {
    let (_d, recorder, store, gen) = scenario().await;
    let victim = "01934a5e-1006-7006-8000-000000000006";
    let dump = store.dump(gen).await.unwrap();
    assert!(dump.contains(victim));
    // One hex digit of the stored hash changes.
    let sql = "UPDATE audit_events SET hash = CASE WHEN substr(hash, 1, 1) = 'a' THEN 'b' ELSE 'a' END || substr(hash, 2) WHERE event_id = $1";
    sqlx::query(sql)
        .bind(victim)
        .execute(
            &sqlx::SqlitePool::connect(&format!("sqlite:{}", _d.path().join("views.db").display()))
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    let v = verify(recorder.log().as_ref(), &store, gen).await.unwrap();
    let first = &v.mismatches[0];
    assert_eq!(first.event_id.as_deref(), Some(victim));
    assert_eq!(
        first.stream.as_deref(),
        Some("person-0192f0c1-8a3b-7cde-9f00-0123456789ab")
    );
}

#[tokio::test]
async fn verify_reports_an_altered_time_in_the_audit_table() {
    let (d, recorder, store, gen) = scenario().await;
    // Hiding a backdated entry: make its recorded time look prompt.
    let victim = "01935000-0009-7009-8000-0000000e0009";
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite:{}", d.path().join("views.db").display()))
            .await
            .unwrap();
    sqlx::query("UPDATE audit_events SET recorded_at = occurred_at, record_delay_ms = 0 WHERE event_id = $1").bind(victim).execute(&pool).await.unwrap();
    let v = verify(recorder.log().as_ref(), &store, gen).await.unwrap();
    assert_eq!(v.mismatches.len(), 1, "{:?}", v.mismatches);
    assert_eq!(v.mismatches[0].event_id.as_deref(), Some(victim));
    assert_eq!(
        v.mismatches[0].problem,
        "the audit row's type, times or actor differ from the event in the log"
    );
}

#[tokio::test]
async fn an_undecodable_record_goes_to_the_dead_letters_and_the_rest_is_projected() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = log_with(dir.path(), &scenario_jsonl()).await;
    let poison = LogEvent {
        event_id: uuid::Uuid::now_v7(),
        stream: "person-0192f0c1-8a3b-7cde-9f00-0123456789ab".into(),
        payload: b"{\"event_id\": 42, not json".to_vec(),
    };
    recorder
        .log()
        .append(AppendBatch::new(vec![poison]))
        .await
        .unwrap();
    let store = sqlite_store(dir.path(), "views.db").await;
    let gen = project(&recorder, &store, 5).await;
    let dead = assist_projections::runner::dead_letters(&store, gen)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].reason.starts_with("not JSON: key must be a string"),
        "{}",
        dead[0].reason
    );
    let dump = store.dump(gen).await.unwrap();
    let audited = dump
        .split("## ")
        .find(|t| t.starts_with("audit_events"))
        .unwrap()
        .lines()
        .count()
        - 1;
    assert_eq!(audited, 50, "every good event is still projected");
}

/// The scenario's records, ingested in `dir`, served on one partition.
async fn scenario_on_one_partition(dir: &std::path::Path) -> Vec<Record> {
    let recorder = log_with(dir, &scenario_jsonl()).await;
    Served::by_stream(all_records(&recorder).await, 1)
        .parts
        .remove(0)
}

/// Generation 1 of `store` dumped without its checkpoint rows (the partition digests
/// differ when the records do).
async fn without_checkpoints(store: &Store) -> String {
    gen_without_checkpoints(store, 1).await
}

/// Generation `gen` of `store` dumped without its checkpoint rows.
async fn gen_without_checkpoints(store: &Store, gen: i64) -> String {
    store
        .dump(gen)
        .await
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("part="))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The rows of one table of a dump.
fn table<'a>(dump: &'a str, name: &str) -> Vec<&'a str> {
    dump.split("## ")
        .find(|t| t.starts_with(&format!("{name}\n")))
        .unwrap_or_default()
        .lines()
        .skip(1)
        .collect()
}

#[tokio::test]
async fn a_repeated_event_id_never_doubles_an_effect() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = log_with(dir.path(), &scenario_jsonl()).await;
    let person = "person-0192f0c1-8a3b-7cde-9f00-0123456789ab";
    let mut records = recorder.log().read_stream(person).await.unwrap();
    let mut repeated = records.clone();
    repeated.truncate(10);
    records.extend(repeated);
    let log = Served::one(records);
    let once = sqlite_store(dir.path(), "once.db").await;
    let stats = catch_up(&log, &once, 1, 4).await;
    assert_eq!(stats.duplicates, 10);
    // The same stream without the repeats gives the same views, digests aside.
    let plain = Served::one(log.parts[0][..log.parts[0].len() - 10].to_vec());
    let other = sqlite_store(dir.path(), "plain.db").await;
    catch_up(&plain, &other, 1, 4).await;
    assert_eq!(
        without_checkpoints(&once).await,
        without_checkpoints(&other).await
    );
}

#[tokio::test]
async fn two_rebuilds_and_any_batch_size_give_byte_identical_views() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = log_with(
        dir.path(),
        &assist_simulate::to_jsonl(&assist_simulate::simulate(150, 60, 5)),
    )
    .await;
    let a = sqlite_store(dir.path(), "a.db").await;
    let b = sqlite_store(dir.path(), "b.db").await;
    project(&recorder, &a, 1000).await;
    project(&recorder, &b, 3).await;
    assert_eq!(a.dump(1).await.unwrap(), b.dump(1).await.unwrap());
    for _ in 0..2 {
        let gen = a.begin_rebuild().await.unwrap();
        catch_up(recorder.log().as_ref(), &a, gen, 500).await;
        a.finish_rebuild(gen).await.unwrap();
        assert_eq!(a.dump(gen).await.unwrap(), b.dump(1).await.unwrap());
    }
}

#[tokio::test]
async fn a_rebuild_writes_a_partitions_subjects_once_it_is_caught_up_and_ends_as_a_clean_build() {
    let dir = tempfile::tempdir().unwrap();
    let records = scenario_on_one_partition(dir.path()).await;
    let store = sqlite_store(dir.path(), "views.db").await;
    let gen = store.begin_rebuild().await.unwrap();
    // Halfway through, the generation has audit rows but no case, chain head or open
    // clock yet, and its checkpoint says so.
    let log = Served::one(records.clone());
    let midway: std::sync::Mutex<Option<String>> = Default::default();
    let (watched, seen) = (store.clone(), &midway);
    let reader = Hooked {
        log: &log,
        reads: Default::default(),
        at: 4,
        hook: Box::new(move || {
            let s = watched.clone();
            Box::pin(async move {
                while assist_projections::runner::checkpoint(&s, gen, 0)
                    .await
                    .unwrap()
                    .0
                    == 0
                {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                *seen.lock().unwrap() = Some(s.dump(gen).await.unwrap());
            })
        }),
    };
    catch_up(&reader, &store, gen, 10).await;
    let midway = midway.lock().unwrap().take().expect("the hook ran");
    assert!(!table(&midway, "audit_events").is_empty());
    for t in ["cases", "chains"] {
        assert_eq!(table(&midway, t), Vec::<&str>::new(), "table {t} midway");
    }
    assert!(
        table(&midway, "clocks")
            .iter()
            .all(|c| c.contains("| is_open=0 |")),
        "only closed clocks midway"
    );
    assert!(
        table(&midway, "checkpoints")[0].ends_with("subjects_deferred=1"),
        "{midway}"
    );
    store.finish_rebuild(gen).await.unwrap();
    let clean = sqlite_store(dir.path(), "clean.db").await;
    catch_up(&log, &clean, 1, 10).await;
    let done = store.dump(gen).await.unwrap();
    assert!(table(&done, "checkpoints")[0].ends_with("subjects_deferred=0"));
    assert_eq!(done, clean.dump(1).await.unwrap());
}

#[tokio::test]
async fn a_partition_left_with_its_subjects_rows_deferred_is_not_swapped_in_but_redone() {
    let dir = tempfile::tempdir().unwrap();
    let log = Served::one(scenario_on_one_partition(dir.path()).await);
    let store = sqlite_store(dir.path(), "views.db").await;
    // A live generation (built on an empty log), and one rebuilt beside it.
    catch_up(&Served::one(Vec::new()), &store, 1, 10).await;
    let gen = store.begin_rebuild().await.unwrap();
    catch_up(&log, &store, gen, 10).await;
    // As a run leaves it that stopped after the partition's last batch but before its
    // subjects' rows (cases, chain heads, open clocks) were written.
    let raw = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("views.db").display()
    ))
    .await
    .unwrap();
    for sql in [
        "UPDATE checkpoints SET subjects_deferred = 1 WHERE gen = ?",
        "DELETE FROM cases WHERE gen = ?",
        "DELETE FROM chains WHERE gen = ?",
        "DELETE FROM clocks WHERE gen = ? AND is_open = 1",
    ] {
        sqlx::query(sql).bind(gen).execute(&raw).await.unwrap();
    }
    raw.close().await;
    let refused = store.swap_in(gen).await.unwrap_err().to_string();
    assert!(
        refused.ends_with("generation 2 is not whole: 1 partition(s) still lack their subjects' rows; project it again"),
        "{refused}"
    );
    // Nothing new to read: the partition is taken back to offset 0 and projected again,
    // and the catch-up says so.
    let again = catch_up(&log, &store, gen, 10).await;
    let all = log.parts[0].len() as u64;
    assert_eq!((again.records, again.redone), (all, all));
    store.finish_rebuild(gen).await.unwrap();
    let clean = sqlite_store(dir.path(), "clean.db").await;
    catch_up(&log, &clean, 1, 10).await;
    assert_eq!(store.dump(gen).await.unwrap(), clean.dump(1).await.unwrap());
}

#[tokio::test]
async fn a_query_during_a_rebuild_sees_the_old_views() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = log_with(dir.path(), &scenario_jsonl()).await;
    let store = sqlite_store(dir.path(), "views.db").await;
    let old = project(&recorder, &store, 100).await;
    let before = store.dump(old).await.unwrap();
    let gen = store.begin_rebuild().await.unwrap();
    // Half-build the new generation: one partition only.
    struct OnePartition<'a>(&'a dyn ProjectionLog);
    #[async_trait]
    impl PartitionReader for OnePartition<'_> {
        fn partition_count(&self) -> u32 {
            1
        }
        async fn read_partition(
            &self,
            p: u32,
            from: u64,
            max: usize,
        ) -> Result<Vec<Record>, assist_log::LogError> {
            self.0.read_partition(p, from, max).await
        }
        async fn partitions(&self) -> Result<Vec<PartitionInfo>, assist_log::LogError> {
            self.0.partitions().await
        }
    }
    #[async_trait]
    impl StreamReader for OnePartition<'_> {
        async fn read_stream(&self, stream: &str) -> Result<Vec<Record>, assist_log::LogError> {
            self.0.read_stream(stream).await
        }
    }
    catch_up(&OnePartition(recorder.log().as_ref()), &store, gen, 100).await;
    assert_eq!(store.active_gen().await.unwrap(), old);
    assert_eq!(
        store.dump(store.active_gen().await.unwrap()).await.unwrap(),
        before,
        "readers see the old views whole"
    );
    catch_up(recorder.log().as_ref(), &store, gen, 100).await;
    store.finish_rebuild(gen).await.unwrap();
    assert_eq!(store.active_gen().await.unwrap(), gen);
    assert_eq!(
        store.dump(gen).await.unwrap(),
        before,
        "the new generation equals the old"
    );
    assert!(
        store
            .dump(old)
            .await
            .unwrap()
            .lines()
            .all(|l| l.starts_with("## ")),
        "the old generation is dropped"
    );
}

#[tokio::test]
async fn sqlite_and_postgres_hold_identical_views_for_the_same_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut jsonl = scenario_jsonl();
    jsonl.extend(assist_simulate::to_jsonl(&assist_simulate::simulate(
        200, 60, 11,
    )));
    let recorder = log_with(dir.path(), &jsonl).await;
    let lite = sqlite_store(dir.path(), "views.db").await;
    let (pg, _guard) = postgres_store().await;
    project(&recorder, &lite, 250).await;
    project(&recorder, &pg, 250).await;
    let (a, b) = (lite.dump(1).await.unwrap(), pg.dump(1).await.unwrap());
    assert!(a.lines().count() > 2_000);
    assert_eq!(a, b);
    let at = at(END_OF_MARCH);
    let filter = CaseFilter::default();
    assert_eq!(
        caseload(&lite, &calendar(), 1, &filter, at).await.unwrap(),
        caseload(&pg, &calendar(), 1, &filter, at).await.unwrap()
    );
    let r = |c| {
        report(
            c,
            &calendar(),
            at,
            Duration::hours(24),
            &SlaFilter::default(),
        )
    };
    assert_eq!(
        r(&load_clocks(&lite, 1).await.unwrap()),
        r(&load_clocks(&pg, 1).await.unwrap())
    );
    let found = findings(&lite, 1, Duration::hours(72)).await.unwrap();
    assert!(found.iter().any(|f| f.kind == "cleared_after_job_ended"));
    assert_eq!(found, findings(&pg, 1, Duration::hours(72)).await.unwrap());
    pg.close().await;
}

/// The scenario and a 300-person simulation projected into a SQLite store (in the
/// returned dir) and a fresh PostgreSQL database (dropped with the returned guard).
async fn scenario_and_simulation_on_both_dialects() -> (tempfile::TempDir, Store, Store, PgDatabase)
{
    let dir = tempfile::tempdir().unwrap();
    let mut jsonl = scenario_jsonl();
    jsonl.extend(assist_simulate::to_jsonl(&assist_simulate::simulate(
        300, 60, 12,
    )));
    jsonl.extend(waiting_jsonl());
    let recorder = log_with(dir.path(), &jsonl).await;
    let lite = sqlite_store(dir.path(), "views.db").await;
    let (pg, guard) = postgres_store().await;
    project(&recorder, &lite, 500).await;
    project(&recorder, &pg, 500).await;
    (dir, lite, pg, guard)
}

#[tokio::test]
async fn the_weekly_trend_counted_by_the_store_equals_the_trend_of_every_clock_on_both_dialects() {
    use assist_projections::sla::report::{trend, trend_counted};
    let (_dir, lite, pg, _guard) = scenario_and_simulation_on_both_dialects().await;
    let clocks = load_clocks(&lite, 1).await.unwrap();
    let filters = [
        SlaFilter::default(),
        SlaFilter {
            region: Some("350121".into()),
            ..SlaFilter::default()
        },
    ];
    for at in [at("2026-02-10T00:00:00Z"), at(END_OF_MARCH)] {
        for filter in &filters {
            let whole = trend(&clocks, &calendar(), at, 8, filter);
            assert_eq!(whole.len(), 8);
            assert_eq!(whole[7].to, assist_projections::store::ts(at));
            let decided: usize = whole.iter().map(|w| w.counts.total).sum();
            assert!(decided > 0, "{filter:?} at {at}: no clock fell due");
            for store in [&lite, &pg] {
                let counted = trend_counted(store, 1, at, 8, filter).await.unwrap();
                assert_eq!(counted, whole, "{filter:?} at {at} on {}", store.name());
            }
        }
    }
}

#[tokio::test]
async fn the_summary_counted_by_the_store_equals_the_report_of_every_clock_on_both_dialects() {
    let (dir, lite, pg, guard) = scenario_and_simulation_on_both_dialects().await;
    let clocks = load_clocks(&lite, 1).await.unwrap();
    let worker = clocks
        .iter()
        .find(|c| !c.caseworker.is_empty())
        .map(|c| c.caseworker.clone());
    let filters = [
        SlaFilter::default(),
        SlaFilter {
            region: Some("3501".into()),
            ..SlaFilter::default()
        },
        SlaFilter {
            region: Some("350121".into()),
            ..SlaFilter::default()
        },
        SlaFilter {
            caseworker: worker,
            ..SlaFilter::default()
        },
    ];
    for at in [at("2026-02-10T00:00:00Z"), at(END_OF_MARCH)] {
        for filter in &filters {
            let whole = report(&clocks, &calendar(), at, Duration::hours(24), filter);
            assert!(whole.total.total > 0, "{filter:?} counts nothing");
            for store in [&lite, &pg] {
                let streamed = summarize(store, 1, &calendar(), at, Duration::hours(24), filter)
                    .await
                    .unwrap();
                assert!(
                    streamed == whole,
                    "{filter:?} at {at} differs on {}",
                    store.name()
                );
                let listed = summarize_listing(
                    store,
                    1,
                    &calendar(),
                    at,
                    Duration::hours(24),
                    filter,
                    Some(3),
                )
                .await
                .unwrap();
                assert_eq!(listed.total, whole.total);
                assert_eq!(listed.by_caseworker, whole.by_caseworker);
                assert_eq!(
                    listed.breached[..],
                    whole.breached[..whole.breached.len().min(3)]
                );
                assert_eq!(
                    listed.at_risk[..],
                    whole.at_risk[..whole.at_risk.len().min(3)]
                );
            }
        }
    }
    // Every kind of clock row is there at the times compared: never paused (counted by
    // the store), and paused ones settled, past their last pause fact (waiting or with a
    // deadline standing still), or neither (counted one by one).
    assert!(clocks.iter().any(|c| c.pauses.is_empty()));
    let kinds: BTreeSet<&str> = [at("2026-02-10T00:00:00Z"), at(END_OF_MARCH)]
        .into_iter()
        .flat_map(|t| clocks.iter().filter_map(move |c| paused_kind(c, t)))
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "before its last pause fact",
            "settled",
            "standing still",
            "waiting"
        ])
    );
    // Rows from before migration 0015 (paused ones without an outcome nor what follows
    // their pauses), then from before 0011, are counted one by one, with the same figures.
    let lite_url = format!("sqlite:{}", dir.path().join("views.db").display());
    for (before, old_rows) in [
        ("0015", "UPDATE clocks SET outcome = NULL, settled_at = NULL, pauses_end = NULL, moved_due = NULL, waiting = 0 WHERE plain = 0"),
        ("0011", "UPDATE clocks SET plain = 0, outcome = NULL, settled_at = NULL"),
    ] {
        let lite_pool = sqlx::SqlitePool::connect(&lite_url).await.unwrap();
        sqlx::query(old_rows).execute(&lite_pool).await.unwrap();
        lite_pool.close().await;
        let pg_pool = sqlx::PgPool::connect(&guard.url()).await.unwrap();
        sqlx::query(old_rows).execute(&pg_pool).await.unwrap();
        pg_pool.close().await;
        for store in [&lite, &pg] {
            let at = at(END_OF_MARCH);
            let whole = report(&clocks, &calendar(), at, Duration::hours(24), &filters[0]);
            let summed = summarize(store, 1, &calendar(), at, Duration::hours(24), &filters[0])
                .await
                .unwrap();
            assert!(
                summed == whole,
                "rows before {before} differ on {}",
                store.name()
            );
        }
    }
    pg.close().await;
}

/// A person alerted on 20 March whose clocks pause an hour later and never resume: they
/// wait on the person at the end of March.
fn waiting_jsonl() -> Vec<u8> {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/examples");
    let mut out = Vec::new();
    for (file, id, hour) in [
        (
            "alert_raised.v1.json",
            "01934a5e-2001-7001-8000-000000000001",
            "09",
        ),
        (
            "clock_paused.v1.json",
            "01934a5e-2002-7002-8000-000000000002",
            "10",
        ),
    ] {
        let mut e: Value =
            serde_json::from_str(&std::fs::read_to_string(examples.join(file)).unwrap()).unwrap();
        e["event_id"] = id.into();
        e["stream"] = "person-0192f0c1-8a3b-7cde-9f00-00000000a1a1".into();
        e["occurred_at"] = format!("2026-03-20T{hour}:00:00+08:00").into();
        e["recorded_at"] = format!("2026-03-20T{hour}:30:00+08:00").into();
        if let Some(alert) = e["data"].get_mut("alert_id") {
            *alert = "01934a5e-0000-7000-8000-00000000a1a1".into();
        }
        out.extend(serde_json::to_vec(&e).unwrap());
        out.push(b'\n');
    }
    out
}

/// What a paused clock is at `at` for the SLA figures (`None` if never paused): settled,
/// past its last pause fact (waiting, or its deadline standing still), or neither.
fn paused_kind(c: &Clock, at: DateTime<Utc>) -> Option<&'static str> {
    let after = c.after_pauses(&calendar())?;
    Some(if c.met_at.or(c.cancelled_at).is_some_and(|s| s <= at) {
        "settled"
    } else if after.since >= at {
        "before its last pause fact"
    } else if after.waiting {
        "waiting"
    } else {
        "standing still"
    })
}

/// Asserts that the summary the store counts equals the report of every clock, on both
/// stores, at times before and after their counts' base, in the whole and in a county; and
/// that the caseload's counted cases equal the cases listed.
async fn assert_counted_summaries_equal_the_report(stores: [&Store; 2], ats: &[DateTime<Utc>]) {
    use assist_projections::caseload::query::caseload_page;
    for region in [None, Some("350121".to_string())] {
        for include_closed in [false, true] {
            let filter = CaseFilter {
                region: region.clone(),
                include_closed,
                ..CaseFilter::default()
            };
            let now = at("2026-12-01T00:00:00Z");
            let all = caseload(stores[0], &calendar(), 1, &filter, now)
                .await
                .unwrap();
            for store in stores {
                let page = caseload_page(store, &calendar(), 1, &filter, now, (0, 0))
                    .await
                    .unwrap();
                assert_eq!(
                    (page.total, &page.by_stage),
                    (all.total, &all.by_stage),
                    "{filter:?} on {}",
                    store.name()
                );
            }
        }
    }
    let clocks = load_clocks(stores[0], 1).await.unwrap();
    let county = SlaFilter {
        region: Some("350121".into()),
        ..SlaFilter::default()
    };
    // A caseworker's steps and a step's caseworkers: counts the roll-ups do not hold.
    let worker = SlaFilter {
        caseworker: clocks.iter().map(|c| c.caseworker.clone()).max(),
        ..SlaFilter::default()
    };
    let step = SlaFilter {
        policy: clocks.first().map(|c| c.policy.clone()),
        step: clocks.first().map(|c| c.step.clone()),
        ..SlaFilter::default()
    };
    for at in ats {
        for filter in [&SlaFilter::default(), &county, &worker, &step] {
            let whole = report(&clocks, &calendar(), *at, Duration::hours(24), filter);
            for store in stores {
                let counted = summarize(store, 1, &calendar(), *at, Duration::hours(24), filter)
                    .await
                    .unwrap();
                assert!(
                    counted == whole,
                    "{filter:?} at {at} differs on {}",
                    store.name()
                );
            }
        }
    }
}

#[tokio::test]
async fn the_counted_summary_follows_facts_arriving_after_its_base_and_a_new_base_on_both_dialects()
{
    let events = assist_simulate::simulate(300, 60, 12);
    // Facts in three parts by when they occurred: before the cut, within the next 20 hours
    // (clocks starting after the base: counted by the triggers, then the base moved
    // forward over them), the rest (weeks later: the base moved forward again).
    let cut = at("2026-02-10T00:00:00Z");
    let part = |from: DateTime<Utc>, to: DateTime<Utc>| {
        let chosen: Vec<_> = events
            .iter()
            .filter(|e| e.meta.occurred_at >= from && e.meta.occurred_at < to)
            .cloned()
            .collect();
        assist_simulate::to_jsonl(&chosen)
    };
    let early = at("2000-01-01T00:00:00Z");
    let late = at("2100-01-01T00:00:00Z");
    let dir = tempfile::tempdir().unwrap();
    let recorder = log_with(dir.path(), &part(early, cut)).await;
    let lite = sqlite_store(dir.path(), "views.db").await;
    let (pg, guard) = postgres_store().await;
    let urls = [
        format!("sqlite:{}", dir.path().join("views.db").display()),
        guard.url(),
    ];
    let ats = [
        at("2026-01-20T00:00:00Z"),
        cut,
        cut + Duration::hours(10),
        at("2026-03-01T00:00:00Z"),
        at(END_OF_MARCH),
    ];
    for store in [&lite, &pg] {
        project(&recorder, store, 200).await;
    }
    let first = lite
        .sla_base(1)
        .await
        .unwrap()
        .expect("a base once caught up");
    assert!(first.as_str() < "2026-02-10", "{first}");
    assert_eq!(pg.sla_base(1).await.unwrap().as_ref(), Some(&first));
    assert_counted_summaries_equal_the_report([&lite, &pg], &ats).await;

    recorder
        .ingest(
            &part(cut, cut + Duration::hours(20))[..],
            Default::default(),
        )
        .await
        .unwrap();
    for store in [&lite, &pg] {
        project(&recorder, store, 50).await;
        let base = store.sla_base(1).await.unwrap().unwrap();
        assert!(base > first, "{base} on {}", store.name());
        assert!(base.as_str() < "2026-02-11", "{base} on {}", store.name());
    }
    assert_counted_summaries_equal_the_report([&lite, &pg], &ats).await;
    for url in &urls {
        assert_roll_ups_sum_the_counts(url).await;
    }

    recorder
        .ingest(
            &part(cut + Duration::hours(20), late)[..],
            Default::default(),
        )
        .await
        .unwrap();
    for store in [&lite, &pg] {
        project(&recorder, store, 500).await;
        let base = store.sla_base(1).await.unwrap().unwrap();
        assert!(base.as_str() > "2026-02-20", "{base} on {}", store.name());
    }
    assert_counted_summaries_equal_the_report([&lite, &pg], &ats).await;
    for url in &urls {
        assert_roll_ups_sum_the_counts(url).await;
    }
    pg.close().await;
}

#[tokio::test]
async fn the_counted_figures_follow_late_facts_shuffled_across_streams_on_both_dialects() {
    use rand::{seq::SliceRandom, SeedableRng};
    let mut events = assist_simulate::simulate(200, 60, 21);
    events.shuffle(&mut rand::rngs::StdRng::seed_from_u64(21));
    let dir = tempfile::tempdir().unwrap();
    let recorder = log_with(dir.path(), &assist_simulate::to_jsonl(&events)).await;
    let whole = Served::by_stream(all_records(&recorder).await, 3);
    let half = Served::placed(
        whole
            .parts
            .iter()
            .map(|p| p[..p.len() / 2].to_vec())
            .collect(),
    );
    let lite = sqlite_store(dir.path(), "views.db").await;
    let (pg, guard) = postgres_store().await;
    for store in [&lite, &pg] {
        catch_up(&half, store, 1, 40).await;
    }
    let base = lite
        .sla_base(1)
        .await
        .unwrap()
        .expect("a base once caught up");
    let clocks_before = load_clocks(&lite, 1).await.unwrap().len();
    for store in [&lite, &pg] {
        catch_up(&whole, store, 1, 40).await;
        // The second half's late facts were counted by the triggers (and the base may have
        // moved forward over its later clocks).
        let now = store.sla_base(1).await.unwrap().unwrap();
        assert!(now >= base, "{now} on {}", store.name());
    }
    let base = lite.sla_base(1).await.unwrap().unwrap();
    assert_eq!(pg.sla_base(1).await.unwrap().as_ref(), Some(&base));
    let w = DateTime::parse_from_rfc3339(&base)
        .unwrap()
        .with_timezone(&Utc);
    assert!(load_clocks(&lite, 1).await.unwrap().len() > clocks_before);
    let ats = [
        w - Duration::days(20),
        w - Duration::milliseconds(1),
        w,
        w + Duration::milliseconds(1),
        w + Duration::hours(12),
        at(END_OF_MARCH),
    ];
    assert_counted_summaries_equal_the_report([&lite, &pg], &ats).await;
    let lite_url = format!("sqlite:{}", dir.path().join("views.db").display());
    assert_roll_ups_sum_the_counts(&lite_url).await;
    assert_roll_ups_sum_the_counts(&guard.url()).await;
    pg.close().await;
}

/// Migration 0021 makes the SQLite store's SLA counts tables again, keyed without a rowid:
/// a store that held counts in rowid tables before it keeps every count, the tables are
/// keyed, and the triggers made again count the facts that come after.
#[tokio::test]
async fn the_sla_counts_made_again_without_a_rowid_keep_their_counts_and_go_on_counting() {
    use sqlx::Connection;
    let events = assist_simulate::simulate(300, 60, 12);
    let cut = at("2026-02-10T00:00:00Z");
    let part = |after: bool| {
        let chosen: Vec<_> = events
            .iter()
            .filter(|e| (e.meta.occurred_at >= cut) == after)
            .cloned()
            .collect();
        assist_simulate::to_jsonl(&chosen)
    };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("views.db").display());
    let recorder = log_with(dir.path(), &part(false)).await;
    let store = sqlite_store(dir.path(), "views.db").await;
    project(&recorder, &store, 200).await;
    store.close().await;
    let migration = include_str!("../../../projections/sqlite/0021_sla_counts_keyed.sql");
    let tables = [
        (
            "sla_counts",
            "gen, policy, step, region, caseworker, status, n",
        ),
        ("sla_step_counts", "gen, policy, step, region, status, n"),
        ("sla_worker_counts", "gen, region, caseworker, status, n"),
    ];
    // Every row of the three tables, in order.
    async fn rows(
        side: &mut sqlx::SqliteConnection,
        tables: &[(&str, &str); 3],
    ) -> Vec<(i64, String)> {
        let mut all = Vec::new();
        for (table, columns) in tables {
            let sql = format!("SELECT COUNT(*), COALESCE(group_concat(r, ';'), '') FROM (SELECT json_array({columns}) AS r FROM {table} ORDER BY r)");
            all.push(sqlx::query_as(&sql).fetch_one(&mut *side).await.unwrap());
        }
        all
    }
    // Whether each of them is keyed without a rowid.
    async fn keyed(side: &mut sqlx::SqliteConnection, tables: &[(&str, &str); 3]) -> [bool; 3] {
        let mut keyed = [false; 3];
        for ((table, _), keyed) in tables.iter().zip(&mut keyed) {
            let sql: String = sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE name = $1")
                .bind(table)
                .fetch_one(&mut *side)
                .await
                .unwrap();
            *keyed = sql.ends_with("WITHOUT ROWID");
        }
        keyed
    }
    let mut side = sqlx::SqliteConnection::connect(&url).await.unwrap();
    assert_eq!(keyed(&mut side, &tables).await, [true; 3]);
    // The store as migration 0020 left it: the same tables with a rowid.
    sqlx::raw_sql(&migration.replace(" WITHOUT ROWID", ""))
        .execute(&mut side)
        .await
        .unwrap();
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 21")
        .execute(&mut side)
        .await
        .unwrap();
    assert_eq!(keyed(&mut side, &tables).await, [false; 3]);
    let before = rows(&mut side, &tables).await;
    assert!(before.iter().all(|(n, _)| *n > 0), "{before:?}");
    side.close().await.unwrap();

    let store = Store::open(&url).await.unwrap();
    let mut side = sqlx::SqliteConnection::connect(&url).await.unwrap();
    assert_eq!(rows(&mut side, &tables).await, before);
    assert_eq!(keyed(&mut side, &tables).await, [true; 3]);
    side.close().await.unwrap();
    assert_roll_ups_sum_the_counts(&url).await;

    recorder
        .ingest(&part(true)[..], Default::default())
        .await
        .unwrap();
    project(&recorder, &store, 200).await;
    assert_roll_ups_sum_the_counts(&url).await;
    // The one store twice: the helper compares two stores with the report of every clock.
    assert_counted_summaries_equal_the_report([&store, &store], &[at(END_OF_MARCH)]).await;
}

/// Asserts that the SLA counts' roll-ups (migration 0016) hold the sums of the counts by
/// their keys, and that paused clocks settled by the base are among the counts.
async fn assert_roll_ups_sum_the_counts(url: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let rows = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            let rows: Vec<(String, i64)> = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
            rows
        }
    };
    let summed = rows("SELECT policy || '/' || step || '/' || region || '/' || status, CAST(SUM(n) AS BIGINT) FROM sla_counts WHERE gen = 1 GROUP BY 1 HAVING SUM(n) <> 0 ORDER BY 1").await;
    let rolled = rows("SELECT policy || '/' || step || '/' || region || '/' || status, n FROM sla_step_counts WHERE gen = 1 AND n <> 0 ORDER BY 1").await;
    assert!(!summed.is_empty());
    assert_eq!(summed, rolled, "by step and region on {url}");
    let summed = rows("SELECT region || '/' || caseworker || '/' || status, CAST(SUM(n) AS BIGINT) FROM sla_counts WHERE gen = 1 GROUP BY 1 HAVING SUM(n) <> 0 ORDER BY 1").await;
    let rolled = rows("SELECT region || '/' || caseworker || '/' || status, n FROM sla_worker_counts WHERE gen = 1 AND n <> 0 ORDER BY 1").await;
    assert_eq!(summed, rolled, "by caseworker on {url}");
    // The counts are those of the base's definition, counted again from the clocks: each
    // clock started by the base, by its outcome once settled by it, else (never paused)
    // breached past its deadline or pending.
    let counts = rows("SELECT policy || '/' || step || '/' || region || '/' || caseworker || '/' || status, CAST(SUM(n) AS BIGINT) FROM sla_counts WHERE gen = 1 GROUP BY 1 HAVING SUM(n) <> 0 ORDER BY 1").await;
    let recounted = rows("SELECT c.policy || '/' || c.step || '/' || c.region || '/' || c.caseworker || '/' || (CASE WHEN c.settled_at IS NOT NULL AND c.settled_at <= b.base_at THEN c.outcome WHEN c.due_at < b.base_at THEN 'breached' ELSE 'pending' END), COUNT(*) FROM clocks c JOIN sla_base b ON b.gen = c.gen WHERE c.gen = 1 AND c.started_at <= b.base_at AND (c.plain = 1 OR c.settled_at <= b.base_at) GROUP BY 1 ORDER BY 1").await;
    assert_eq!(counts, recounted, "counts by key and status on {url}");
    // Counted: every clock started by the base never paused, or paused and settled by it.
    let counted = rows("SELECT 'n', CAST(SUM(n) AS BIGINT) FROM sla_counts WHERE gen = 1").await;
    let expected = rows("SELECT 'n', COUNT(*) FROM clocks c JOIN sla_base b ON b.gen = c.gen WHERE c.gen = 1 AND c.started_at <= b.base_at AND (c.plain = 1 OR c.settled_at <= b.base_at)").await;
    let paused = rows("SELECT 'n', COUNT(*) FROM clocks c JOIN sla_base b ON b.gen = c.gen WHERE c.gen = 1 AND c.plain = 0 AND c.settled_at <= b.base_at").await;
    assert!(
        paused[0].1 > 0,
        "no paused clock settled by the base on {url}"
    );
    assert_eq!(counted, expected, "clocks counted on {url}");
    pool.close().await;
}

/// A case row of generation 1 in `region`, of key group `group`, as SQL.
fn case_insert(subject: &str, region: &str, group: &str) -> String {
    format!(
        "INSERT INTO cases (gen, subject, kind, is_open, stage, key_groups, caseworker, region, opened_at, last_activity_at) \
         VALUES (1, '{subject}', 'person', 1, 'alerted', '{group}', 'w', '{region}', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')"
    )
}

/// Waits until a session of the database at `url` waits for a lock.
async fn until_one_waits_for_a_lock(url: &str) {
    use sqlx::Connection;
    let mut watch = sqlx::PgConnection::connect(url).await.unwrap();
    for _ in 0..500 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut watch)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no session came to wait for a lock");
}

#[tokio::test]
async fn two_writers_changing_counts_in_opposite_orders_take_turns_on_postgres() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let recorder = log_with(dir.path(), &scenario_jsonl()).await;
    let (pg, guard) = postgres_store().await;
    project(&recorder, &pg, 500).await;
    assert!(pg.sla_base(1).await.unwrap().is_some(), "counted");
    let url = guard.url();
    let mut a = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut a).await.unwrap();
    sqlx::query(&case_insert("a-1", "350121", "turns"))
        .execute(&mut a)
        .await
        .unwrap();
    // B counts in the other order: region 350122 first, then 350121 (which A holds).
    let b = tokio::spawn({
        let url = url.clone();
        async move {
            let mut b = sqlx::PgConnection::connect(&url).await?;
            let mut tx = b.begin().await?;
            for (subject, region) in [("b-1", "350122"), ("b-2", "350121")] {
                sqlx::query(&case_insert(subject, region, "turns"))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        }
    });
    until_one_waits_for_a_lock(&url).await;
    sqlx::query(&case_insert("a-2", "350122", "turns"))
        .execute(&mut a)
        .await
        .expect("A's second count is not deadlocked");
    sqlx::query("COMMIT").execute(&mut a).await.unwrap();
    b.await.unwrap().expect("B's counts are not deadlocked");
    let counts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT region, n FROM case_counts WHERE gen = 1 AND key_groups = 'turns' ORDER BY region",
    )
    .fetch_all(&mut a)
    .await
    .unwrap();
    assert_eq!(counts, [("350121".into(), 2), ("350122".into(), 2)]);
    pg.close().await;
}

#[tokio::test]
async fn a_deadlock_on_postgres_is_known_as_a_conflict_worth_another_try() {
    use assist_projections::store::StoreError;
    use sqlx::Connection;
    let (pg, guard) = postgres_store().await;
    let url = guard.url();
    let mut a = sqlx::PgConnection::connect(&url).await.unwrap();
    for sql in [
        "CREATE TABLE probe (k BIGINT PRIMARY KEY, v BIGINT NOT NULL)",
        "INSERT INTO probe VALUES (1, 0), (2, 0)",
        "BEGIN",
        "UPDATE probe SET v = 1 WHERE k = 1",
    ] {
        sqlx::query(sql).execute(&mut a).await.unwrap();
    }
    let b = tokio::spawn({
        let url = url.clone();
        async move {
            let mut b = sqlx::PgConnection::connect(&url).await?;
            let mut tx = b.begin().await?;
            for k in [2, 1] {
                sqlx::query(&format!("UPDATE probe SET v = 2 WHERE k = {k}"))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        }
    });
    until_one_waits_for_a_lock(&url).await;
    let on_a = sqlx::query("UPDATE probe SET v = 1 WHERE k = 2")
        .execute(&mut a)
        .await
        .map(|_| ());
    sqlx::query("ROLLBACK").execute(&mut a).await.unwrap();
    let on_b = b.await.unwrap();
    let undone = match (on_a, on_b) {
        (Err(e), Ok(())) | (Ok(()), Err(e)) => e,
        other => panic!("one of the two is undone: {other:?}"),
    };
    let undone = StoreError::Sql {
        store: pg.name().to_string(),
        source: undone,
    };
    assert!(undone.is_conflict(), "{undone}");
    assert!(!undone.is_connection_lost());
    pg.close().await;
}

#[tokio::test]
async fn a_caseload_page_from_the_store_equals_the_page_of_every_case_by_deadline_on_both_dialects()
{
    use assist_projections::caseload::query::caseload_page;
    use assist_projections::caseload::Stage;
    let (dir, lite, pg, _guard) = scenario_and_simulation_on_both_dialects().await;
    let now = at("2026-12-01T00:00:00Z");
    // Four cases with a running clock get a pause that stays open: their deadlines move.
    let before = caseload(&lite, &calendar(), 1, &CaseFilter::default(), now)
        .await
        .unwrap();
    let pauses: Vec<u8> = before
        .cases
        .iter()
        .filter(|c| c.next_step.is_some())
        .take(4)
        .enumerate()
        .flat_map(|(n, c)| {
            let paused_at = at(c.case.last_activity_at.as_deref().unwrap()) + Duration::minutes(1);
            let mut line = serde_json::json!({
                "event_id": format!("01935000-0000-7000-8000-00000d{n:06}"),
                "stream": c.case.subject,
                "type": "clock_paused",
                "schema_version": 1,
                "occurred_at": paused_at.to_rfc3339(),
                "recorded_at": paused_at.to_rfc3339(),
                "actor": {"id": "cw-test-pauses", "role": "caseworker", "region": c.case.region},
                "data": {"reason": "person_unreachable", "policy": null},
            })
            .to_string()
            .into_bytes();
            line.push(b'\n');
            line
        })
        .collect();
    let recorder = log_with(dir.path(), &pauses).await;
    project(&recorder, &lite, 500).await;
    project(&recorder, &pg, 500).await;
    // Cases whose deadline moves (a clock paused) are there, and cases whose does not.
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite:{}", dir.path().join("views.db").display()))
            .await
            .unwrap();
    let (moving, fixed): (i64, i64) = sqlx::query_as(
        "SELECT SUM(next_moves = 1), SUM(next_moves = 0 AND next_due IS NOT NULL) FROM cases WHERE gen = 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(moving > 0 && fixed > 100, "{moving} moving, {fixed} fixed");
    let whole = caseload(&lite, &calendar(), 1, &CaseFilter::default(), now)
        .await
        .unwrap();
    let worker = whole.cases[0].case.caseworker.clone();
    let group = whole
        .cases
        .iter()
        .find_map(|c| c.case.groups.first().cloned())
        .expect("a case in a key group");
    let filters = [
        CaseFilter::default(),
        CaseFilter {
            region: Some("350121".into()),
            ..CaseFilter::default()
        },
        CaseFilter {
            caseworker: Some(worker),
            ..CaseFilter::default()
        },
        CaseFilter {
            stage: Some(Stage::Contacted),
            ..CaseFilter::default()
        },
        CaseFilter {
            group: Some(group.clone()),
            include_closed: true,
            ..CaseFilter::default()
        },
    ];
    // A group is named exactly: not in another case, not by a part, not two at once.
    let pair = whole
        .cases
        .iter()
        .find(|c| c.case.groups.len() > 1)
        .map(|c| c.case.groups[..2].join(","))
        .expect("a case in two key groups");
    for near in [group.to_uppercase(), group[1..].to_string(), pair] {
        let filter = CaseFilter {
            group: Some(near),
            include_closed: true,
            ..CaseFilter::default()
        };
        assert_eq!(
            caseload(&lite, &calendar(), 1, &filter, now)
                .await
                .unwrap()
                .total,
            0
        );
        for store in [&lite, &pg] {
            let page = caseload_page(store, &calendar(), 1, &filter, now, (10, 0))
                .await
                .unwrap();
            assert_eq!(
                (page.total, page.cases.len()),
                (0, 0),
                "{filter:?} on {}",
                store.name()
            );
        }
    }
    for filter in &filters {
        let mut all = caseload(&lite, &calendar(), 1, filter, now).await.unwrap();
        all.cases.sort_by(|a, b| {
            let due = |c: &assist_projections::caseload::query::CaseView| {
                c.next_step
                    .as_ref()
                    .map_or("~".to_string(), |n| n.due_at.clone())
            };
            (due(a), &a.case.subject).cmp(&(due(b), &b.case.subject))
        });
        assert!(all.total > 0, "{filter:?} selects nothing");
        for (limit, offset) in [(7, 0), (7, 5), (5000, 0), (3, all.total.saturating_sub(2))] {
            let want: Vec<_> = all.cases.iter().skip(offset).take(limit).cloned().collect();
            for store in [&lite, &pg] {
                let page = caseload_page(store, &calendar(), 1, filter, now, (limit, offset))
                    .await
                    .unwrap();
                assert_eq!(
                    (page.total, &page.by_stage),
                    (all.total, &all.by_stage),
                    "{filter:?} on {}",
                    store.name()
                );
                assert!(
                    page.cases == want,
                    "{filter:?}, {limit} from {offset}, on {}",
                    store.name()
                );
            }
        }
    }
    pg.close().await;
}

#[tokio::test]
async fn a_page_of_clocks_from_the_store_equals_the_page_of_every_clock_listed_on_both_dialects() {
    let (_dir, lite, pg, _guard) = scenario_and_simulation_on_both_dialects().await;
    let clocks = load_clocks(&lite, 1).await.unwrap();
    let filters = [
        SlaFilter::default(),
        SlaFilter {
            region: Some("350121".into()),
            ..SlaFilter::default()
        },
        SlaFilter {
            policy: Some("response-2473".into()),
            step: Some("contact".into()),
            ..SlaFilter::default()
        },
    ];
    let statuses = [None].into_iter().chain(Status::ALL.into_iter().map(Some));
    let risk = Duration::hours(24);
    let mut nonempty = 0;
    for at in [at("2026-02-10T00:00:00Z"), at(END_OF_MARCH)] {
        for filter in &filters {
            for status in statuses.clone() {
                let all = list_clocks(&clocks, &calendar(), at, risk, filter, status);
                nonempty += usize::from(!all.is_empty());
                // Small pages too: each of the store's reads picks its first clocks before
                // they are merged.
                let pages = [
                    (1, 0),
                    (2, 3),
                    (7, 0),
                    (7, 5),
                    (1000, 0),
                    (3, all.len().saturating_sub(2)),
                ];
                assert_pages_equal([&lite, &pg], &all, (at, risk), filter, status, &pages).await;
            }
        }
    }
    assert!(nonempty > 20, "the pages compared hold too little");
    pg.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_read_page_after_page_from_each_last_clock_equals_every_clock_listed_on_both_dialects(
) {
    let (_dir, lite, pg, _guard) = scenario_and_simulation_on_both_dialects().await;
    let clocks = load_clocks(&lite, 1).await.unwrap();
    let filters = [
        SlaFilter::default(),
        SlaFilter {
            region: Some("350121".into()),
            ..SlaFilter::default()
        },
    ];
    let statuses = [None].into_iter().chain(Status::ALL.into_iter().map(Some));
    let risk = Duration::hours(24);
    let mut compared = 0;
    for at in [at("2026-02-10T00:00:00Z"), at(END_OF_MARCH)] {
        for filter in &filters {
            for status in statuses.clone() {
                let all = list_clocks(&clocks, &calendar(), at, risk, filter, status);
                // Pages of 7 cut through runs of equal deadlines and through the paused
                // clocks merged in; one of 1,000 takes most lists whole.
                for size in [7, 1000] {
                    if size == 7 && all.len() > 700 {
                        continue;
                    }
                    for store in [&lite, &pg] {
                        let mut walk =
                            ClockWalk::start(store, 1, &calendar(), at, risk, filter, status)
                                .await
                                .unwrap();
                        let mut read: Vec<ClockLine> = Vec::new();
                        loop {
                            let page = walk.next_page(store, &calendar(), size).await.unwrap();
                            assert!(page.len() <= size);
                            if page.is_empty() {
                                break;
                            }
                            read.extend(page);
                        }
                        let what = format!(
                            "{filter:?} {status:?} at {at}, pages of {size}, on {}",
                            store.name()
                        );
                        assert!(read == all, "{what}");
                        compared += all.len();
                    }
                }
            }
        }
    }
    assert!(compared > 1000, "the lists compared hold too little");
    pg.close().await;
}

/// Asserts that each store's page of generation 1's clocks (`limit` from `offset`, for each
/// of `pages`) and their total equal those cut from `all`, the clocks [`list_clocks`] gives
/// at the same time and risk window for the same filter and status.
async fn assert_pages_equal(
    stores: [&Store; 2],
    all: &[ClockLine],
    (at, risk): (DateTime<Utc>, Duration),
    filter: &SlaFilter,
    status: Option<Status>,
    pages: &[(usize, usize)],
) {
    for &(limit, offset) in pages {
        let want: Vec<_> = all.iter().skip(offset).take(limit).cloned().collect();
        for store in stores {
            let (total, page) = clocks_page(
                store,
                1,
                &calendar(),
                at,
                risk,
                filter,
                status,
                (limit, offset),
            )
            .await
            .unwrap();
            let what = format!(
                "{filter:?} {status:?} at {at}, {limit} from {offset}, on {}",
                store.name()
            );
            assert_eq!(total, all.len(), "{what}");
            assert!(page == want, "{what}");
        }
    }
}

/// People alerted, their clocks paused and resumed, each after a different pause: every
/// clock's deadline stands still, moved by its pause, in an order unlike the alerts'.
fn paused_and_resumed_jsonl(people: u32) -> Vec<u8> {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/examples");
    let mut out = Vec::new();
    for n in 0..people {
        let stream = format!("person-0192f0c1-8a3b-7cde-9f00-{:012x}", 0xb000 + n);
        let day = 2 + n;
        let facts = [
            (
                "alert_raised.v1.json",
                format!("2026-03-{day:02}T09:00:00+08:00"),
            ),
            (
                "clock_paused.v1.json",
                format!("2026-03-{day:02}T10:00:00+08:00"),
            ),
            (
                "clock_resumed.v1.json",
                format!("2026-03-{:02}T11:00:00+08:00", day + 2 * (people - n)),
            ),
        ];
        for (k, (file, at)) in facts.into_iter().enumerate() {
            let mut e: Value =
                serde_json::from_str(&std::fs::read_to_string(examples.join(file)).unwrap())
                    .unwrap();
            e["event_id"] = format!("01934a5e-3{n:03x}-7{k:03x}-8000-{:012}", k + 1).into();
            e["stream"] = stream.clone().into();
            e["occurred_at"] = at.clone().into();
            e["recorded_at"] = at.into();
            if let Some(alert) = e["data"].get_mut("alert_id") {
                *alert = format!("01934a5e-0000-7000-8000-{:012x}", 0xb000 + n).into();
            }
            out.extend(serde_json::to_vec(&e).unwrap());
            out.push(b'\n');
        }
    }
    out
}

#[tokio::test]
async fn a_page_of_paused_clocks_takes_the_earliest_moved_deadlines_first_on_both_dialects() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = log_with(dir.path(), &paused_and_resumed_jsonl(5)).await;
    let lite = sqlite_store(dir.path(), "views.db").await;
    let (pg, _guard) = postgres_store().await;
    project(&recorder, &lite, 500).await;
    project(&recorder, &pg, 500).await;
    let clocks = load_clocks(&lite, 1).await.unwrap();
    let at = at(END_OF_MARCH);
    let risk = Duration::hours(24);
    let still = clocks
        .iter()
        .filter(|c| paused_kind(c, at) == Some("standing still"))
        .count();
    assert!(
        still >= 10 && still == clocks.len(),
        "{still} of {} clocks paused with their deadline standing still",
        clocks.len()
    );
    let filter = SlaFilter::default();
    for status in [None, Some(Status::Breached)] {
        let all = list_clocks(&clocks, &calendar(), at, risk, &filter, status);
        assert!(all.len() >= 10, "{status:?}: {}", all.len());
        let pages = [(1, 0), (2, 1), (3, 4), (1000, 0)];
        assert_pages_equal([&lite, &pg], &all, (at, risk), &filter, status, &pages).await;
    }
    pg.close().await;
}

#[tokio::test]
async fn an_event_id_reused_by_another_stream_is_skipped_like_a_duplicate() {
    // Partition 3 is projected last: its wrong batch is found when its write is waited for
    // at the very end.
    reused_id_on_the_last_record_of(3, false).await;
}

#[tokio::test]
async fn a_reused_id_found_while_the_next_partition_is_projected_sends_its_own_partition_back() {
    // Partition 2's last write is waited for while partition 3's first batch is folded.
    reused_id_on_the_last_record_of(2, false).await;
}

#[tokio::test]
async fn a_reused_id_is_skipped_on_postgres_too_where_copy_finds_it() {
    reused_id_on_the_last_record_of(3, true).await;
}

#[tokio::test]
async fn a_reused_id_found_in_a_rebuild_takes_its_partition_back_and_skips_the_id() {
    // Partition 1 (12 records, batches of 5) has committed two batches with its subjects'
    // rows deferred when its wrong batch is found: it is taken back to offset 0 and
    // projected again, carefully.
    reused_id_in(1, false, true).await;
}

#[tokio::test]
async fn a_reused_id_found_in_a_rebuild_on_postgres_takes_its_partition_back_too() {
    reused_id_in(1, true, true).await;
}

/// The last record of `partition` takes the id of a record of partition 0, which is
/// projected first: the runner's memory of `partition` has never seen it.
async fn reused_id_on_the_last_record_of(partition: usize, on_postgres: bool) {
    reused_id_in(partition, on_postgres, false).await;
}

/// As [`reused_id_on_the_last_record_of`], projected into the active generation or, with
/// `rebuild`, into a generation being rebuilt (nobody reads it: its partitions' subjects'
/// rows are deferred to each partition's end).
async fn reused_id_in(partition: usize, on_postgres: bool, rebuild: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut guards = Vec::new();
    let open = |name: &'static str| {
        let path = dir.path().to_path_buf();
        async move {
            if on_postgres {
                let (store, guard) = postgres_store().await;
                (store, Some(guard))
            } else {
                (sqlite_store(&path, name).await, None)
            }
        }
    };
    let recorder = log_with(dir.path(), &scenario_jsonl()).await;
    let log = Served::by_stream(all_records(&recorder).await, 4);
    let taken = log.parts[0][0].clone();
    let mut parts = log.parts.clone();
    let reused = parts[partition].last_mut().unwrap();
    assert_ne!(reused.stream, taken.stream);
    let mut payload: serde_json::Value = serde_json::from_slice(&reused.payload).unwrap();
    payload["event_id"] = serde_json::json!(taken.event_id.unwrap().to_string());
    payload["correlation_id"] = payload["event_id"].clone();
    reused.payload = serde_json::to_vec(&payload).unwrap();
    reused.event_id = taken.event_id;
    let with_reuse = Served::placed(parts.clone());
    let (store, guard) = open("reuse.db").await;
    guards.push(guard);
    let gen = if rebuild {
        store.begin_rebuild().await.unwrap()
    } else {
        1
    };
    let stats = catch_up(&with_reuse, &store, gen, 5).await;
    assert_eq!((stats.applied, stats.duplicates), (stats.records - 1, 1));
    // The same as a log without that record, checkpoints and digests aside.
    parts[partition].pop();
    let (plain, guard) = open("plain.db").await;
    guards.push(guard);
    catch_up(&Served::placed(parts), &plain, 1, 5).await;
    assert_eq!(
        gen_without_checkpoints(&store, gen).await,
        without_checkpoints(&plain).await
    );
    store.close().await;
    plain.close().await;
}

/// Which half of a stream a test moves.
enum Half {
    Earlier,
    Later,
}

/// `placed` with one half of the first stream of partition 0 moved to the end of
/// partition 3, in order, as a foreign producer keying it differently would write it.
fn half_moved(placed: &Served, half: Half) -> Served {
    let mut parts = placed.parts.clone();
    let stream = parts[0][0].stream.clone();
    let mine: Vec<usize> = (0..parts[0].len())
        .filter(|&i| parts[0][i].stream == stream)
        .collect();
    assert!(mine.len() >= 4, "the stream has {} events", mine.len());
    let (earlier, later) = mine.split_at(mine.len() / 2);
    let chosen = match half {
        Half::Earlier => earlier,
        Half::Later => later,
    };
    let moved: Vec<Record> = chosen.iter().rev().map(|&i| parts[0].remove(i)).collect();
    parts[3].extend(moved.into_iter().rev());
    Served::placed(parts)
}

#[tokio::test]
async fn a_stream_split_across_two_partitions_folds_as_one_stream() {
    stream_split_across_two_partitions(false).await;
}

#[tokio::test]
async fn a_stream_split_across_two_partitions_of_a_rebuild_folds_as_one_stream() {
    // Partition 3 (its own record, then the moved ones; batches of 1) finds the stream's
    // rows from partition 0 while its own subjects' rows are deferred: it is taken back to
    // offset 0 and projected carefully.
    stream_split_across_two_partitions(true).await;
}

async fn stream_split_across_two_partitions(rebuild: bool) {
    let dir = tempfile::tempdir().unwrap();
    let recorder = log_with(dir.path(), &scenario_jsonl()).await;
    let placed = Served::by_stream(all_records(&recorder).await, 4);
    // A foreign producer wrote the later half of one stream of partition 0 to partition 3.
    let split = sqlite_store(dir.path(), "split.db").await;
    let (gen, batch) = if rebuild {
        (split.begin_rebuild().await.unwrap(), 1)
    } else {
        (1, 3)
    };
    catch_up(&half_moved(&placed, Half::Later), &split, gen, batch).await;
    let whole = sqlite_store(dir.path(), "whole.db").await;
    catch_up(&placed, &whole, 1, 3).await;
    let (a, b) = (split.dump(gen).await.unwrap(), whole.dump(1).await.unwrap());
    for t in ["cases", "clocks", "chains", "findings"] {
        assert_eq!(table(&a, t), table(&b, t), "table {t}");
    }
}

#[tokio::test]
async fn a_stream_continued_on_another_partition_in_a_later_run_keeps_its_chain() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = log_with(dir.path(), &scenario_jsonl()).await;
    let placed = Served::by_stream(all_records(&recorder).await, 4);
    // A foreign producer wrote the earlier half of one stream of partition 0 to partition 3;
    // one run projects partition 3, a later run partition 0 from its first offset.
    let split = half_moved(&placed, Half::Earlier);
    let store = sqlite_store(dir.path(), "split.db").await;
    let rules = Rules::shipped().unwrap();
    let runner = assist_projections::Runner {
        log: &split,
        store: &store,
        rules: &rules,
        batch: 3,
        memory: Default::default(),
    };
    for run in [&[3][..], &[0, 1, 2]] {
        runner.catch_up_partitions(1, run, |_| {}).await.unwrap();
    }
    let whole = sqlite_store(dir.path(), "whole.db").await;
    catch_up(&placed, &whole, 1, 3).await;
    let (a, b) = (store.dump(1).await.unwrap(), whole.dump(1).await.unwrap());
    for t in ["cases", "clocks", "chains", "findings"] {
        assert_eq!(table(&a, t), table(&b, t), "table {t}");
    }
}

/// A log that runs `hook` (another runner's work) during its `at`-th read.
struct Hooked<'a> {
    log: &'a dyn ProjectionLog,
    reads: std::sync::atomic::AtomicUsize,
    at: usize,
    hook: Box<dyn Fn() -> futures_like::BoxFuture<'a> + Send + Sync + 'a>,
}

mod futures_like {
    pub type BoxFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;
}

#[async_trait]
impl PartitionReader for Hooked<'_> {
    fn partition_count(&self) -> u32 {
        self.log.partition_count()
    }

    async fn read_partition(
        &self,
        p: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<Record>, assist_log::LogError> {
        let out = self.log.read_partition(p, from, max).await?;
        if self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == self.at {
            (self.hook)().await;
        }
        Ok(out)
    }

    async fn partitions(&self) -> Result<Vec<PartitionInfo>, assist_log::LogError> {
        self.log.partitions().await
    }
}

#[async_trait]
impl StreamReader for Hooked<'_> {
    async fn read_stream(&self, stream: &str) -> Result<Vec<Record>, assist_log::LogError> {
        self.log.read_stream(stream).await
    }
}

/// `log`, whose `at`-th read first lets another runner project partition 0 up to `upto`, as
/// a second worker owning it briefly during a rebalance does; the other runner starts once
/// the reading runner's own commits reach `after`.
fn overtaken<'a>(
    log: &'a Served,
    store: &'a Store,
    at: usize,
    after: u64,
    upto: u64,
) -> Hooked<'a> {
    Hooked {
        log,
        reads: Default::default(),
        at,
        hook: Box::new(move || {
            Box::pin(async move {
                while assist_projections::runner::checkpoint(store, 1, 0)
                    .await
                    .unwrap()
                    .0
                    < after
                {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                let mut head = log.parts.clone();
                head[0].truncate(upto as usize);
                catch_up(&Served::placed(head), store, 1, 2).await;
            })
        }),
    }
}

#[tokio::test]
async fn a_runner_overtaken_by_another_reads_the_rows_again_instead_of_its_memory() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = log_with(dir.path(), &scenario_jsonl()).await;
    let log = Served::by_stream(all_records(&recorder).await, 2);
    assert!(log.parts[0].len() >= 20, "{}", log.parts[0].len());
    let overtaken_store = sqlite_store(dir.path(), "overtaken.db").await;
    // The runner commits offsets 0..4 and 4..8, reads 8..12, then finds the other
    // runner's checkpoint at 14: it must fold 14.. onto the other's rows, not its memory.
    let reader = overtaken(&log, &overtaken_store, 3, 0, 14);
    catch_up(&reader, &overtaken_store, 1, 4).await;
    let clean = sqlite_store(dir.path(), "clean.db").await;
    catch_up(&log, &clean, 1, 4).await;
    assert_eq!(
        overtaken_store.dump(1).await.unwrap(),
        clean.dump(1).await.unwrap()
    );
}

/// Projects `log` into generation 1 of `store` and lists the store's per-generation
/// indexes after each committed batch (read inside `on_batch`, which cannot await: the
/// test runs on a multi-thread runtime).
async fn indexes_after_each_batch(
    log: &dyn ProjectionLog,
    store: &Store,
    batch: usize,
) -> Vec<Vec<String>> {
    let rules = Rules::shipped().unwrap();
    let mut during = Vec::new();
    assist_projections::Runner {
        log,
        store,
        rules: &rules,
        batch,
        memory: Default::default(),
    }
    .catch_up(1, |_| {
        during.push(
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(store.generation_indexes())
            })
            .unwrap(),
        )
    })
    .await
    .unwrap();
    during
}

/// The per-generation indexes of generations `gens`, sorted by name.
fn indexes_of(gens: &[i64]) -> Vec<String> {
    let mut names: Vec<String> = gens
        .iter()
        .flat_map(|g| {
            [
                "clocks_by_subject",
                "clocks_by_start_at",
                "clocks_by_deadline",
                "clocks_by_settled_at",
                "clocks_paused_settled",
                "clocks_paused_by_due",
                "clocks_paused_by_outcome",
                "cases_by_next",
                "cases_by_caseworker",
            ]
            .map(|name| format!("{name}_g{g}"))
        })
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generation_projected_from_offset_zero_is_indexed_once_caught_up_not_row_by_row() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = log_with(dir.path(), &scenario_jsonl()).await;
    let store = sqlite_store(dir.path(), "views.db").await;
    let during = indexes_after_each_batch(recorder.log().as_ref(), &store, 5).await;
    assert!(during.len() > 3, "{} batches", during.len());
    assert!(during.iter().all(Vec::is_empty), "{during:?}");
    assert_eq!(store.generation_indexes().await.unwrap(), indexes_of(&[1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generation_still_projected_from_offset_zero_answers_summaries_and_pages_without_its_indexes(
) {
    use assist_projections::caseload::query::caseload_page;
    let dir = tempfile::tempdir().unwrap();
    let recorder = log_with(dir.path(), &scenario_jsonl()).await;
    let store = sqlite_store(dir.path(), "views.db").await;
    let rules = Rules::shipped().unwrap();
    let now = at("2026-12-01T00:00:00Z");
    let mut answers = Vec::new();
    assist_projections::Runner {
        log: recorder.log().as_ref(),
        store: &store,
        rules: &rules,
        batch: 5,
        memory: Default::default(),
    }
    .catch_up(1, |_| {
        answers.push(tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                let indexes = store.generation_indexes().await.unwrap();
                let summary = summarize(
                    &store,
                    1,
                    &calendar(),
                    now,
                    Duration::hours(24),
                    &SlaFilter::default(),
                )
                .await
                .map(|_| ());
                let page =
                    caseload_page(&store, &calendar(), 1, &CaseFilter::default(), now, (10, 0))
                        .await
                        .map(|_| ());
                (indexes, summary.and(page).map_err(|e| e.to_string()))
            })
        }))
    })
    .await
    .unwrap();
    assert!(answers.len() > 3, "{} batches", answers.len());
    for (indexes, answer) in &answers {
        assert!(indexes.is_empty(), "{indexes:?}");
        assert_eq!(answer, &Ok(()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_careful_batch_builds_the_generations_indexes_before_it_looks_rows_up() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = log_with(dir.path(), &scenario_jsonl()).await;
    let records = all_records(&recorder).await;
    let store = sqlite_store(dir.path(), "views.db").await;
    catch_up(
        &Served::one(records[..records.len() / 2].to_vec()),
        &store,
        1,
        10,
    )
    .await;
    // As in a store migrated from before the indexes were per generation: none yet.
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite:{}", dir.path().join("views.db").display()))
            .await
            .unwrap();
    for index in indexes_of(&[1]) {
        sqlx::query(&format!("DROP INDEX {index}"))
            .execute(&pool)
            .await
            .unwrap();
    }
    // The rest of the log continues from a checkpoint: every batch is careful.
    let during = indexes_after_each_batch(&Served::one(records), &store, 10).await;
    assert!(during.len() > 1, "{} batches", during.len());
    assert!(during.iter().all(|i| i == &indexes_of(&[1])), "{during:?}");
}

/// Projects the scenario into `store`, rebuilds it, and checks which generations have
/// their indexes at each step.
async fn a_rebuild_moves_the_indexes(recorder: &assist_ingest::Recorder, store: &Store) {
    project(recorder, store, 50).await;
    assert_eq!(store.generation_indexes().await.unwrap(), indexes_of(&[1]));
    let gen = store.begin_rebuild().await.unwrap();
    catch_up(recorder.log().as_ref(), store, gen, 50).await;
    assert_eq!(
        store.generation_indexes().await.unwrap(),
        indexes_of(&[1, 2]),
        "the old generation keeps its indexes until the swap"
    );
    store.finish_rebuild(gen).await.unwrap();
    assert_eq!(store.generation_indexes().await.unwrap(), indexes_of(&[2]));
}

#[tokio::test]
async fn a_rebuild_indexes_the_new_generation_and_drops_the_old_ones_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = log_with(dir.path(), &scenario_jsonl()).await;
    let store = sqlite_store(dir.path(), "views.db").await;
    a_rebuild_moves_the_indexes(&recorder, &store).await;
}

#[tokio::test]
async fn a_rebuild_on_postgres_indexes_the_new_generation_and_drops_the_old_ones_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = log_with(dir.path(), &scenario_jsonl()).await;
    let (store, _guard) = postgres_store().await;
    a_rebuild_moves_the_indexes(&recorder, &store).await;
    store.close().await;
}

#[tokio::test]
async fn a_runner_overtaken_on_a_range_with_no_new_event_still_reads_the_rows_again() {
    // Offsets 4..8 hold a poison record and three repeats: no audit row whose unique key
    // could reveal that another runner committed them first. The runner commits 0..4,
    // the other runner 4..8, then the runner's fold of 4..8 from memory must not be
    // written (its dead letter would be a second one).
    let dir = tempfile::tempdir().unwrap();
    let mut records = scenario_on_one_partition(dir.path()).await;
    let mut poison = records[0].clone();
    poison.event_id = Some(uuid::Uuid::now_v7());
    poison.payload = b"{\"event_id\": 42, not json".to_vec();
    let repeats = records[..3].to_vec();
    let tail = records.split_off(4);
    records.push(poison);
    records.extend(repeats);
    records.extend(tail);
    let log = Served::one(records);
    let overtaken_store = sqlite_store(dir.path(), "overtaken.db").await;
    let reader = overtaken(&log, &overtaken_store, 3, 4, 8);
    let stats = catch_up(&reader, &overtaken_store, 1, 4).await;
    assert_eq!(
        stats.dead_letters, 0,
        "the other runner wrote the dead letter"
    );
    let clean = sqlite_store(dir.path(), "clean.db").await;
    catch_up(&log, &clean, 1, 4).await;
    let dump = overtaken_store.dump(1).await.unwrap();
    assert_eq!(table(&dump, "dead_letters").len(), 1);
    assert_eq!(dump, clean.dump(1).await.unwrap());
}

#[tokio::test]
async fn dropping_the_active_generation_is_refused_and_keeps_its_rows() {
    let (_d, _recorder, store, gen) = scenario().await;
    let before = store.dump(gen).await.unwrap();
    let err = store.drop_generation(gen).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "store {}: generation {gen} is the active one and cannot be dropped",
            store.name()
        )
    );
    assert_eq!(store.dump(gen).await.unwrap(), before);
}

#[tokio::test]
async fn careful_batches_on_postgres_read_back_the_rows_and_ids_they_need() {
    let dir = tempfile::tempdir().unwrap();
    let mut records = scenario_on_one_partition(dir.path()).await;
    // Repeats at the end: ids a careful batch must find applied.
    let repeats = records[..5].to_vec();
    records.extend(repeats);
    let (pg, _guard) = postgres_store().await;
    catch_up(
        &Served::one(records[..records.len() / 2].to_vec()),
        &pg,
        1,
        7,
    )
    .await;
    // The rest continues from a checkpoint: cases, open clocks, chain heads and ids are
    // read back from the rows.
    let stats = catch_up(&Served::one(records.clone()), &pg, 1, 7).await;
    assert_eq!(stats.duplicates, 5);
    let lite = sqlite_store(dir.path(), "views.db").await;
    catch_up(&Served::one(records), &lite, 1, 7).await;
    assert_eq!(pg.dump(1).await.unwrap(), lite.dump(1).await.unwrap());
    pg.close().await;
}

#[tokio::test]
async fn dropping_the_generation_being_rebuilt_is_refused() {
    let (_d, _recorder, store, _gen) = scenario().await;
    let building = store.begin_rebuild().await.unwrap();
    let err = store.drop_generation(building).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "store {}: generation {building} is being rebuilt and cannot be dropped",
            store.name()
        )
    );
}

#[tokio::test]
async fn a_second_rebuild_of_the_same_generation_does_not_break_the_first_ones_careful_batches() {
    let dir = tempfile::tempdir().unwrap();
    let records = scenario_on_one_partition(dir.path()).await;
    let store = sqlite_store(dir.path(), "views.db").await;
    catch_up(&Served::one(records.clone()), &store, 1, 10).await;
    let gen = store.begin_rebuild().await.unwrap();
    catch_up(
        &Served::one(records[..records.len() / 2].to_vec()),
        &store,
        gen,
        10,
    )
    .await;
    // The first rebuild's next pass is careful; a second rebuild of the same number starts
    // the generation over (rows, checkpoints and indexes) during its second read.
    let log = Served::one(records.clone());
    let second = store.clone();
    let reader = Hooked {
        log: &log,
        reads: Default::default(),
        at: 2,
        hook: Box::new(move || {
            let s = second.clone();
            Box::pin(async move {
                assert_eq!(s.begin_rebuild().await.unwrap(), 2);
            })
        }),
    };
    catch_up(&reader, &store, gen, 10).await;
    store.finish_rebuild(gen).await.unwrap();
    let clean = sqlite_store(dir.path(), "clean.db").await;
    catch_up(&log, &clean, 1, 10).await;
    assert_eq!(store.dump(gen).await.unwrap(), clean.dump(1).await.unwrap());
    assert_eq!(store.generation_indexes().await.unwrap(), indexes_of(&[2]));
}

#[tokio::test]
async fn a_runner_left_behind_by_a_swap_does_not_index_the_dropped_generation_again() {
    let dir = tempfile::tempdir().unwrap();
    let log = Served::one(scenario_on_one_partition(dir.path()).await);
    let store = sqlite_store(dir.path(), "views.db").await;
    catch_up(&log, &store, 1, 10).await;
    let gen = store.begin_rebuild().await.unwrap();
    catch_up(&log, &store, gen, 10).await;
    // A worker still on generation 1, with nothing new to project, while the rebuild swaps
    // generation 2 in and drops 1.
    let rebuild = store.clone();
    let reader = Hooked {
        log: &log,
        reads: Default::default(),
        at: 1,
        hook: Box::new(move || {
            let s = rebuild.clone();
            Box::pin(async move {
                let old = s.swap_in(2).await.unwrap();
                s.drop_generation(old.unwrap()).await.unwrap();
            })
        }),
    };
    catch_up(&reader, &store, 1, 10).await;
    assert_eq!(store.generation_indexes().await.unwrap(), indexes_of(&[2]));
}

async fn each_generation_records_the_rules_it_was_built_with(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let recorder = log_with(dir.path(), &scenario_jsonl()).await;
    assert_eq!(store.generation_rules(1).await.unwrap(), None);
    let gen = project(&recorder, &store, 500).await;
    let shipped = Rules::shipped().unwrap().fingerprint();
    assert_eq!(
        store.generation_rules(gen).await.unwrap(),
        Some(shipped.clone())
    );
    // A rebuild under other rules records those for its generation; the replaced one's row
    // goes with it.
    let other = Rules::from_files(
        assist_projections::sla::SHIPPED_POLICIES,
        &assist_projections::sla::SHIPPED_CALENDARS[..1],
    )
    .unwrap();
    let next = store.begin_rebuild().await.unwrap();
    assist_projections::Runner {
        log: recorder.log().as_ref(),
        store: &store,
        rules: &other,
        batch: 500,
        memory: Default::default(),
    }
    .catch_up(next, |_| {})
    .await
    .unwrap();
    store.finish_rebuild(next).await.unwrap();
    assert_eq!(
        store.generation_rules(next).await.unwrap(),
        Some(other.fingerprint())
    );
    assert_ne!(other.fingerprint(), shipped);
    assert_eq!(store.generation_rules(gen).await.unwrap(), None);
}

#[tokio::test]
async fn each_generation_records_the_rules_it_was_built_with_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    each_generation_records_the_rules_it_was_built_with(sqlite_store(dir.path(), "v.db").await)
        .await;
}

#[tokio::test]
async fn each_generation_records_the_rules_it_was_built_with_on_postgres() {
    let (store, _db) = postgres_store().await;
    each_generation_records_the_rules_it_was_built_with(store).await;
}

/// PostgreSQL, one worker per partition: an id that another worker applies (from another
/// stream) after this worker's careful batch looked it up but before it wrote, is a
/// duplicate, not an error that stops the worker. The other worker is played by a
/// transaction holding the id's audit row uncommitted while the batch runs into it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_an_id_applied_by_another_worker_during_a_careful_batch_is_a_duplicate() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let records = scenario_on_one_partition(dir.path()).await;
    let (store, pg) = postgres_store().await;
    // The first half projected: the rest starts from a checkpoint, carefully.
    let half = records.len() / 2;
    catch_up(&Served::one(records[..half].to_vec()), &store, 1, 1000).await;
    let taken = records[half + 3].event_id.unwrap().to_string();
    let mut other = sqlx::PgConnection::connect(&pg.url()).await.unwrap();
    let mut tx = other.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO audit_events (gen, event_id, stream, seq, part, log_offset, event_type, occurred_at, recorded_at, actor, record_delay_ms, hash, prev_hash) \
         VALUES (1, $1, 'person-0192f0c1-8a3b-7cde-9f00-00000000ffff', 1, 5, 0, 'alert_raised', '2026-03-01T00:00:00.000Z', '2026-03-01T00:00:00.000Z', 'cw-x', 0, 'h', '')",
    )
    .bind(&taken)
    .execute(&mut *tx)
    .await
    .unwrap();
    let log = Served::one(records.clone());
    let rules = Rules::shipped().unwrap();
    let runner = Runner {
        log: &log,
        store: &store,
        rules: &rules,
        batch: 1000,
        memory: Default::default(),
    };
    let run = runner.catch_up(1, |_| {});
    tokio::pin!(run);
    // The batch's write waits on the uncommitted row of the same id ...
    let waited = tokio::time::timeout(std::time::Duration::from_millis(1500), &mut run).await;
    assert!(waited.is_err(), "the batch ran into the other worker's row");
    // ... which then commits: the id is the other worker's.
    tx.commit().await.unwrap();
    let stats = run.await.expect("the worker goes on");
    assert_eq!(stats.duplicates, 1);
    assert_eq!(stats.applied, (records.len() - half - 1) as u64);
    store.close().await;
}

/// A log whose first read of one partition waits until the test lets it go, with records
/// the test may add to that partition meanwhile.
struct Gated {
    log: std::sync::Mutex<Served>,
    gated: u32,
    arrived: tokio::sync::Notify,
    release: tokio::sync::Notify,
    waited: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl PartitionReader for Gated {
    fn partition_count(&self) -> u32 {
        self.log.lock().unwrap().parts.len() as u32
    }

    async fn read_partition(
        &self,
        p: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<Record>, assist_log::LogError> {
        if p == self.gated && !self.waited.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.arrived.notify_one();
            self.release.notified().await;
        }
        Ok(self.log.lock().unwrap().read(p, from, max))
    }

    async fn partitions(&self) -> Result<Vec<PartitionInfo>, assist_log::LogError> {
        Ok(self.log.lock().unwrap().infos())
    }
}

#[async_trait]
impl StreamReader for Gated {
    async fn read_stream(&self, stream: &str) -> Result<Vec<Record>, assist_log::LogError> {
        Ok(self.log.lock().unwrap().stream(stream))
    }
}

/// A runner projecting a generation that was being rebuilt when it started, and that
/// another process swapped in while the runner went on: what the runner writes from then
/// on goes into a live generation, so it never defers subjects' rows there (a query would
/// miss those subjects until the partition's end).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generation_swapped_in_during_a_catch_up_never_gets_deferred_rows() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = log_with(dir.path(), &scenario_jsonl()).await;
    let placed = Served::by_stream(all_records(&recorder).await, 2);
    let later = placed.parts[1].clone();
    assert!(later.len() > 10, "partition 1 has {} records", later.len());
    let store = sqlite_store(dir.path(), "views.db").await;
    let gen = store.begin_rebuild().await.unwrap();
    let side =
        sqlx::SqlitePool::connect(&format!("sqlite:{}", dir.path().join("views.db").display()))
            .await
            .unwrap();
    // Every checkpoint partition 1 of that generation is given, in order.
    sqlx::raw_sql(&format!(
        "CREATE TABLE seen (subjects_deferred INTEGER, active INTEGER);
         CREATE TRIGGER seen_insert AFTER INSERT ON checkpoints WHEN NEW.gen = {gen} AND NEW.part = 1
           BEGIN INSERT INTO seen SELECT NEW.subjects_deferred, active_gen FROM view_state; END;
         CREATE TRIGGER seen_update AFTER UPDATE ON checkpoints WHEN NEW.gen = {gen} AND NEW.part = 1
           BEGIN INSERT INTO seen SELECT NEW.subjects_deferred, active_gen FROM view_state; END;"
    ))
    .execute(&side)
    .await
    .unwrap();
    // Partition 1 is empty when the runner starts, and waits at its first read.
    let log = std::sync::Arc::new(Gated {
        log: std::sync::Mutex::new(Served::placed(vec![placed.parts[0].clone(), Vec::new()])),
        gated: 1,
        arrived: tokio::sync::Notify::new(),
        release: tokio::sync::Notify::new(),
        waited: false.into(),
    });
    let run = {
        let (log, store) = (log.clone(), store.clone());
        tokio::spawn(async move {
            let rules = Rules::shipped().unwrap();
            Runner {
                log: log.as_ref(),
                store: &store,
                rules: &rules,
                batch: 5,
                memory: Default::default(),
            }
            .catch_up(gen, |_| {})
            .await
        })
    };
    log.arrived.notified().await;
    // Partition 0 is whole (its subjects' rows written at its end): another process swaps
    // the generation in; then partition 1's facts arrive.
    let swapped = async {
        while store.swap_in(gen).await.is_err() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), swapped)
        .await
        .expect("partition 0 was caught up and swapped in");
    assert_eq!(store.active_gen().await.unwrap(), gen);
    *log.log.lock().unwrap() = Served::placed(vec![placed.parts[0].clone(), later]);
    log.release.notify_one();
    run.await.unwrap().unwrap();
    let seen: Vec<(i64, i64)> = sqlx::query_as("SELECT subjects_deferred, active FROM seen")
        .fetch_all(&side)
        .await
        .unwrap();
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .all(|&(deferred, active)| active == gen && deferred == 0),
        "partition 1's checkpoints in the live generation: {seen:?}"
    );
}

/// Projects partitions `partitions` of `log` into generation `gen`, as a worker owning
/// them in a consumer group does.
async fn catch_up_owned(log: &dyn ProjectionLog, store: &Store, gen: i64, partitions: &[u32]) {
    let rules = Rules::shipped().unwrap();
    Runner {
        log,
        store,
        rules: &rules,
        batch: 5,
        memory: Default::default(),
    }
    .catch_up_partitions(gen, partitions, |_| {})
    .await
    .unwrap();
}

/// The scenario's facts on two partitions, and the views one runner projects of them.
async fn two_partitions_and_their_views(dir: &std::path::Path) -> (Served, String) {
    let recorder = log_with(dir, &scenario_jsonl()).await;
    let log = Served::by_stream(all_records(&recorder).await, 2);
    assert!(log.parts.iter().all(|p| !p.is_empty()));
    let whole = sqlite_store(dir, "whole.db").await;
    catch_up(&log, &whole, whole.live_gen().await.unwrap(), 5).await;
    let views = whole.dump(whole.active_gen().await.unwrap()).await.unwrap();
    (log, views)
}

#[tokio::test]
async fn a_store_whose_views_were_never_built_reads_an_empty_generation_and_builds_the_first_unread(
) {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path(), "views.db").await;
    assert_eq!(store.active_gen().await.unwrap(), 0);
    assert_eq!(store.live_gen().await.unwrap(), 1);
}

/// A fresh store about to build its first generation of the scenario's facts on two
/// partitions, and the views one runner projects of them.
struct FirstBuild {
    dir: tempfile::TempDir,
    log: Served,
    expected: String,
    store: Store,
    gen: i64,
}

async fn first_build() -> FirstBuild {
    let dir = tempfile::tempdir().unwrap();
    let (log, expected) = two_partitions_and_their_views(dir.path()).await;
    let store = sqlite_store(dir.path(), "views.db").await;
    let gen = store.live_gen().await.unwrap();
    FirstBuild {
        dir,
        log,
        expected,
        store,
        gen,
    }
}

impl FirstBuild {
    /// Runs `sql` (`$1` the generation) on a connection of its own, as another process
    /// would, or as a runner that stopped left the store.
    async fn behind_the_runner(&self, sql: &str) {
        let url = format!("sqlite:{}", self.dir.path().join("views.db").display());
        let side = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query(sql)
            .bind(self.gen)
            .execute(&side)
            .await
            .unwrap();
        side.close().await;
    }

    /// Partition 0 caught up by a worker owning it alone: the build is not read yet.
    async fn partition_0_alone(&self) {
        catch_up_owned(&self.log, &self.store, self.gen, &[0]).await;
        assert_eq!(self.store.active_gen().await.unwrap(), 0, "not read yet");
    }

    /// Partition 1 caught up: the build is read, and holds one runner's views.
    async fn then_partition_1(&self) {
        catch_up_owned(&self.log, &self.store, self.gen, &[1]).await;
        assert_eq!(self.store.active_gen().await.unwrap(), self.gen);
        assert_eq!(self.store.dump(self.gen).await.unwrap(), self.expected);
    }
}

/// Two workers of a consumer group build a store's first generation, each its own
/// partition: queries read nothing of it until both are done, then all of it.
#[tokio::test]
async fn a_first_build_is_read_only_once_every_partition_with_facts_is_projected() {
    let b = first_build().await;
    b.partition_0_alone().await;
    assert_eq!(
        b.store.dump(0).await.unwrap(),
        b.store.dump(99).await.unwrap(),
        "queries read no rows meanwhile"
    );
    b.then_partition_1().await;
}

/// A partition of the first build whose subjects' rows are still deferred (its runner
/// stopped, or is still at work) keeps the build unread when another partition's runner
/// finishes; the partition's next catch-up starts it over and swaps the build in.
#[tokio::test]
async fn a_first_build_with_a_partition_still_deferred_is_not_read() {
    let b = first_build().await;
    b.behind_the_runner("INSERT INTO checkpoints (gen, part, next_offset, digest, subjects_deferred) VALUES ($1, 1, 3, '', 1)").await;
    b.partition_0_alone().await;
    b.then_partition_1().await;
}

/// Migration 0020 makes a store unread until its first build only when it never
/// projected anything: a store that did keeps reading its generation.
#[tokio::test]
async fn a_store_that_projected_before_the_first_build_was_unread_keeps_its_generation() {
    let dir = tempfile::tempdir().unwrap();
    let (log, expected) = two_partitions_and_their_views(dir.path()).await;
    let url = format!("sqlite:{}", dir.path().join("views.db").display());
    let undo_0020 = |active: i64, building: Option<i64>| {
        let url = url.clone();
        async move {
            let side = sqlx::SqlitePool::connect(&url).await.unwrap();
            for undo in [
                "DELETE FROM _sqlx_migrations WHERE version = 20",
                "DROP TABLE partitions_caught_up",
            ] {
                sqlx::query(undo).execute(&side).await.unwrap();
            }
            sqlx::query("UPDATE view_state SET active_gen = $1, building_gen = $2")
                .bind(active)
                .bind(building)
                .execute(&side)
                .await
                .unwrap();
            side.close().await;
        }
    };
    // Never projected under 0019: its generation 1 was active and empty.
    let store = Store::open(&url).await.unwrap();
    store.close().await;
    undo_0020(1, None).await;
    let store = Store::open(&url).await.unwrap();
    assert_eq!(store.active_gen().await.unwrap(), 0);
    assert_eq!(store.live_gen().await.unwrap(), 1);
    catch_up(&log, &store, 1, 5).await;
    store.close().await;
    // Projected under 0019: generation 1 active, with checkpoints.
    undo_0020(1, None).await;
    let store = Store::open(&url).await.unwrap();
    assert_eq!(store.active_gen().await.unwrap(), 1);
    assert_eq!(store.dump(1).await.unwrap(), expected);
}

/// A partition of the first build that a runner left part way (its memory proved wrong
/// or forgot, so it went on batch by batch, and stopped) keeps the build unread: a
/// checkpoint past 0 is not a partition caught up.
#[tokio::test]
async fn a_first_build_with_a_partition_projected_only_part_way_is_not_read() {
    let b = first_build().await;
    b.behind_the_runner("INSERT INTO checkpoints (gen, part, next_offset, digest, subjects_deferred) VALUES ($1, 1, 3, '', 0)").await;
    b.partition_0_alone().await;
    // Taken back to where nothing of it was projected, it is projected whole.
    b.behind_the_runner("DELETE FROM checkpoints WHERE gen = $1 AND part = 1")
        .await;
    b.then_partition_1().await;
}

/// A rebuild asked for while the views' first build is under way joins it: what the
/// build's runners wrote stays, and the rebuild finishes it.
#[tokio::test]
async fn a_rebuild_of_views_never_built_joins_their_first_build() {
    let b = first_build().await;
    b.partition_0_alone().await;
    let half = b.store.dump(b.gen).await.unwrap();
    assert_eq!(b.store.begin_rebuild().await.unwrap(), b.gen);
    assert_eq!(
        b.store.dump(b.gen).await.unwrap(),
        half,
        "nothing of it emptied"
    );
    catch_up(&b.log, &b.store, b.gen, 5).await;
    b.store.finish_rebuild(b.gen).await.unwrap();
    assert_eq!(b.store.active_gen().await.unwrap(), b.gen);
    assert_eq!(b.store.dump(b.gen).await.unwrap(), b.expected);
}
