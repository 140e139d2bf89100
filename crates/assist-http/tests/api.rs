//! The API on a real server over loopback: each test starts `assist_http::serve` on
//! 127.0.0.1:0 over a fresh embedded data dir and talks to it with reqwest.

use assist_catalog::personal::with_check_character;
use assist_catalog::RegionPrefix;
use assist_http::auth::{load_or_create_secret, Claims, Role, Signer, Verifier};
use assist_http::{App, Config, Views};
use assist_ingest::Recorder;
use assist_projections::sla::Rules;
use assist_projections::Store;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;

/// A running server and what its tests need to talk to it.
struct Server {
    base: String,
    app: Arc<App>,
    secret: Vec<u8>,
    client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

const BODY_LIMIT: usize = 256 * 1024;

async fn start() -> Server {
    start_with(
        None,
        Config {
            body_limit: BODY_LIMIT,
            ..Config::default()
        },
    )
    .await
}

/// A server that takes tokens signed by `public_key` (PEM) instead of the data dir's key.
async fn start_with(public_key: Option<&[u8]>, config: Config) -> Server {
    start_on(None, public_key, config).await
}

/// A server whose views live in `store` (a URL), or in the data dir's SQLite file.
async fn start_on(store: Option<&str>, public_key: Option<&[u8]>, config: Config) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::open_embedded(dir.path()).await.unwrap();
    let spec = store
        .map(str::to_string)
        .unwrap_or_else(|| format!("sqlite:{}", dir.path().join("views.db").display()));
    let store = Store::open(&spec).await.unwrap();
    let views = Views::new(recorder, store, Rules::shipped().unwrap(), 10_000);
    let secret = load_or_create_secret(dir.path()).unwrap();
    let verifier = match public_key {
        Some(pem) => Verifier::public_key_pem(pem).unwrap(),
        None => Verifier::shared_secret(&secret),
    };
    let app = Arc::new(App {
        views,
        verifier,
        config,
        metrics: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(assist_http::serve(listener, app.clone(), async {
        let _ = stopped.await;
    }));
    Server {
        base,
        app,
        secret,
        client: reqwest::Client::new(),
        stop: Some(stop),
        _dir: dir,
    }
}

impl Server {
    fn claims(&self, role: Role, region: &str, sub: &str) -> Claims {
        Claims::new(
            sub,
            role,
            &RegionPrefix::new(region).unwrap(),
            chrono::Duration::hours(1),
        )
    }

    fn sign(&self, claims: &Claims) -> String {
        Signer::shared_secret(&self.secret).sign(claims).unwrap()
    }

    fn token(&self, role: Role, region: &str, sub: &str) -> String {
        self.sign(&self.claims(role, region, sub))
    }

    fn service(&self) -> String {
        self.token(Role::Service, "35", "svc-fujian")
    }

    async fn post(&self, token: &str, path: &str, body: &Value) -> (StatusCode, Value, String) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap();
        answer(r).await
    }

    async fn get(&self, token: &str, path: &str) -> (StatusCode, Value, String) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        answer(r).await
    }

    async fn records(&self) -> u64 {
        self.app.views.recorder.log().record_count().await.unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Status, JSON body (Null when not JSON) and content type.
async fn answer(r: reqwest::Response) -> (StatusCode, Value, String) {
    let status = r.status();
    let kind = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        kind,
    )
}

fn assert_problem(answer: &(StatusCode, Value, String), status: u16, kind: &str) {
    assert_eq!(answer.0.as_u16(), status, "{}", answer.1);
    assert_eq!(answer.2, "application/problem+json");
    assert_eq!(answer.1["type"], format!("urn:assist:problem:{kind}"));
    assert_eq!(answer.1["status"], status);
}

/// A person stream with a fixed id (`n` tells people apart).
fn person(n: u32) -> String {
    format!("person-0192f0c1-8a3b-7cde-9f00-{n:012}")
}

fn id(person: u32, seq: u32) -> String {
    format!("01934a5e-{person:04x}-7{seq:03x}-8000-{seq:012}")
}

fn actor(region: &str) -> Value {
    json!({"id": format!("cw-{region}-007"), "role": "caseworker", "region": region})
}

fn envelope(n: u32, seq: u32, kind: &str, region: &str, day: u32, data: Value) -> Value {
    json!({
        "event_id": id(n, seq), "stream": person(n), "type": kind, "schema_version": 1,
        "occurred_at": format!("2026-03-{day:02}T09:00:00+08:00"),
        "recorded_at": format!("2026-03-{day:02}T10:00:00+08:00"),
        "actor": actor(region),
        "correlation_id": "01934a5e-0000-7000-8000-00000000c0c0", "causation_id": null,
        "data": data,
    })
}

/// A person registered, alerted, with a case opened and assigned to `caseworker`.
fn case(n: u32, region: &str, caseworker: &str) -> Vec<Value> {
    vec![
        envelope(
            n,
            1,
            "person_registered",
            region,
            2,
            json!({
                "name": "张三", "national_id": with_check_character("35010219900307123"),
                "phone": "13812345678", "address": "福建省福州市鼓楼区示例路1号",
                "birth_year": 1990, "sex": "male", "region": region, "groups": ["poverty_relieved"],
            }),
        ),
        envelope(
            n,
            2,
            "alert_raised",
            region,
            3,
            json!({
                "alert_id": "01934a5e-0000-7000-8000-0000000a1e47", "trigger": "job_lost", "source": "data_sharing",
            }),
        ),
        envelope(
            n,
            3,
            "case_opened",
            region,
            3,
            json!({"groups": ["poverty_relieved"], "reason": "alert"}),
        ),
        envelope(
            n,
            4,
            "case_assigned",
            region,
            3,
            json!({"caseworker": caseworker}),
        ),
    ]
}

async fn seeded() -> Server {
    let s = start().await;
    let mut events = case(1, "350102", "cw-350102-001");
    events.extend(case(2, "350203", "cw-350203-001"));
    let (status, body, _) = s.post(&s.service(), "/v1/events", &json!(events)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["counts"]["accepted"], 8, "{body}");
    s
}

#[tokio::test]
async fn a_written_event_reads_back_in_its_history_with_personal_fields_opened_for_its_caseworker()
{
    let s = seeded().await;
    let cw = s.token(Role::Caseworker, "350102", "cw-350102-001");
    let (status, body, _) = s
        .get(&cw, &format!("/v1/streams/{}/history", person(1)))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 4);
    assert_eq!(body["personal_fields"], "opened");
    let registered = &body["events"][0]["event"];
    assert_eq!(registered["type"], "person_registered");
    assert_eq!(registered["data"]["name"], "张三");
    assert_eq!(registered["occurred_at"], "2026-03-02T09:00:00+08:00");
}

