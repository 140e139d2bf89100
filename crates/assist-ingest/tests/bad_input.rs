//! The bad-input corpus: each bad line gets its exact reason, and the valid lines around
//! it are stored, once each, with nothing else.

use assist_ingest::{IngestOptions, IngestReport, Recorder, Rejection};

use serde_json::{json, Value};
use uuid::Uuid;

const PERSON: &str = "person-0192f0c1-8a3b-7cde-9f00-0123456789ab";
const HOUSEHOLD: &str = "household-0192f0c1-8a3b-7cde-9f00-00000000a001";

/// A valid event of `type_` with `data`, on the example person, with a fresh UUIDv7.
fn event(type_: &str, version: u32, data: Value) -> Value {
    json!({
        "event_id": Uuid::now_v7().to_string(),
        "stream": PERSON,
        "type": type_,
        "schema_version": version,
        "occurred_at": "2026-03-02T09:00:00+08:00",
        "recorded_at": "2026-03-02T10:00:00+08:00",
        "actor": {"id": "cw-350121-007", "role": "caseworker", "region": "350121"},
        "correlation_id": "01934a5e-0000-7000-8000-00000000c0c0",
        "causation_id": null,
        "data": data,
    })
}

fn contact() -> Value {
    event("contact_made", 1, json!({"channel": "phone"}))
}

fn offer() -> Value {
    event(
        "job_offer_pushed",
        2,
        json!({"offer_id": "01934a5e-0000-7000-8000-00000000f0f1", "job_id": "JB-1", "job_title": "food packer",
               "employer": {"id": "91350121MA2XYZ1234", "name": "Minhou Foods"},
               "wage": 4200, "wage_period": "month", "location": "350121"}),
    )
}

const NATIONAL_ID: &str = "35012119900307002X";

fn registration() -> Value {
    event(
        "person_registered",
        1,
        json!({"name": "Lin Xiaomei", "national_id": NATIONAL_ID, "birth_year": 1990, "sex": "female",
               "region": "350121", "groups": ["poverty_relieved"]}),
    )
}