#[tokio::test]
async fn a_history_shows_the_envelope_in_china_time_and_the_data_as_recorded() {
    let s = start().await;
    let looks_like_a_time = "2026-03-01T00:00:00Z";
    let mut events = case(1, "350102", "cw-350102-001");
    events.push(envelope(
        1,
        9,
        "training_referred",
        "350102",
        5,
        json!({"course_id": "C-1", "course_name": looks_like_a_time,
               "provider": "Minhou Vocational School", "subsidised": true}),
    ));
    let (status, body, _) = s.post(&s.service(), "/v1/events", &json!(events)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cw = s.token(Role::Caseworker, "350102", "cw-350102-001");
    let (status, body, _) = s
        .get(&cw, &format!("/v1/streams/{}/history", person(1)))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let training = &body["events"][4]["event"];
    assert_eq!(training["type"], "training_referred", "{body}");
    assert_eq!(training["data"]["course_name"], looks_like_a_time);
    assert_eq!(training["occurred_at"], "2026-03-05T09:00:00+08:00");
    assert_eq!(training["recorded_at"], "2026-03-05T10:00:00+08:00");
}

#[tokio::test]
async fn a_retried_post_reports_every_event_as_a_duplicate_at_its_original_position() {
    let s = start().await;
    let events = json!(case(1, "350102", "cw-1"));
    let (_, first, _) = s.post(&s.service(), "/v1/events", &events).await;
    let (status, again, _) = s.post(&s.service(), "/v1/events", &events).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["counts"]["duplicate"], 4, "{again}");
    for i in 0..4 {
        assert_eq!(again["events"][i]["outcome"], "duplicate");
        assert_eq!(
            again["events"][i]["original"],
            first["events"][i]["position"]
        );
    }
    assert_eq!(s.records().await, 4);
}

#[tokio::test]
async fn an_atomic_post_with_one_invalid_event_stores_nothing_and_names_it() {
    let s = start().await;
    let mut events = case(1, "350102", "cw-1");
    events[2]["type"] = json!("no_such_type");
    let answer = s
        .post(&s.service(), "/v1/events?atomic=true", &json!(events))
        .await;
    assert_problem(&answer, 422, "invalid-events");
    let rejected = &answer.1["events"][2];
    assert_eq!(rejected["outcome"], "rejected");
    assert_eq!(rejected["index"], 2);
    assert!(
        rejected["reason"].as_str().unwrap().contains("type"),
        "{rejected}"
    );
    assert_eq!(answer.1["events"][0]["outcome"], "not_stored");
    assert_eq!(s.records().await, 0);
}

#[tokio::test]
async fn without_atomic_the_valid_events_are_stored_and_the_invalid_one_reported_without_its_value()
{
    let s = start().await;
    let mut events = case(1, "350102", "cw-1");
    events[0]["data"]["national_id"] = json!("350102199003071230");
    let (status, body, _) = s.post(&s.service(), "/v1/events", &json!(events)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["counts"]["accepted"], 3, "{body}");
    assert_eq!(body["events"][0]["outcome"], "rejected");
    let reason = body["events"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("national_id"), "{reason}");
    assert!(!reason.contains("350102199003071230"), "{reason}");
    assert_eq!(body["events"][1]["outcome"], "accepted");
    assert!(body["events"][1]["position"]["offset"].is_u64());
    assert_eq!(s.records().await, 3);
}

#[tokio::test]
async fn an_expected_version_conflict_is_409_with_the_actual_version_and_stores_nothing() {
    let s = start().await;
    let events = case(1, "350102", "cw-1");
    let body = json!({"events": events, "expected": {person(1): 2}});
    let answer = s.post(&s.service(), "/v1/events", &body).await;
    assert_problem(&answer, 409, "wrong-expected-version");
    assert_eq!(answer.1["actual"], 0);
    assert_eq!(answer.1["stream"], person(1));
    assert_eq!(s.records().await, 0);
    let body = json!({"events": events, "expected": {person(1): "no_stream"}});
    let (status, ok, _) = s.post(&s.service(), "/v1/events", &body).await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    assert_eq!(s.records().await, 4);
}

#[tokio::test]
async fn json_lines_are_taken_with_the_ndjson_content_type() {
    let s = start().await;
    let lines: Vec<String> = case(1, "350102", "cw-1")
        .iter()
        .map(|e| e.to_string())
        .collect();
    let r = s
        .client
        .post(format!("{}/v1/events", s.base))
        .bearer_auth(s.service())
        .header("content-type", "application/x-ndjson")
        .body(lines.join("\n") + "\n")
        .send()
        .await
        .unwrap();
    let (status, body, _) = answer(r).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["counts"]["accepted"], 4);
}

#[tokio::test]
async fn an_oversized_body_is_a_413_problem() {
    let s = start().await;
    let r = s
        .client
        .post(format!("{}/v1/events", s.base))
        .bearer_auth(s.service())
        .header("content-type", "application/json")
        .body(format!("[\"{}\"]", "x".repeat(BODY_LIMIT + 1)))
        .send()
        .await
        .unwrap();
    assert_problem(&answer(r).await, 413, "too-large");
    assert_eq!(s.records().await, 0);
}

#[tokio::test]
async fn a_wrong_content_type_is_a_415_problem() {
    let s = start().await;
    let r = s
        .client
        .post(format!("{}/v1/events", s.base))
        .bearer_auth(s.service())
        .header("content-type", "text/plain")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_problem(&answer(r).await, 415, "unsupported-media-type");
}

#[tokio::test]
async fn malformed_json_is_a_400_problem_that_does_not_repeat_the_body() {
    let s = start().await;
    let r = s
        .client
        .post(format!("{}/v1/events", s.base))
        .bearer_auth(s.service())
        .header("content-type", "application/json")
        .body("[{\"event_id\": 13812345678,")
        .send()
        .await
        .unwrap();
    let a = answer(r).await;
    assert_problem(&a, 400, "malformed-json");
    assert!(!a.1["detail"].as_str().unwrap().contains("13812345678"));
}

async fn refused_token(s: &Server, token: &str) {
    let a = s.get(token, "/v1/caseload").await;
    assert_problem(&a, 401, "unauthorized");
}

#[tokio::test]
async fn an_expired_token_gets_401() {
    let s = start().await;
    let mut c = s.claims(Role::Supervisor, "35", "sup-1");
    c.exp = chrono::Utc::now().timestamp() - 3600;
    refused_token(&s, &s.sign(&c)).await;
}

#[tokio::test]
async fn a_forged_token_gets_401() {
    let s = start().await;
    let c = s.claims(Role::Supervisor, "35", "sup-1");
    let forged = Signer::shared_secret(b"not-the-servers-key-not-the-servers-key")
        .sign(&c)
        .unwrap();
    refused_token(&s, &forged).await;
}

#[tokio::test]
async fn a_token_for_another_audience_gets_401() {
    let s = start().await;
    let mut c = s.claims(Role::Supervisor, "35", "sup-1");
    c.aud = "another-service".into();
    refused_token(&s, &s.sign(&c)).await;
}

#[tokio::test]
async fn a_token_from_another_issuer_gets_401() {
    let s = start().await;
    let mut c = s.claims(Role::Supervisor, "35", "sup-1");
    c.iss = "someone-else".into();
    refused_token(&s, &s.sign(&c)).await;
}

#[tokio::test]
async fn no_token_gets_401() {
    let s = start().await;
    let r = s
        .client
        .get(format!("{}/v1/caseload", s.base))
        .send()
        .await
        .unwrap();
    assert_problem(&answer(r).await, 401, "unauthorized");
}

#[tokio::test]
async fn a_service_writing_events_outside_its_region_is_refused_and_nothing_is_stored() {
    let s = start().await;
    let mut events = case(1, "350102", "cw-1");
    events.extend(case(2, "350203", "cw-2"));
    let fuzhou = s.token(Role::Service, "3501", "svc-fuzhou");
    let a = s.post(&fuzhou, "/v1/events", &json!(events)).await;
    assert_problem(&a, 403, "out-of-scope");
    assert_eq!(a.1["indexes"], json!([4, 5, 6, 7]));
    assert_eq!(s.records().await, 0);
}

#[tokio::test]
async fn a_role_other_than_service_may_not_write() {
    let s = start().await;
    let sup = s.token(Role::Supervisor, "35", "sup-1");
    let a = s
        .post(&sup, "/v1/events", &json!(case(1, "350102", "cw-1")))
        .await;
    assert_problem(&a, 403, "forbidden");
    assert_eq!(s.records().await, 0);
}

#[tokio::test]
async fn a_subject_outside_the_callers_region_is_404_on_history() {
    let s = seeded().await;
    let auditor = s.token(Role::Auditor, "3501", "aud-fuzhou");
    let a = s
        .get(&auditor, &format!("/v1/streams/{}/history", person(2)))
        .await;
    assert_problem(&a, 404, "not-found");
    let unknown = s
        .get(&auditor, &format!("/v1/streams/{}/history", person(99)))
        .await;
    assert_eq!(
        unknown.1["detail"], a.1["detail"],
        "no difference leaks existence"
    );
}

#[tokio::test]
async fn a_person_without_a_case_is_read_where_its_first_fact_was_recorded() {
    let s = start().await;
    // Registered by a system in 350102, never alerted: no case row.
    let registered = case(3, "350102", "cw-350102-001")[..1].to_vec();
    let (status, body, _) = s.post(&s.service(), "/v1/events", &json!(registered)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let path = format!("/v1/streams/{}/history", person(3));
    let here = s.token(Role::Auditor, "3501", "aud-fuzhou");
    let (status, body, _) = s.get(&here, &path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["events"].as_array().map(Vec::len), Some(1), "{body}");
    let supervisor = s.token(Role::Supervisor, "350102", "sup-gulou");
    assert_eq!(s.get(&supervisor, &path).await.0, StatusCode::OK);
    let elsewhere = s.token(Role::Auditor, "3502", "aud-xiamen");
    assert_problem(&s.get(&elsewhere, &path).await, 404, "not-found");
    let caseworker = s.token(Role::Caseworker, "350102", "cw-350102-001");
    assert_problem(&s.get(&caseworker, &path).await, 404, "not-found");
}

#[tokio::test]
async fn the_caseload_as_of_a_day_counts_only_the_cases_opened_by_then() {
    let s = seeded().await;
    let sup = s.token(Role::Supervisor, "35", "sup-fujian");
    let total = |day: &str| {
        let path = format!("/v1/caseload?as_of={day}");
        let (s, sup) = (&s, &sup);
        async move {
            let (status, body, _) = s.get(sup, &path).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["total"].clone()
        }
    };
    // Both people were registered on 2 March and their cases opened on 3 March.
    assert_eq!(total("2026-03-02").await, json!(0));
    assert_eq!(total("2026-03-03").await, json!(2));
    let county = s.token(Role::Supervisor, "350102", "sup-gulou");
    let (_, body, _) = s.get(&county, "/v1/caseload?as_of=2026-03-03").await;
    assert_eq!(body["total"], json!(1), "only the caller's region: {body}");
    let bad = s.get(&sup, "/v1/caseload?as_of=yesterday").await;
    assert_problem(&bad, 400, "bad-parameter");
}

#[tokio::test]
async fn sla_answers_say_when_the_views_were_built_with_other_policies() {
    let s = seeded().await;
    let sup = s.token(Role::Supervisor, "35", "sup-fujian");
    for path in ["/v1/sla", "/v1/sla/clocks"] {
        let (status, body, _) = s.get(&sup, path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.get("policies_differ").is_none(), "{path}: {body}");
    }
    // As if the views had been built before the policies changed.
    let url = format!("sqlite:{}", s._dir.path().join("views.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("UPDATE generation_rules SET fingerprint = 'older-policies'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    for path in ["/v1/sla", "/v1/sla/clocks"] {
        let (status, body, _) = s.get(&sup, path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let differ = &body["policies_differ"];
        assert_eq!(differ["built_with"], "older-policies", "{path}: {body}");
        assert_eq!(
            differ["in_force"],
            Rules::shipped().unwrap().fingerprint(),
            "{path}: {body}"
        );
    }
}

#[tokio::test]
async fn a_caseworker_gets_404_for_a_subject_not_assigned_to_it() {
    let s = seeded().await;
    let other = s.token(Role::Caseworker, "350102", "cw-350102-002");
    let a = s
        .get(&other, &format!("/v1/streams/{}/history", person(1)))
        .await;
    assert_problem(&a, 404, "not-found");
}

#[tokio::test]
async fn a_supervisor_sees_personal_fields_masked() {
    let s = seeded().await;
    let sup = s.token(Role::Supervisor, "3501", "sup-fuzhou");
    let (status, body, _) = s
        .get(&sup, &format!("/v1/streams/{}/history", person(1)))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["personal_fields"], "masked");
    let data = &body["events"][0]["event"]["data"];
    assert_eq!(data["name"], "张*");
    assert_eq!(data["phone"], "138****5678");
    assert!(data["national_id"]
        .as_str()
        .unwrap()
        .starts_with("350102********"));
    insta::assert_json_snapshot!("supervisor_history_masked", body);
}

#[tokio::test]
async fn an_auditor_sees_masked_fields_without_a_reason_and_opened_ones_with_one() {
    let s = seeded().await;
    let auditor = s.token(Role::Auditor, "35", "aud-1");
    let path = format!("/v1/streams/{}/history", person(1));
    let (_, masked, _) = s.get(&auditor, &path).await;
    assert_eq!(masked["events"][0]["event"]["data"]["name"], "张*");
    let (_, opened, _) = s
        .get(&auditor, &format!("{path}?reason=complaint%20CX-17"))
        .await;
    assert_eq!(opened["personal_fields"], "opened");
    assert_eq!(opened["events"][0]["event"]["data"]["name"], "张三");
}

#[tokio::test]
async fn every_history_read_is_in_the_access_log_with_sub_role_and_reason() {
    let s = seeded().await;
    let path = format!("/v1/streams/{}/history", person(1));
    let cw = s.token(Role::Caseworker, "350102", "cw-350102-001");
    let auditor = s.token(Role::Auditor, "35", "aud-1");
    s.get(&cw, &path).await;
    s.get(
        &auditor,
        &format!("{path}?reason=complaint%20CX-17&as_of=2026-03-02"),
    )
    .await;
    let (log, total) = s.app.views.store.access_log(100, 0).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(
        (log[0].actor.as_str(), log[0].role.as_str()),
        ("cw-350102-001", "caseworker")
    );
    assert_eq!(log[0].stream, person(1));
    assert_eq!(log[0].reason, None);
    assert_eq!(
        (log[1].actor.as_str(), log[1].role.as_str()),
        ("aud-1", "auditor")
    );
    assert_eq!(log[1].reason.as_deref(), Some("complaint CX-17"));
    assert!(
        log[1].command.contains("as_of=2026-03-02T15:59:59.999Z"),
        "{}",
        log[1].command
    );
    assert!(log[1].command.contains("personal=opened"));
}

#[tokio::test]
async fn an_observer_gets_figures_but_no_list_of_people() {
    let s = seeded().await;
    let observer = s.token(Role::Observer, "35", "obs-1");
    let (status, load, _) = s.get(&observer, "/v1/caseload").await;
    assert_eq!(status, StatusCode::OK, "{load}");
    assert_eq!(load["total"], 2);
    assert!(load.get("cases").is_none(), "{load}");
    let (status, sla, _) = s.get(&observer, "/v1/sla?at=2026-03-04").await;
    assert_eq!(status, StatusCode::OK, "{sla}");
    assert_problem(&s.get(&observer, "/v1/sla/clocks").await, 403, "forbidden");
    let path = format!("/v1/streams/{}/history", person(1));
    assert_problem(&s.get(&observer, &path).await, 403, "forbidden");
}

#[tokio::test]
async fn the_caseload_lists_only_the_callers_region_a_page_at_a_time() {
    let s = seeded().await;
    let fuzhou = s.token(Role::Supervisor, "3501", "sup-fuzhou");
    let (status, load, _) = s.get(&fuzhou, "/v1/caseload?limit=1").await;
    assert_eq!(status, StatusCode::OK, "{load}");
    assert_eq!(load["total"], 1);
    assert_eq!(load["cases"][0]["subject"], person(1));
    let province = s.token(Role::Supervisor, "35", "sup-fujian");
    let (_, first, _) = s.get(&province, "/v1/caseload?limit=1").await;
    let (_, second, _) = s.get(&province, "/v1/caseload?limit=1&offset=1").await;
    assert_eq!(first["total"], 2);
    assert_ne!(first["cases"][0]["subject"], second["cases"][0]["subject"]);
    let outside = s.get(&fuzhou, "/v1/caseload?region=3502").await;
    assert_problem(&outside, 403, "out-of-scope");
}

#[tokio::test]
async fn a_caseworker_sees_only_its_own_caseload_and_clocks() {
    let s = seeded().await;
    let cw = s.token(Role::Caseworker, "35", "cw-350203-001");
    let (_, load, _) = s.get(&cw, "/v1/caseload").await;
    assert_eq!(load["total"], 1, "{load}");
    assert_eq!(load["cases"][0]["subject"], person(2));
    let (_, clocks, _) = s.get(&cw, "/v1/sla/clocks?at=2026-03-04").await;
    let subjects: Vec<&Value> = clocks["clocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["subject"])
        .collect();
    assert!(subjects.iter().all(|s| **s == json!(person(2))), "{clocks}");
}

#[tokio::test]
async fn the_sla_summary_rolls_up_by_region_at_a_given_time() {
    let s = seeded().await;
    let sup = s.token(Role::Supervisor, "35", "sup-fujian");
    let (status, sla, _) = s.get(&sup, "/v1/sla?at=2026-03-04&risk_hours=24").await;
    assert_eq!(status, StatusCode::OK, "{sla}");
    assert_eq!(sla["at"], "2026-03-04T23:59:59.999+08:00");
    insta::assert_json_snapshot!("sla_summary_province", sla);
}

#[tokio::test]
async fn the_sla_summary_pages_its_caseworker_lines_most_breached_first() {
    let s = seeded().await;
    // Person 1's contact is made in time: their caseworker (first by id) has one breached
    // clock fewer than person 2's.
    let contact = envelope(
        1,
        5,
        "contact_made",
        "350102",
        4,
        json!({"channel": "phone"}),
    );
    let (status, body, _) = s.post(&s.service(), "/v1/events", &json!([contact])).await;
    assert_eq!(body["counts"]["accepted"], 1, "{status} {body}");
    wait_for_no_lag(&s).await;
    let sup = s.token(Role::Supervisor, "35", "sup-fujian");
    let at = "/v1/sla?at=2026-03-20";
    let (_, all, _) = s.get(&sup, at).await;
    let lines = all["by_caseworker"].as_array().unwrap().clone();
    assert_eq!(all["caseworkers"], 2, "{all}");
    let line = |l: &Value| {
        (
            l["key"].clone(),
            l["counts"]["by_status"]["breached"].clone(),
        )
    };
    // Hand-checked: all three steps breached for person 2, visit and offers for person 1.
    assert_eq!(
        lines.iter().map(line).collect::<Vec<_>>(),
        [
            (json!("cw-350203-001"), json!(3)),
            (json!("cw-350102-001"), json!(2))
        ],
        "{all}"
    );
    let mut paged = Vec::new();
    for offset in 0..3 {
        let (status, page, _) = s.get(&sup, &format!("{at}&limit=1&offset={offset}")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(
            (page["limit"].as_u64(), page["offset"].as_u64()),
            (Some(1), Some(offset))
        );
        assert_eq!(page["caseworkers"], 2, "{page}");
        assert_eq!(page["total"], all["total"], "the figures are not paged");
        paged.extend(page["by_caseworker"].as_array().unwrap().clone());
    }
    assert_eq!(
        paged, lines,
        "the pages, one line each, are the whole list in order"
    );
    let bad = s.get(&sup, &format!("{at}&limit=0")).await;
    assert_problem(&bad, 400, "bad-parameter");
}

#[tokio::test]
async fn clocks_are_listed_by_status_a_page_at_a_time() {
    let s = seeded().await;
    let sup = s.token(Role::Supervisor, "35", "sup-fujian");
    let (status, all, _) = s.get(&sup, "/v1/sla/clocks?at=2026-03-20").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let total = all["total"].as_u64().unwrap();
    assert!(total > 0, "{all}");
    let (_, breached, _) = s
        .get(&sup, "/v1/sla/clocks?at=2026-03-20&status=breached&limit=1")
        .await;
    assert!(breached["clocks"].as_array().unwrap().len() <= 1);
    assert!(
        breached["clocks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "breached"),
        "{breached}"
    );
    let bad = s.get(&sup, "/v1/sla/clocks?status=late-ish").await;
    assert_problem(&bad, 400, "bad-parameter");
}

#[tokio::test]
async fn health_and_readiness_report_the_lag() {
    let s = seeded().await;
    let r = s
        .client
        .get(format!("{}/healthz", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The writes woke the projector; the lag comes down to nothing by itself.
    wait_for_no_lag(&s).await;
    let r = s
        .client
        .get(format!("{}/readyz", s.base))
        .send()
        .await
        .unwrap();
    let (status, body, _) = answer(r).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["lag"], 0);
    assert_eq!(body["records"], 8);
}

/// A fictitious identity provider's key pair (P-256), made for these tests only.
const IDP_PRIVATE: &[u8] = include_bytes!("keys/idp-es256.key");
const IDP_PUBLIC: &[u8] = include_bytes!("keys/idp-es256.pub");

#[tokio::test]
async fn with_an_identity_providers_public_key_its_es256_tokens_are_taken_and_local_ones_refused() {
    let s = start_with(Some(IDP_PUBLIC), Config::default()).await;
    let claims = s.claims(Role::Supervisor, "35", "sup-idp");
    let key = jsonwebtoken::EncodingKey::from_ec_pem(IDP_PRIVATE).unwrap();
    let idp = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
        &claims,
        &key,
    )
    .unwrap();
    let (status, body, _) = s.get(&idp, "/v1/caseload").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    refused_token(&s, &s.sign(&claims)).await;
}

#[tokio::test]
async fn times_follow_the_configured_zone() {
    let zone = assist_http::zone::parse_zone("-05:00").unwrap();
    let s = start_with(
        None,
        Config {
            zone,
            ..Config::default()
        },
    )
    .await;
    s.post(
        &s.service(),
        "/v1/events",
        &json!(case(1, "350102", "cw-1")),
    )
    .await;
    let auditor = s.token(Role::Auditor, "35", "aud-1");
    let (_, body, _) = s
        .get(&auditor, &format!("/v1/streams/{}/history", person(1)))
        .await;
    assert_eq!(
        body["events"][0]["event"]["occurred_at"],
        "2026-03-01T20:00:00-05:00"
    );
}

#[tokio::test]
async fn a_request_in_flight_when_shutdown_begins_is_answered_and_stored() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = start().await;
    let body = json!(case(1, "350102", "cw-1")).to_string();
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        s.service(),
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body.as_bytes()[..10]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // Shutdown begins while the body is still arriving.
    let _ = s.stop.take().unwrap().send(());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    conn.write_all(&body.as_bytes()[10..]).await.unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(s.records().await, 4);
    // And the server takes no new connections.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(s
        .client
        .get(format!("{}/healthz", s.base))
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn a_method_a_route_does_not_take_is_a_405_problem() {
    let s = start().await;
    let a = s.get(&s.service(), "/v1/events").await;
    assert_problem(&a, 405, "method-not-allowed");
}

#[tokio::test]
async fn the_views_catch_up_by_themselves_with_events_another_writer_appended() {
    let s = projecting_every(std::time::Duration::from_millis(100)).await;
    // Another writer (as `assist ingest` on the same data dir) appends to the log.
    another_writer_appends(&s, 1).await;
    // The lag, which no read brings down: only the periodic projector can.
    wait_for_no_lag(&s).await;
    let sup = s.token(Role::Supervisor, "35", "sup-1");
    let (_, load, _) = s.get(&sup, "/v1/caseload").await;
    assert_eq!(load["total"], 1, "{load}");
}

/// Person `n`'s case appended to the server's log by another writer (as `assist ingest` on
/// the same data dir would): the server hears of it from no write of its own.
async fn another_writer_appends(s: &Server, n: u32) {
    let lines: String = case(n, "350102", "cw-1")
        .iter()
        .map(|e| format!("{e}\n"))
        .collect();
    s.app
        .views
        .recorder
        .ingest(lines.as_bytes(), assist_ingest::IngestOptions::default())
        .await
        .unwrap();
}

/// A server whose periodic projector waits an hour, and one case (4 events) appended
/// behind its back: no write of its own wakes its projector.
async fn appended_behind_an_idle_projector() -> Server {
    let s = with_an_idle_projector().await;
    another_writer_appends(&s, 1).await;
    s
}

/// A server whose periodic projector waits an hour: only its own writes wake it.
async fn with_an_idle_projector() -> Server {
    let s = projecting_every(std::time::Duration::from_secs(3600)).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    s
}

/// A server whose periodic projector catches up every `every`.
async fn projecting_every(every: std::time::Duration) -> Server {
    start_with(
        None,
        Config {
            project_every: every,
            ..Config::default()
        },
    )
    .await
}

/// Waits (10 s at most) until `/readyz` reports that the views lag by nothing.
async fn wait_for_no_lag(s: &Server) {
    let start = std::time::Instant::now();
    loop {
        let r = s
            .client
            .get(format!("{}/readyz", s.base))
            .send()
            .await
            .unwrap();
        let (_, body, _) = answer(r).await;
        if body["lag"] == 0 {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "{body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_write_wakes_the_projector_without_any_read() {
    // No periodic catch-up: only the write's nudge can bring the lag down.
    let s = with_an_idle_projector().await;
    let (status, body, _) = s
        .post(
            &s.service(),
            "/v1/events",
            &json!(case(1, "350102", "cw-1")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_for_no_lag(&s).await;
}

#[tokio::test]
async fn a_read_sees_what_the_log_held_when_it_came_though_no_projector_ran() {
    let s = appended_behind_an_idle_projector().await;
    assert_eq!(s.app.views.lag().await.unwrap().behind(), 4);
    let sup = s.token(Role::Supervisor, "35", "sup-1");
    let (status, load, _) = s.get(&sup, "/v1/caseload").await;
    assert_eq!(status, StatusCode::OK, "{load}");
    assert_eq!(load["total"], 1, "{load}");
}

#[tokio::test]
async fn the_lag_counts_records_only_once_a_catch_up_of_the_server_has_finished_with_them() {
    let s = appended_behind_an_idle_projector().await;
    // Another process projects them (as `assist ingest` does): the checkpoints hold them,
    // but no catch-up of this server's has finished with them, and lag 0 promises that
    // (a catch-up's end, the SLA counts' base included, which a summary reads).
    let views = &s.app.views;
    let gen = views.store.active_gen().await.unwrap();
    let runner = assist_projections::Runner {
        log: views.recorder.log().as_ref(),
        store: &views.store,
        rules: &views.rules,
        batch: 100,
        memory: Default::default(),
    };
    runner.catch_up(gen, |_| {}).await.unwrap();
    assert_eq!(views.store.projected_records(gen).await.unwrap(), 4);
    assert_eq!(views.lag().await.unwrap().behind(), 4);
    views.catch_up().await.unwrap();
    assert_eq!(views.lag().await.unwrap().behind(), 0);
}

#[tokio::test]
async fn every_role_reads_only_what_it_may_and_out_of_scope_subjects_are_hidden() {
    let s = seeded().await;
    let history = |n: u32| format!("/v1/streams/{}/history", person(n));
    let erase = |n: u32| format!("/v1/streams/{}/erase", person(n));
    let endpoints: Vec<(&str, &str, String)> = vec![
        ("caseload", "GET", "/v1/caseload".into()),
        ("sla", "GET", "/v1/sla".into()),
        ("clocks", "GET", "/v1/sla/clocks".into()),
        ("trend", "GET", "/v1/sla/trend".into()),
        ("trend out", "GET", "/v1/sla/trend?region=3502".into()),
        ("history in", "GET", history(1)),
        ("history out", "GET", history(2)),
        ("access log", "GET", "/v1/access-log".into()),
        ("notices", "GET", "/v1/notices".into()),
        ("findings", "GET", "/v1/audit/findings".into()),
        (
            "findings out",
            "GET",
            "/v1/audit/findings?region=3502".into(),
        ),
        ("verify", "GET", "/v1/audit/verify".into()),
        ("deadletters", "GET", "/v1/deadletters".into()),
        ("write", "POST", "/v1/events".into()),
        ("erase in", "POST", erase(1)),
        ("erase out", "POST", erase(2)),
        ("rebuild", "POST", "/v1/rebuild".into()),
    ];
    // Region 3501 (Fuzhou): person 1 lives there, person 2 in Xiamen (3502). The admin
    // comes last, so its erasure of person 1 changes nothing the others read.
    let roles: [(Role, &str, [u16; 17]); 6] = [
        (
            Role::Service,
            "svc-1",
            [
                403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 200, 403, 403, 403,
            ],
        ),
        (
            Role::Caseworker,
            "cw-350102-001",
            [
                200, 200, 200, 200, 403, 200, 404, 403, 200, 403, 403, 403, 403, 403, 403, 403, 403,
            ],
        ),
        (
            Role::Supervisor,
            "sup-1",
            [
                200, 200, 200, 200, 403, 200, 404, 403, 200, 200, 403, 403, 403, 403, 403, 403, 403,
            ],
        ),
        (
            Role::Observer,
            "obs-1",
            [
                200, 200, 403, 200, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403,
            ],
        ),
        (
            Role::Auditor,
            "aud-1",
            [
                403, 403, 403, 403, 403, 200, 404, 200, 200, 200, 403, 200, 200, 403, 403, 403, 403,
            ],
        ),
        (
            Role::Admin,
            "adm-1",
            [
                403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 200, 404, 200,
            ],
        ),
    ];
    let mut matrix = format!("{:<12}", "");
    for (name, _, _) in &endpoints {
        matrix.push_str(&format!("{name:>13}"));
    }
    matrix.push('\n');
    for (role, sub, expected) in roles {
        let token = s.token(role, "3501", sub);
        matrix.push_str(&format!("{:<12}", role.name()));
        for ((name, method, path), want) in endpoints.iter().zip(expected) {
            let answer = match *method {
                // An empty array: a write that stores nothing.
                "POST" => s.post(&token, path, &json!([])).await,
                _ => s.get(&token, path).await,
            };
            assert_eq!(
                answer.0.as_u16(),
                want,
                "{} on {name}: {}",
                role.name(),
                answer.1
            );
            if want != 200 {
                assert_eq!(answer.2, "application/problem+json", "{name}");
            }
            matrix.push_str(&format!("{:>13}", answer.0.as_u16()));
        }
        matrix.push('\n');
    }
    println!("{matrix}");
}

/// A fresh PostgreSQL database (the test command provides the server), dropped at the end.
struct PgDatabase {
    admin: String,
    name: String,
}

impl PgDatabase {
    async fn create() -> (String, PgDatabase) {
        use sqlx::Connection;
        let admin = std::env::var("ASSIST_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("assist_http_{}", uuid::Uuid::new_v4().simple());
        let mut c = sqlx::PgConnection::connect(&admin)
            .await
            .expect("the test command starts PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await
            .unwrap();
        let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
        (format!("{base}/{name}"), PgDatabase { admin, name })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut c)
                        .await;
                }
            })
        })
        .join();
    }
}

#[tokio::test]
async fn on_postgresql_reads_findings_and_verify_are_scoped_masked_and_logged_as_on_sqlite() {
    let (url, _db) = PgDatabase::create().await;
    let s = start_on(Some(&url), None, Config::default()).await;
    let mut events = case(1, "350102", "cw-350102-001");
    events.extend(case(2, "350203", "cw-350203-001"));
    let (status, body, _) = s.post(&s.service(), "/v1/events", &json!(events)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sup = s.token(Role::Supervisor, "3501", "sup-fuzhou");
    let (status, history, _) = s
        .get(&sup, &format!("/v1/streams/{}/history", person(1)))
        .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    assert_eq!(history["events"][0]["event"]["data"]["name"], "张*");
    let outside = s
        .get(&sup, &format!("/v1/streams/{}/history", person(2)))
        .await;
    assert_problem(&outside, 404, "not-found");
    let (_, load, _) = s.get(&sup, "/v1/caseload").await;
    assert_eq!(load["total"], 1);
    let cw = s.token(Role::Caseworker, "35", "cw-350203-001");
    let (_, clocks, _) = s.get(&cw, "/v1/sla/clocks?at=2026-03-04").await;
    assert!(clocks["total"].as_u64().unwrap() > 0, "{clocks}");
    let r = s
        .client
        .get(format!("{}/readyz", s.base))
        .send()
        .await
        .unwrap();
    let (_, ready, _) = answer(r).await;
    assert_eq!(ready["lag"], 0, "{ready}");
    let (log, total) = s.app.views.store.access_log(10, 0).await.unwrap();
    assert_eq!(total, 1);
    assert_eq!(
        (log[0].role.as_str(), log[0].reason.as_deref()),
        ("supervisor", None)
    );
    let auditor = s.token(Role::Auditor, "3501", "aud-fuzhou");
    let (status, access, _) = s.get(&auditor, "/v1/access-log").await;
    assert_eq!(status, StatusCode::OK, "{access}");
    assert_eq!(access["total"], 1, "{access}");
    let (status, found, _) = s
        .get(&auditor, "/v1/audit/findings?backdated_after_hours=0")
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["total"], 4, "only person 1's steps: {found}");
    let (status, verified, _) = s.get(&auditor, "/v1/audit/verify").await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    assert_eq!(verified["agrees"], true, "{verified}");
}

#[tokio::test]
async fn an_id_reused_for_other_content_is_reported_as_conflicting_and_not_stored() {
    let s = start().await;
    let events = case(1, "350102", "cw-1");
    s.post(&s.service(), "/v1/events", &json!(events)).await;
    let mut reused = events[3].clone();
    reused["data"]["caseworker"] = json!("cw-someone-else");
    let (status, body, _) = s.post(&s.service(), "/v1/events", &json!([reused])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["events"][0]["outcome"], "conflicting", "{body}");
    assert!(body["events"][0]["original"]["offset"].is_u64());
    assert_eq!(s.records().await, 4);
}

#[tokio::test]
async fn a_page_size_outside_1_to_1000_is_a_400_problem() {
    let s = seeded().await;
    let sup = s.token(Role::Supervisor, "35", "sup-1");
    for bad in ["limit=0", "limit=1001", "limit=many"] {
        let a = s.get(&sup, &format!("/v1/caseload?{bad}")).await;
        assert_problem(&a, 400, "bad-parameter");
    }
    let unknown = s.get(&sup, "/v1/caseload?regoin=3501").await;
    assert_problem(&unknown, 400, "bad-parameter");
    let bad_region = s.get(&sup, "/v1/caseload?region=3501%27%20OR%201=1").await;
    assert_problem(&bad_region, 400, "bad-parameter");
}

#[tokio::test]
async fn a_clocks_facts_are_explained_in_scope_and_hidden_outside_it() {
    let s = seeded().await;
    let sup = s.token(Role::Supervisor, "3501", "sup-fuzhou");
    let (_, clocks, _) = s.get(&sup, "/v1/sla/clocks?at=2026-03-04").await;
    let clock = clocks["clocks"][0]["clock_id"]
        .as_str()
        .unwrap()
        .to_string();
    // A clock id may hold `/` and `:`: it is one path segment, percent-encoded.
    let segment = clock.replace('/', "%2F").replace(':', "%3A");
    let (status, e, _) = s
        .get(&sup, &format!("/v1/sla/clocks/{segment}?at=2026-03-04"))
        .await;
    assert_eq!(status, StatusCode::OK, "{e}");
    assert_eq!(e["clock"]["clock_id"], clock.as_str());
    assert_eq!(e["facts"][0]["role"], "started", "{e}");
    let xiamen = s.token(Role::Supervisor, "3502", "sup-xiamen");
    let hidden = s.get(&xiamen, &format!("/v1/sla/clocks/{segment}")).await;
    assert_problem(&hidden, 404, "not-found");
}

#[tokio::test]
async fn a_slow_client_does_not_hold_up_other_writers() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = start().await;
    let slow_body = json!(case(1, "350102", "cw-1")).to_string();
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        s.service(),
        slow_body.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(&slow_body.as_bytes()[..10]).await.unwrap();
    // While that body trickles in, another writer's batch goes through at once.
    let quick = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        s.post(
            &s.service(),
            "/v1/events",
            &json!(case(2, "350102", "cw-1")),
        ),
    )
    .await
    .expect("a writer waited for a slow client");
    assert_eq!(quick.0, StatusCode::OK, "{}", quick.1);
    slow.write_all(&slow_body.as_bytes()[10..]).await.unwrap();
    let mut answer = String::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        slow.read_to_string(&mut answer),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(s.records().await, 8);
}

#[tokio::test]
async fn an_auditor_reads_the_access_log_of_its_region_only() {
    let s = seeded().await;
    let province = s.token(Role::Auditor, "35", "aud-fujian");
    for n in [1, 2] {
        s.get(
            &province,
            &format!("/v1/streams/{}/history?reason=check%20{n}", person(n)),
        )
        .await;
    }
    let fuzhou = s.token(Role::Auditor, "3501", "aud-fuzhou");
    let (status, log, _) = s.get(&fuzhou, "/v1/access-log").await;
    assert_eq!(status, StatusCode::OK, "{log}");
    assert_eq!(log["total"], 1, "{log}");
    let entry = &log["entries"][0];
    assert_eq!(entry["stream"], person(1));
    assert_eq!(entry["actor"], "aud-fujian");
    assert_eq!(entry["role"], "auditor");
    assert_eq!(entry["reason"], "check 1");
    assert!(entry["at"].as_str().unwrap().ends_with("+08:00"), "{entry}");
    let sup = s.token(Role::Supervisor, "35", "sup-1");
    assert_problem(&s.get(&sup, "/v1/access-log").await, 403, "forbidden");
}

#[tokio::test]
async fn with_an_identity_providers_rsa_public_key_its_rs256_tokens_are_taken() {
    let s = start_with(
        Some(include_bytes!("keys/idp-rs256.pub")),
        Config::default(),
    )
    .await;
    let claims = s.claims(Role::Supervisor, "35", "sup-idp");
    let key =
        jsonwebtoken::EncodingKey::from_rsa_pem(include_bytes!("keys/idp-rs256.key")).unwrap();
    let idp = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .unwrap();
    let (status, body, _) = s.get(&idp, "/v1/caseload").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn readyz_is_a_503_problem_while_the_views_lag_more_than_the_threshold() {
    let s = start_with(
        None,
        Config {
            max_lag: 2,
            project_every: std::time::Duration::from_secs(3600),
            ..Config::default()
        },
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    // Appended behind the server's back: nothing projects it for an hour.
    another_writer_appends(&s, 1).await;
    let r = s
        .client
        .get(format!("{}/readyz", s.base))
        .send()
        .await
        .unwrap();
    let a = answer(r).await;
    assert_problem(&a, 503, "not-ready");
    assert_eq!(a.1["lag"], 4);
}

#[tokio::test]
async fn the_served_openapi_document_is_the_generated_one_and_every_operation_in_it_is_routed() {
    let s = seeded().await;
    let r = s
        .client
        .get(format!("{}/openapi.json", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert_eq!(text, assist_http::openapi::document_json());
    let doc: Value = serde_json::from_str(&text).unwrap();
    let token = s.token(Role::Auditor, "35", "aud-1");
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{stream}", &person(1))
            .replace("{clock}", "no-such-clock");
        for method in item.as_object().unwrap().keys() {
            let r = s
                .client
                .request(
                    method.to_uppercase().parse().unwrap(),
                    format!("{}{concrete}", s.base),
                )
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            assert_ne!(body["detail"], "no such route", "{method} {path}");
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        }
    }
}

#[tokio::test]
async fn the_docs_page_is_html_that_names_every_operation_and_loads_nothing_from_elsewhere() {
    let s = start().await;
    let r = s
        .client
        .get(format!("{}/docs", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = r.text().await.unwrap();
    let doc: Value = serde_json::from_str(&assist_http::openapi::document_json()).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let heading = format!("{} {}", method.to_uppercase(), path);
            assert!(page.contains(&heading), "{heading} is not on the page");
        }
    }
    assert!(!page.contains("<script"), "the page runs no scripts");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "the page links nothing outside"
    );
}

#[tokio::test]
async fn findings_are_those_of_the_callers_region_a_page_at_a_time() {
    let s = seeded().await;
    // Every seeded step was recorded an hour after it occurred: with a threshold of 0 hours
    // each is a backdated finding.
    let fuzhou = s.token(Role::Supervisor, "3501", "sup-1");
    let (status, body, _) = s
        .get(
            &fuzhou,
            "/v1/audit/findings?backdated_after_hours=0&limit=3",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 4, "{body}");
    assert_eq!(body["findings"].as_array().unwrap().len(), 3);
    for f in body["findings"].as_array().unwrap() {
        assert_eq!(f["subject"], person(1), "{f}");
        assert_eq!(f["kind"], "backdated", "{f}");
    }
    let fujian = s.token(Role::Auditor, "35", "aud-1");
    let (_, body, _) = s
        .get(&fujian, "/v1/audit/findings?backdated_after_hours=0")
        .await;
    assert_eq!(body["total"], 8, "{body}");
    let (_, body, _) = s.get(&fujian, "/v1/audit/findings").await;
    assert_eq!(
        body["total"], 0,
        "an hour late is not backdated by 72 hours: {body}"
    );
}

#[tokio::test]
async fn verify_reports_when_it_ran_and_that_log_and_audit_store_agree() {
    let s = seeded().await;
    let auditor = s.token(Role::Auditor, "3501", "aud-1");
    let (status, body, _) = s.get(&auditor, "/v1/audit/verify").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["records"], 8, "{body}");
    assert_eq!(body["agrees"], true, "{body}");
    assert_eq!(body["mismatches"], json!([]));
    assert_eq!(body["mismatches_elsewhere"], 0);
    let started = body["started_at"].as_str().unwrap();
    let finished = body["finished_at"].as_str().unwrap();
    assert!(started.ends_with("+08:00") && started <= finished, "{body}");
}

#[tokio::test]
async fn dead_letters_are_listed_for_auditors_a_page_at_a_time() {
    let s = seeded().await;
    let auditor = s.token(Role::Auditor, "3501", "aud-1");
    let (status, body, _) = s.get(&auditor, "/v1/deadletters?limit=10").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"total": 0, "limit": 10, "offset": 0, "dead_letters": []})
    );
}

#[tokio::test]
async fn an_admin_erases_a_person_of_its_region_and_the_history_then_shows_the_fields_erased() {
    let s = seeded().await;
    let admin = s.token(Role::Admin, "3501", "adm-1");
    let path = format!("/v1/streams/{}/erase?reason=person_requested", person(1));
    let (status, body, _) = s.post(&admin, &path, &json!(null)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["key_destroyed"], true);
    assert_eq!(body["erasure"]["already_recorded"], false, "{body}");
    assert_eq!(s.records().await, 9);
    let (status, again, _) = s.post(&admin, &path, &json!(null)).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["erasure"]["already_recorded"], true, "{again}");
    assert_eq!(again["erasure"]["event_id"], body["erasure"]["event_id"]);
    assert_eq!(s.records().await, 9, "a repeated erasure appends nothing");
    let auditor = s.token(Role::Auditor, "3501", "aud-1");
    let (_, history, _) = s
        .get(
            &auditor,
            &format!("/v1/streams/{}/history?reason=check", person(1)),
        )
        .await;
    let registered = &history["events"][0]["event"]["data"];
    assert_eq!(registered["name"], "[erased]", "{history}");
    assert_eq!(
        history["events"][4]["event"]["type"],
        "personal_data_erased"
    );
    assert_eq!(
        history["events"][4]["event"]["actor"]["id"], "adm-1",
        "{history}"
    );
}

#[tokio::test]
async fn an_admin_cannot_erase_a_person_outside_its_region_nor_with_an_unknown_reason() {
    let s = seeded().await;
    let admin = s.token(Role::Admin, "3501", "adm-1");
    let out = s
        .post(
            &admin,
            &format!("/v1/streams/{}/erase", person(2)),
            &json!(null),
        )
        .await;
    assert_problem(&out, 404, "not-found");
    let bad = s
        .post(
            &admin,
            &format!("/v1/streams/{}/erase?reason=because", person(1)),
            &json!(null),
        )
        .await;
    assert_problem(&bad, 400, "bad-parameter");
    assert_eq!(s.records().await, 8, "nothing was appended");
}

#[tokio::test]
async fn a_rebuild_swaps_in_a_new_generation_with_the_same_views() {
    let s = seeded().await;
    let sup = s.token(Role::Supervisor, "35", "sup-1");
    let (_, before, _) = s.get(&sup, "/v1/caseload").await;
    let admin = s.token(Role::Admin, "35", "adm-1");
    let (status, body, _) = s.post(&admin, "/v1/rebuild", &json!(null)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["generation"], 2, "{body}");
    assert_eq!(body["dropped"], 1, "{body}");
    assert_eq!(body["records"], 8, "{body}");
    assert_eq!(s.app.views.store.active_gen().await.unwrap(), 2);
    let (_, after, _) = s.get(&sup, "/v1/caseload").await;
    assert_eq!(before["cases"], after["cases"]);
    assert_eq!(before["total"], after["total"]);
}

/// The value of the sample `name{labels}` in a Prometheus text exposition (0 when absent).
fn sample(text: &str, name: &str, labels: &str) -> f64 {
    let prefix = format!("{name}{labels} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

async fn scrape(s: &Server) -> String {
    let r = s
        .client
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_status_and_ingest_outcomes() {
    let s = seeded().await;
    let before = scrape(&s).await;
    let sup = s.token(Role::Supervisor, "35", "sup-1");
    let history = format!("/v1/streams/{}/history", person(1));
    s.get(&sup, &history).await;
    s.get(&sup, &history).await;
    s.get(&sup, "/v1/caseload?limit=0").await;
    let events = case(1, "350102", "cw-350102-001");
    s.post(&s.service(), "/v1/events", &json!(events)).await;
    let after = scrape(&s).await;
    let history_ok = r#"{method="GET",route="/v1/streams/{stream}/history",status="200"}"#;
    assert_eq!(
        sample(&after, "assist_http_requests_total", history_ok)
            - sample(&before, "assist_http_requests_total", history_ok),
        2.0,
        "{after}"
    );
    let caseload_bad = r#"{method="GET",route="/v1/caseload",status="400"}"#;
    assert_eq!(
        sample(&after, "assist_http_requests_total", caseload_bad),
        1.0
    );
    assert_eq!(
        sample(
            &after,
            "assist_http_request_duration_seconds_count",
            history_ok
        ) - sample(
            &before,
            "assist_http_request_duration_seconds_count",
            history_ok
        ),
        2.0,
        "{after}"
    );
    assert!(
        !after.contains(&person(1)),
        "no raw path with an id: {after}"
    );
    let accepted = r#"{outcome="accepted"}"#;
    let duplicate = r#"{outcome="duplicate"}"#;
    assert_eq!(sample(&after, "assist_ingest_events_total", accepted), 8.0);
    assert_eq!(
        sample(&after, "assist_ingest_events_total", duplicate)
            - sample(&before, "assist_ingest_events_total", duplicate),
        4.0,
        "{after}"
    );
}

#[tokio::test]
async fn metrics_report_the_lag_of_each_partition_and_the_dead_letters() {
    // No periodic catch-up during the test: only writes through the server project.
    let s = start_with(
        None,
        Config {
            project_every: std::time::Duration::from_secs(3600),
            ..Config::default()
        },
    )
    .await;
    let (status, body, _) = s
        .post(
            &s.service(),
            "/v1/events",
            &json!(case(1, "350102", "cw-1")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The write woke the projector.
    wait_for_no_lag(&s).await;
    let text = scrape(&s).await;
    let partitions = s.app.views.recorder.log().partition_count();
    for p in 0..partitions {
        let labels = format!(r#"{{partition="{p}"}}"#);
        assert!(
            text.contains(&format!("assist_projection_lag_records{labels} 0")),
            "{text}"
        );
    }
    assert!(text.contains("assist_dead_letters 0"), "{text}");
    // Another writer appends; until the views catch up, the lag shows it.
    another_writer_appends(&s, 3).await;
    let text = scrape(&s).await;
    let lag: f64 = (0..partitions)
        .map(|p| {
            sample(
                &text,
                "assist_projection_lag_records",
                &format!(r#"{{partition="{p}"}}"#),
            )
        })
        .sum();
    assert_eq!(lag, 4.0, "{text}");
}

#[tokio::test]
async fn a_json_body_with_an_element_that_is_no_object_is_a_400_problem_and_stores_nothing() {
    let s = start().await;
    let mut events = case(1, "350102", "cw-1");
    events.push(json!(7));
    let answer = s.post(&s.service(), "/v1/events", &json!(events)).await;
    assert_problem(&answer, 400, "malformed-json");
    assert_eq!(answer.1["index"], 4, "{}", answer.1);
    assert_eq!(s.records().await, 0);
}

#[tokio::test]
async fn an_expected_version_written_as_an_integral_float_is_taken() {
    let s = start().await;
    let body = json!({"events": case(1, "350102", "cw-1"), "expected": {person(1): 0.0}});
    let (status, body, _) = s.post(&s.service(), "/v1/events", &body).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["counts"]["accepted"], 4);
}

#[tokio::test]
async fn an_offset_past_2_to_the_53_is_a_400_problem() {
    let s = seeded().await;
    let sup = s.token(Role::Supervisor, "35", "sup-1");
    let answer = s.get(&sup, "/v1/caseload?offset=9007199254740992").await;
    assert_problem(&answer, 400, "bad-parameter");
    let (status, _, _) = s.get(&sup, "/v1/caseload?offset=9007199254740991").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn each_person_sees_only_the_notices_addressed_to_them_in_their_region() {
    use assist_projections::notices::{NoticeRules, Timer};
    let s = seeded().await;
    s.app.views.catch_up().await.unwrap();
    // Alerts on 3 March: by the 20th every 2473 step of both people has reminded and
    // escalated to county and city.
    let notices = NoticeRules::shipped().unwrap();
    let timer = Timer {
        log: s.app.views.recorder.log().as_ref(),
        store: &s.app.views.store,
        rules: &s.app.views.rules,
        notices: &notices,
        channels: &[],
    };
    let now = chrono::DateTime::parse_from_rfc3339("2026-03-20T12:00:00+08:00")
        .unwrap()
        .with_timezone(&chrono::Utc);
    assert_eq!(timer.tick(now).await.unwrap().notices, 18);
    let seen = |body: &Value| -> Vec<String> {
        body["notices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                format!(
                    "{} {} {}",
                    n["step"].as_str().unwrap(),
                    n["kind"].as_str().unwrap(),
                    n["recipient"].as_str().unwrap()
                )
            })
            .collect()
    };
    let get = |token: String| {
        let s = &s;
        async move {
            let (status, body, _) = s.get(&token, "/v1/notices").await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body
        }
    };
    let mut mine = seen(&get(s.token(Role::Caseworker, "3501", "cw-350102-001")).await);
    mine.sort();
    assert_eq!(
        mine,
        [
            "contact reminder cw-350102-001",
            "offers reminder cw-350102-001",
            "visit reminder cw-350102-001"
        ]
    );
    let county = get(s.token(Role::Supervisor, "350102", "sup-county")).await;
    assert_eq!(county["total"], 3);
    assert!(seen(&county)
        .iter()
        .all(|l| l.ends_with("escalation-1 350102")));
    let city = get(s.token(Role::Supervisor, "3501", "sup-city")).await;
    assert!(seen(&city).iter().all(|l| l.ends_with("escalation-2 3501")));
    assert_eq!(city["total"], 3);
    assert_eq!(city["notices"][0]["moment"].as_str().unwrap().len(), 25);
    assert!(city["notices"][0]["moment"]
        .as_str()
        .unwrap()
        .ends_with("+08:00"));
    let auditor = get(s.token(Role::Auditor, "3501", "aud-1")).await;
    assert_eq!(auditor["total"], 9, "person 1's nine, none of Xiamen's");
    let elsewhere = get(s.token(Role::Caseworker, "3501", "cw-350203-001")).await;
    assert_eq!(
        elsewhere["total"], 0,
        "a caseworker of Xiamen named in a Fuzhou token"
    );
    assert_problem(
        &s.get(&s.token(Role::Observer, "3501", "obs-1"), "/v1/notices")
            .await,
        403,
        "forbidden",
    );
    assert_problem(
        &s.get(
            &s.token(Role::Auditor, "3501", "aud-1"),
            "/v1/notices?kind=nonsense",
        )
        .await,
        400,
        "bad-parameter",
    );
}