fn line(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// The line numbers of the accepted lines.
fn accepted_lines(report: &IngestReport) -> Vec<usize> {
    report.accepted.iter().map(|(l, _)| *l).collect()
}

struct Run {
    report: IngestReport,
    recorder: Recorder,
    _dir: tempfile::TempDir,
}

async fn ingest(lines: &[Vec<u8>]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::open_embedded(dir.path()).await.unwrap();
    let input = lines.join(&b'\n');
    let report = recorder
        .ingest(input.as_slice(), IngestOptions::default())
        .await
        .unwrap();
    Run {
        report,
        recorder,
        _dir: dir,
    }
}

async fn stored_total(recorder: &Recorder) -> u64 {
    recorder.log().record_count().await.unwrap()
}

/// Ingests a valid line, `bad`, and another valid line; checks that exactly the two
/// valid ones are stored and that `bad` is rejected with `reason`.
async fn assert_rejected(bad: Vec<u8>, reason: &str) -> Rejection {
    let (before, after) = (contact(), contact());
    let run = ingest(&[line(&before), bad, line(&after)]).await;
    assert_eq!(run.report.rejected.len(), 1, "{:?}", run.report.rejected);
    let rejection = run.report.rejected[0].clone();
    assert_eq!((rejection.line, rejection.reason.as_str()), (2, reason));
    assert_eq!(accepted_lines(&run.report), vec![1, 3]);
    assert_eq!(
        stored_total(&run.recorder).await,
        2,
        "nothing else stored, nothing doubled"
    );
    let ids: Vec<Uuid> = [&before, &after]
        .iter()
        .map(|v| v["event_id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        run.recorder.log().find_ids(&ids).await.unwrap().len(),
        2,
        "the valid lines are stored"
    );
    rejection
}

/// Rejects `bad` (an event value) and checks the rejection names its event id.
async fn assert_event_rejected(bad: Value, reason: &str) {
    let id = bad["event_id"]
        .as_str()
        .and_then(|s| s.parse::<Uuid>().ok());
    let rejection = assert_rejected(line(&bad), reason).await;
    assert_eq!(rejection.event_id, id);
}

fn with(mut v: Value, path: &[&str], value: Value) -> Value {
    let mut at = &mut v;
    for p in &path[..path.len() - 1] {
        at = &mut at[*p];
    }
    at[path[path.len() - 1]] = value;
    v
}

fn without(mut v: Value, path: &[&str]) -> Value {
    let mut at = &mut v;
    for p in &path[..path.len() - 1] {
        at = &mut at[*p];
    }
    at.as_object_mut().unwrap().remove(path[path.len() - 1]);
    v
}

macro_rules! rejects {
    ($($name:ident: $bad:expr => $reason:expr;)*) => {
        $(
            #[tokio::test]
            async fn $name() {
                assert_event_rejected($bad, $reason).await;
            }
        )*
    };
}

macro_rules! rejects_raw {
    ($($name:ident: $bad:expr => $reason:expr;)*) => {
        $(
            #[tokio::test]
            async fn $name() {
                let rejection = assert_rejected($bad, $reason).await;
                assert_eq!(rejection.event_id, None);
            }
        )*
    };
}

rejects_raw! {
    truncated_json: br#"{"event_id": "01934a5e-0000-7000-8000-0000000000aa", "stream": "pers"#.to_vec()
        => "invalid JSON at column 68: EOF while parsing a string";
    json_with_trailing_garbage: [line(&contact()), b" x".to_vec()].concat()
        => format!("invalid JSON at column {}: trailing characters", line(&contact()).len() + 2).as_str();
    a_json_array_is_not_an_event: b"[1, 2]".to_vec()
        => "an event must be a JSON object, found an array";
    a_json_string_is_not_an_event: br#""contact_made""#.to_vec()
        => "an event must be a JSON object, found a string";
    invalid_utf8: [br#"{"event_id": "a"#.to_vec(), vec![0xff, 0xfe], br#""}"#.to_vec()].concat()
        => "invalid UTF-8 at byte 16";
    an_oversized_line: with(contact(), &["data", "padding"], json!("x".repeat(70_000))).to_string().into_bytes()
        => "line is 70416 bytes; an event may have at most 65536";
    single_quotes_are_not_json: b"{'event_id': 'x'}".to_vec()
        => "invalid JSON at column 2: key must be a string";
}

rejects! {
    a_missing_event_id: without(contact(), &["event_id"]) => "missing field `event_id`";
    a_malformed_event_id: with(contact(), &["event_id"], json!("abc")) => "event_id: text (3 chars) is not a UUID";
    an_event_id_of_the_wrong_type: with(contact(), &["event_id"], json!(12)) => "event_id: invalid type: integer `12`, expected a string";
    a_random_uuid_is_not_a_v7: with(contact(), &["event_id"], json!("0192f0c1-8a3b-4cde-9f00-0123456789ab"))
        => "event_id: must be a UUIDv7 (time-ordered), got version 4";
    a_missing_stream: without(contact(), &["stream"]) => "missing field `stream`";
    a_malformed_stream: with(contact(), &["stream"], json!("person-xyz"))
        => "stream: stream (text, 10 chars) must be person-<uuid> or household-<uuid>";
    a_household_event_on_a_person_stream: event("household_exited", 1, json!({"reason": "moved_away"}))
        => r#"stream: event type "household_exited" does not belong on a person stream"#;
    a_person_event_on_a_household_stream: with(offer(), &["stream"], json!(HOUSEHOLD))
        => r#"stream: event type "job_offer_pushed" does not belong on a household stream"#;
    an_unknown_event_type: with(contact(), &["type"], json!("x")) => "unknown event type (text, 1 char)";
    a_missing_type: without(contact(), &["type"]) => "missing field `type`";
    an_unknown_schema_version: with(contact(), &["schema_version"], json!(9))
        => r#"event type "contact_made" has no schema_version 9 (known: 1)"#;
    a_schema_version_as_text: with(contact(), &["schema_version"], json!("1"))
        => "schema_version: invalid type: text (1 char), expected u32";
    an_unknown_envelope_field: with(contact(), &["priority"], json!("high"))
        => "unknown field `priority`, expected one of `event_id`, `stream`, `type`, `schema_version`, `occurred_at`, `recorded_at`, `actor`, `correlation_id`, `causation_id`, `data`";
    an_occurred_at_that_is_no_timestamp: with(contact(), &["occurred_at"], json!("yesterday"))
        => "occurred_at: text (9 chars) is not an RFC 3339 timestamp with offset (like 2026-03-01T09:30:00+08:00)";
    an_occurred_at_without_offset: with(contact(), &["occurred_at"], json!("2026-03-02T09:00:00"))
        => "occurred_at: text (19 chars) is not an RFC 3339 timestamp with offset (like 2026-03-01T09:30:00+08:00)";
    an_occurred_at_after_recorded_at: with(contact(), &["occurred_at"], json!("2026-03-02T11:00:00+08:00"))
        => "occurred_at: 2026-03-02T03:00:00Z is after recorded_at 2026-03-02T02:00:00Z";
    an_occurred_at_before_2000: with(contact(), &["occurred_at"], json!("1999-12-31T09:00:00+08:00"))
        => "occurred_at: 1999-12-31T01:00:00Z is before 2000-01-01";
    a_missing_actor: without(contact(), &["actor"]) => "missing field `actor`";
    a_region_code_of_four_digits: with(contact(), &["actor", "region"], json!("3501"))
        => "actor.region: region code (text, 4 chars) must have 6 digits (province+city+county)";
    a_region_code_of_no_province: with(contact(), &["actor", "region"], json!("990101"))
        => "actor.region: region code (6 digits) does not start with a province code (GB/T 2260: 11 to 82)";
    a_region_code_as_a_number: with(contact(), &["actor", "region"], json!(350121))
        => "actor.region: invalid type: integer `350121`, expected a string";
    an_unknown_actor_role: with(contact(), &["actor", "role"], json!("boss"))
        => "actor.role: unknown value (text, 4 chars); expected one of: caseworker, supervisor, service, auditor";
    an_actor_id_that_is_a_name: with(contact(), &["actor", "id"], json!("Wang Fang"))
        => "actor.id: staff id (text, 9 chars) must be 1 to 64 characters of A-Z a-z 0-9 . _ : -";
    a_malformed_correlation_id: with(contact(), &["correlation_id"], json!("c0c0"))
        => "correlation_id: text (4 chars) is not a UUID";
    an_event_that_causes_itself: {
        let e = contact();
        let id = e["event_id"].clone();
        with(e, &["causation_id"], id)
    } => "causation_id: an event cannot cause itself";
    a_missing_data: without(contact(), &["data"]) => "missing field `data`";
    data_that_is_not_an_object: with(contact(), &["data"], json!(5))
        => "data: invalid type: integer `5`, expected struct ContactMade";
    an_unknown_data_field: with(contact(), &["data", "colour"], json!("red"))
        => "data: unknown field `colour`, expected `alert_id` or `channel`";
    a_missing_data_field: without(contact(), &["data", "channel"]) => "data: missing field `channel`";
    an_unknown_enum_value: with(contact(), &["data", "channel"], json!("pigeon"))
        => "data.channel: unknown value (text, 6 chars); expected one of: phone, home_visit, service_point, online";
    a_negative_wage: with(offer(), &["data", "wage"], json!(-5)) => "data.wage: must be >= 0, got -5";
    a_wage_as_text: with(offer(), &["data", "wage"], json!("4200"))
        => "data.wage: invalid type: text (4 chars), expected f64";
    a_blank_employer_name: with(offer(), &["data", "employer", "name"], json!("  "))
        => "data.employer.name: must not be empty";
    a_location_of_five_digits: with(offer(), &["data", "location"], json!("35012"))
        => "data.location: region code (text, 5 chars) must have 6 digits (province+city+county)";
    a_version_2_field_in_a_version_1_offer: with(offer(), &["schema_version"], json!(1))
        => "data: unknown field `wage`, expected one of `offer_id`, `job_id`, `job_title`, `employer`, `monthly_wage`, `location`";
    an_empty_needs_list: event("home_visit_completed", 1, json!({"needs": [], "wants_work": true, "able_to_work": true}))
        => "data.needs: must list at least one need";
    a_course_that_ends_before_it_starts: event("training_enrolled", 1, json!({"course_id": "C1", "starts_on": "2026-04-30", "ends_on": "2026-04-01"}))
        => "data.ends_on: 2026-04-01 is before starts_on 2026-04-30";
    an_impossible_date: event("training_enrolled", 1, json!({"course_id": "C1", "starts_on": "2026-02-30", "ends_on": "2026-04-01"}))
        => "data.starts_on: input is out of range";
    a_certificate_level_of_nine: event("training_certified", 1, json!({"course_id": "C1", "occupation": "welder", "level": 9}))
        => "data.level: must be 1 to 5, got 9";
    a_session_of_thirty_hours: event("training_session_attended", 1, json!({"course_id": "C1", "session_on": "2026-04-02", "hours": 30}))
        => "data.hours: must be more than 0 and at most 24, got 30";
    a_transfer_to_nowhere: event("case_transferred", 1, json!({"reason": "workload"}))
        => "data: must name to_caseworker, to_region, or both";
    an_empty_group_list: event("case_opened", 1, json!({"groups": [], "reason": "alert"}))
        => "data.groups: must list at least one key group";
    a_household_member_that_is_a_household: with(
        event("household_identified", 1, json!({"region": "350121", "members": [{"person": HOUSEHOLD, "working_age": true, "able_and_willing": true}]})),
        &["stream"], json!(HOUSEHOLD))
        => format!("data.members[0].person: must be a person stream, got {HOUSEHOLD}").as_str();
    a_national_id_with_a_wrong_check_character: with(registration(), &["data", "national_id"], json!("350121199003070027"))
        => "data.national_id: check character does not match (value not shown)";
    a_national_id_as_a_number: with(registration(), &["data", "national_id"], json!(350121199003070026u64))
        => "data.national_id: must be a string (or, in stored form, an object with one field, sealed); value not shown";
    a_sealed_value_sent_to_ingest: with(registration(), &["data", "name"], json!({"sealed": "AAAA"}))
        => "data.name: must be plaintext when sent; assist seals personal data itself";
    a_birth_year_in_the_future: with(registration(), &["data", "birth_year"], json!(2200))
        => "data.birth_year: must be 1900 to 2100, got 2200";
}

#[tokio::test]
async fn a_recorded_at_in_the_future_is_rejected() {
    let bad = with(contact(), &["recorded_at"], json!("2099-01-01T00:00:00Z"));
    let run = ingest(&[line(&bad)]).await;
    let reason = &run.report.rejected[0].reason;
    assert!(
        reason.starts_with("recorded_at: 2099-01-01T00:00:00Z is in the future (ingest clock "),
        "{reason}"
    );
    assert!(reason.ends_with(", 5 minutes of skew allowed)"), "{reason}");
    assert_eq!(stored_total(&run.recorder).await, 0);
}

#[tokio::test]
async fn a_duplicate_id_inside_one_file_is_stored_once_and_reported_at_the_first_position() {
    let first = contact();
    let mut again = contact();
    again["event_id"] = first["event_id"].clone();
    let run = ingest(&[line(&first), line(&contact()), line(&again)]).await;
    assert_eq!(
        run.report.summary(),
        "accepted 2, duplicate 1, conflicting 0, rejected 0"
    );
    assert_eq!(run.report.duplicates, vec![(3, run.report.accepted[0].1)]);
    assert_eq!(stored_total(&run.recorder).await, 2);
}

#[tokio::test]
async fn a_file_ingested_twice_is_all_duplicates_the_second_time() {
    let lines = [line(&contact()), line(&registration()), line(&offer())];
    let run = ingest(&lines).await;
    let again = run
        .recorder
        .ingest(lines.join(&b'\n').as_slice(), IngestOptions::default())
        .await
        .unwrap();
    assert_eq!(
        again.summary(),
        "accepted 0, duplicate 3, conflicting 0, rejected 0"
    );
    assert_eq!(again.duplicates, run.report.accepted);
    assert_eq!(stored_total(&run.recorder).await, 3);
}

#[tokio::test]
async fn blank_lines_are_skipped_not_rejected() {
    let run = ingest(&[
        line(&contact()),
        b"".to_vec(),
        b"   ".to_vec(),
        line(&contact()),
    ])
    .await;
    assert_eq!(
        run.report.summary(),
        "accepted 2, duplicate 0, conflicting 0, rejected 0"
    );
    assert_eq!(accepted_lines(&run.report), vec![1, 4]);
}

#[tokio::test]
async fn atomic_ingest_stores_nothing_when_one_line_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::open_embedded(dir.path()).await.unwrap();
    let bad = with(offer(), &["data", "wage"], json!(-1));
    let input = [line(&contact()), line(&bad), line(&contact())].join(&b'\n');
    let report = recorder
        .ingest(
            input.as_slice(),
            IngestOptions {
                atomic: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(report.rolled_back);
    assert_eq!(
        report.summary(),
        "accepted 0, duplicate 0, conflicting 0, rejected 1"
    );
    assert_eq!(stored_total(&recorder).await, 0);
}

#[tokio::test]
async fn personal_data_for_an_erased_person_is_rejected_but_its_retry_is_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::open_embedded(dir.path()).await.unwrap();
    let reg = registration();
    let erasure = event(
        "personal_data_erased",
        1,
        json!({"reason": "person_requested"}),
    );
    let first = [line(&reg), line(&erasure)].join(&b'\n');
    let report = recorder
        .ingest(first.as_slice(), IngestOptions::default())
        .await
        .unwrap();
    assert_eq!(
        report.summary(),
        "accepted 2, duplicate 0, conflicting 0, rejected 0"
    );

    let retry = recorder
        .ingest(first.as_slice(), IngestOptions::default())
        .await
        .unwrap();
    assert_eq!(
        retry.summary(),
        "accepted 0, duplicate 2, conflicting 0, rejected 0"
    );

    let late = registration();
    let report = recorder
        .ingest(line(&late).as_slice(), IngestOptions::default())
        .await
        .unwrap();
    assert_eq!(report.rejected.len(), 1);
    assert!(report.rejected[0]
        .reason
        .starts_with(&format!("personal data of {PERSON} was erased at ")));
    assert_eq!(stored_total(&recorder).await, 2);
}

#[tokio::test]
async fn a_personal_value_typed_into_another_field_is_not_echoed() {
    let mut bad = registration();
    bad["data"]["birth_year"] = json!("Lin Xiaomei 35012119900307002X");
    bad["data"]["region"] = json!(NATIONAL_ID);
    let run = ingest(&[
        line(&bad),
        line(&with(registration(), &["data"], json!("Lin Xiaomei"))),
    ])
    .await;
    assert_eq!(run.report.rejected.len(), 2);
    for r in &run.report.rejected {
        assert!(
            !r.reason.contains("Lin") && !r.reason.contains("3501211990"),
            "{}",
            r.reason
        );
    }
    assert_eq!(
        run.report.rejected[0].reason,
        "data.birth_year: invalid type: text (30 chars), expected u16"
    );
}

#[tokio::test]
async fn chunked_ingest_keeps_order_line_numbers_and_counts() {
    let first = contact();
    let mut again = contact();
    again["event_id"] = first["event_id"].clone();
    let lines = [
        line(&first),
        b"".to_vec(),
        line(&with(contact(), &["type"], json!("x"))),
        line(&contact()),
        line(&again),
        line(&contact()),
        line(&offer()),
    ];
    let input = lines.join(&b'\n');
    for batch_lines in [1, 2, 3, 100] {
        let dir = tempfile::tempdir().unwrap();
        let r = Recorder::open_embedded(dir.path()).await.unwrap();
        let report = r
            .ingest(
                input.as_slice(),
                IngestOptions {
                    atomic: false,
                    batch_lines,
                },
            )
            .await
            .unwrap();
        assert_eq!(
            report.summary(),
            "accepted 4, duplicate 1, conflicting 0, rejected 1",
            "batch_lines {batch_lines}"
        );
        assert_eq!(accepted_lines(&report), vec![1, 4, 6, 7]);
        assert_eq!(report.duplicates, vec![(5, report.accepted[0].1)]);
        assert_eq!(report.rejected[0].line, 3);
        let offsets: Vec<u64> = report.accepted.iter().map(|(_, p)| p.offset).collect();
        assert_eq!(offsets, vec![0, 1, 2, 3], "appended in input order");
    }
}

#[tokio::test]
async fn atomic_ingest_stores_everything_when_every_line_is_good() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::open_embedded(dir.path()).await.unwrap();
    let input = [line(&contact()), line(&registration()), line(&offer())].join(&b'\n');
    let report = recorder
        .ingest(
            input.as_slice(),
            IngestOptions {
                atomic: true,
                batch_lines: 1,
            },
        )
        .await
        .unwrap();
    assert!(!report.rolled_back);
    assert_eq!(
        report.summary(),
        "accepted 3, duplicate 0, conflicting 0, rejected 0"
    );
    assert_eq!(stored_total(&recorder).await, 3);
}

#[tokio::test]
async fn no_rejection_message_repeats_a_national_id_number() {
    let bad = with(
        registration(),
        &["data", "national_id"],
        json!("350121199003070027"),
    );
    let run = ingest(&[line(&bad)]).await;
    assert!(!run.report.rejected[0].reason.contains("3501211990"));
}

// Issue 17: ingest takes only what is a valid fact.

rejects! {
    data_as_an_array_is_refused: with(contact(), &["data"], json!([null, "phone"]))
        => "data: must be a JSON object, found an array (fields are named, never positional)";
    an_actor_as_an_array_is_refused: with(contact(), &["actor"], json!(["cw-350121-007", "caseworker", "350121"]))
        => "actor: must be a JSON object, found an array (fields are named, never positional)";
    a_positional_person_registered_is_refused: with(registration(), &["data"],
        json!(["Lin Xiaomei", NATIONAL_ID, null, null, 1990, "female", "350121", ["poverty_relieved"]]))
        => "data: must be a JSON object, found an array (fields are named, never positional)";
    a_nested_object_as_an_array_is_refused: with(offer(), &["data", "employer"], json!(["91350121MA2XYZ1234", "Minhou Foods"]))
        => "data.employer: must be a JSON object, found an array (fields are named, never positional)";
    a_nul_character_in_a_text_field_is_refused: with(offer(), &["data", "job_title"], json!("food\u{0}packer"))
        => "data.job_title: contains a NUL character (U+0000), which no text may hold";
    a_nul_character_in_a_personal_field_is_refused_without_its_value: with(registration(), &["data", "name"], json!("Lin\u{0}Xiaomei"))
        => "data.name: contains a NUL character (U+0000), which no text may hold";
    a_leap_second_is_refused: with(contact(), &["occurred_at"], json!("2016-12-31T23:59:60Z"))
        => "occurred_at: has second 60 (a leap second); times in assist have none, write 23:59:59 or the next minute";
}

/// `text` with the first occurrence of `from` replaced by `to`.
fn replaced(v: &Value, from: &str, to: &str) -> Vec<u8> {
    let text = v.to_string();
    assert!(text.contains(from), "{text}");
    text.replacen(from, to, 1).into_bytes()
}

rejects_raw! {
    a_duplicate_envelope_key_is_refused_with_its_name:
        replaced(&contact(), r#""type":"contact_made""#, r#""type":"bogus","type":"contact_made""#)
        => "type: the key appears twice in one object; each key may appear once";
    a_duplicate_data_key_is_refused_with_its_path:
        replaced(&contact(), r#""channel":"phone""#, r#""channel":"phone","channel":"online""#)
        => "data.channel: the key appears twice in one object; each key may appear once";
}

#[tokio::test]
async fn a_byte_order_mark_at_the_start_of_the_input_is_accepted() {
    let input = [
        b"\xEF\xBB\xBF".to_vec(),
        line(&contact()),
        b"\n".to_vec(),
        line(&contact()),
    ]
    .concat();
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::open_embedded(dir.path()).await.unwrap();
    let report = recorder
        .ingest(input.as_slice(), IngestOptions::default())
        .await
        .unwrap();
    assert_eq!(report.rejected, vec![]);
    assert_eq!(accepted_lines(&report), vec![1, 2]);
}

#[tokio::test]
async fn a_byte_order_mark_inside_the_input_is_still_refused() {
    let run = ingest(&[
        line(&contact()),
        [b"\xEF\xBB\xBF".to_vec(), line(&contact())].concat(),
    ])
    .await;
    assert_eq!(run.report.rejected.len(), 1);
    assert_eq!(run.report.rejected[0].line, 2);
}

// Issue 17: nothing personal, nothing dangerous in messages.

rejects! {
    an_unknown_enum_value_is_described_not_echoed: with(registration(), &["data", "sex"], json!("Wu Ying"))
        => "data.sex: unknown value (text, 7 chars); expected one of: female, male";
    a_phone_number_as_a_channel_is_not_echoed: with(contact(), &["data", "channel"], json!("13800138000"))
        => "data.channel: unknown value (text, 11 chars); expected one of: phone, home_visit, service_point, online";
    a_phone_number_as_a_numeric_channel_is_not_echoed: with(contact(), &["data", "channel"], json!(13800138000u64))
        => "data.channel: invalid type: integer (11 digits); expected one of: phone, home_visit, service_point, online";
    a_name_as_actor_id_is_not_echoed: with(contact(), &["actor", "id"], json!("Wang Fang"))
        => "actor.id: staff id (text, 9 chars) must be 1 to 64 characters of A-Z a-z 0-9 . _ : -";
    a_national_id_inside_a_stream_is_not_echoed: with(contact(), &["stream"], json!(format!("person-{NATIONAL_ID}")))
        => "stream: stream (text, 25 chars) must be person-<uuid> or household-<uuid>";
    a_control_character_in_a_field_name_is_escaped: with(contact(), &["data", "\u{1b}[2J\u{7}x\u{7f}"], json!(1))
        => r"data: unknown field `\u{1b}[2J\u{7}x\u{7f}`, expected `alert_id` or `channel`";
    a_control_character_in_an_enum_value_is_not_echoed: with(contact(), &["data", "channel"], json!("\u{1b}]0;pwned\u{7}"))
        => "data.channel: unknown value (text, 10 chars); expected one of: phone, home_visit, service_point, online";
    a_long_field_name_is_truncated: with(contact(), &["data", "k".repeat(200).as_str()], json!(1))
        => format!("data: unknown field `{}…`, expected `alert_id` or `channel`", "k".repeat(40)).as_str();
    a_long_unknown_type_is_not_echoed: with(contact(), &["type"], json!("t".repeat(60_000)))
        => "unknown event type (text, 60000 chars)";
}

#[tokio::test]
async fn no_rejection_echoes_a_sixty_kilobyte_value_or_a_raw_control_character() {
    let big = "Lin Xiaomei ".repeat(5_000);
    let bad = [
        with(contact(), &["data", "channel"], json!(big)),
        with(contact(), &["actor", "id"], json!(big)),
        with(contact(), &["event_id"], json!(big)),
        with(contact(), &["occurred_at"], json!(big)),
        with(contact(), &["actor", "region"], json!(big)),
        with(offer(), &["data", "wage"], json!(big)),
        with(contact(), &["data", "k".repeat(60_000).as_str()], json!(1)),
        with(
            contact(),
            &["data", "channel"],
            json!("\u{1b}[31m\u{7}\u{7f}"),
        ),
    ];
    let run = ingest(&bad.iter().map(line).collect::<Vec<_>>()).await;
    assert_eq!(run.report.rejected.len(), bad.len());
    for r in &run.report.rejected {
        assert!(r.reason.len() < 300, "{}", r.reason);
        assert!(!r.reason.contains("Lin"), "{}", r.reason);
        assert!(!r.reason.chars().any(char::is_control), "{:?}", r.reason);
    }
}

// Issue 17: the same event id with other content is a conflicting reuse, not a duplicate.

/// `v` with the event id of `of`.
fn with_id_of(v: Value, of: &Value) -> Value {
    with(v, &["event_id"], of["event_id"].clone())
}

#[tokio::test]
async fn an_id_reused_with_other_content_in_one_file_is_a_conflict_not_a_duplicate() {
    let first = contact();
    let other = with_id_of(
        with(contact(), &["data", "channel"], json!("online")),
        &first,
    );
    let run = ingest(&[line(&first), line(&other)]).await;
    assert_eq!(
        run.report.summary(),
        "accepted 1, duplicate 0, conflicting 1, rejected 0"
    );
    let conflict = &run.report.conflicts[0];
    assert_eq!(
        (conflict.line, conflict.original),
        (2, Some(run.report.accepted[0].1))
    );
    assert_eq!(
        conflict.to_string(),
        format!(
            "line 2: {}: this event id is stored already with other content (at {}); a new fact needs a new id",
            first["event_id"].as_str().unwrap(),
            run.report.accepted[0].1
        )
    );
    assert_eq!(stored_total(&run.recorder).await, 1);
}

#[tokio::test]
async fn an_id_reused_with_other_content_in_a_later_ingest_is_a_conflict() {
    let first = offer();
    let run = ingest(&[line(&first)]).await;
    let other = with_id_of(with(offer(), &["data", "wage"], json!(4300)), &first);
    let again = run
        .recorder
        .ingest(line(&other).as_slice(), IngestOptions::default())
        .await
        .unwrap();
    assert_eq!(
        again.summary(),
        "accepted 0, duplicate 0, conflicting 1, rejected 0"
    );
    assert_eq!(again.conflicts[0].original, Some(run.report.accepted[0].1));
}

#[tokio::test]
async fn a_registration_reused_with_another_name_is_a_conflict_though_both_are_sealed() {
    let first = registration();
    let run = ingest(&[line(&first)]).await;
    let retry = run
        .recorder
        .ingest(line(&first).as_slice(), IngestOptions::default())
        .await
        .unwrap();
    assert_eq!(
        retry.summary(),
        "accepted 0, duplicate 1, conflicting 0, rejected 0"
    );
    let other = with(first, &["data", "name"], json!("Lin Xiaomai"));
    let again = run
        .recorder
        .ingest(line(&other).as_slice(), IngestOptions::default())
        .await
        .unwrap();
    assert_eq!(
        again.summary(),
        "accepted 0, duplicate 0, conflicting 1, rejected 0"
    );
    assert!(!again.conflicts[0].to_string().contains("Lin"));
}

#[tokio::test]
async fn a_retry_that_left_recorded_at_to_ingest_stays_a_duplicate() {
    let first = without(contact(), &["recorded_at"]);
    let run = ingest(&[line(&first)]).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let retry = run
        .recorder
        .ingest(line(&first).as_slice(), IngestOptions::default())
        .await
        .unwrap();
    assert_eq!(
        retry.summary(),
        "accepted 0, duplicate 1, conflicting 0, rejected 0"
    );
}

#[tokio::test]
async fn a_retry_with_its_keys_in_another_order_stays_a_duplicate() {
    let first = contact();
    let run = ingest(&[line(&first)]).await;
    let text = String::from_utf8(line(&first)).unwrap();
    let reordered: serde_json::Map<String, Value> =
        serde_json::from_str::<serde_json::Map<String, Value>>(&text)
            .unwrap()
            .into_iter()
            .rev()
            .collect();
    let retry = run
        .recorder
        .ingest(
            serde_json::to_vec(&reordered).unwrap().as_slice(),
            IngestOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        retry.summary(),
        "accepted 0, duplicate 1, conflicting 0, rejected 0"
    );
}

#[tokio::test]
async fn atomic_ingest_stores_nothing_when_an_id_is_reused_with_other_content() {
    let first = contact();
    let run = ingest(&[line(&first)]).await;
    let other = with_id_of(
        with(contact(), &["data", "channel"], json!("online")),
        &first,
    );
    let input = [line(&contact()), line(&other)].join(&b'\n');
    let report = run
        .recorder
        .ingest(
            input.as_slice(),
            IngestOptions {
                atomic: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(report.rolled_back);
    assert_eq!(
        report.summary(),
        "accepted 0, duplicate 0, conflicting 1, rejected 0"
    );
    assert_eq!(stored_total(&run.recorder).await, 1);
}
