//! The SLA timer on the real embedded log and real SQL stores, on a controlled clock: the
//! test moves time forward by calling `tick(now)`; nothing sleeps. Expected notices are
//! worked out by hand from the shipped 2473 and household-clearing rules.

mod support;

use assist_ingest::{IngestOptions, Recorder};
use assist_projections::notices::{
    list_notices, Channel, NoticeFilter, NoticeLine, NoticeRules, Outbox, Timer,
};
use assist_projections::sla::Rules;
use assist_projections::Store;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;
use std::sync::Mutex;
use support::*;

const PERSON: &str = "person-0192f0c1-8a3b-7cde-9f00-0000000000c1";
const HOUSEHOLD: &str = "household-0192f0c1-8a3b-7cde-9f00-0000000000d1";
const CASEWORKER: &str = "cw-350121-007";

/// China time on a day of March 2026 (`"03-04 09:00"`), as an instant.
fn cn(day_time: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&format!("2026-{}:00+08:00", day_time.replace(' ', "T")))
        .unwrap()
        .with_timezone(&Utc)
}

fn event(n: u32, stream: &str, kind: &str, occurred: &str, data: serde_json::Value) -> String {
    let at = format!("2026-{}:00+08:00", occurred.replace(' ', "T"));
    json!({
        "event_id": format!("01935000-0000-7000-8000-00000c{n:06}"),
        "stream": stream,
        "type": kind,
        "schema_version": 1,
        "occurred_at": at,
        "recorded_at": at,
        "actor": {"id": CASEWORKER, "role": "caseworker", "region": "350121"},
        "data": data,
    })
    .to_string()
}

/// A case opened and assigned, then an alert on Monday 2 March 09:00: the 2473 clocks
/// start (contact due Wednesday 4 March 09:00, visit Friday 6 March 09:00, offers
/// Wednesday 11 March 09:00; working days).
fn alert() -> Vec<String> {
    vec![
        event(
            1,
            PERSON,
            "case_opened",
            "03-02 08:50",
            json!({"groups": ["college_graduate"], "reason": "alert"}),
        ),
        event(
            2,
            PERSON,
            "case_assigned",
            "03-02 08:55",
            json!({"caseworker": CASEWORKER}),
        ),
        event(
            3,
            PERSON,
            "alert_raised",
            "03-02 09:00",
            json!({"alert_id": "01935000-0000-7000-8000-0000000a1c01", "trigger": "job_lost", "source": "data_sharing"}),
        ),
    ]
}

fn contact(n: u32, at: &str) -> String {
    event(
        n,
        PERSON,
        "contact_made",
        at,
        json!({"alert_id": "01935000-0000-7000-8000-0000000a1c01", "channel": "phone"}),
    )
}

struct World {
    _dir: tempfile::TempDir,
    recorder: Recorder,
    store: Store,
    _pg: Option<PgDatabase>,
    rules: Rules,
    notices: NoticeRules,
}

impl World {
    async fn sqlite() -> World {
        let dir = tempfile::tempdir().unwrap();
        let recorder = Recorder::open_embedded(dir.path()).await.unwrap();
        let store = sqlite_store(dir.path(), "views.db").await;
        World::with(dir, recorder, store, None)
    }

    async fn postgres() -> World {
        let dir = tempfile::tempdir().unwrap();
        let recorder = Recorder::open_embedded(dir.path()).await.unwrap();
        let (store, pg) = postgres_store().await;
        World::with(dir, recorder, store, Some(pg))
    }

    fn with(
        dir: tempfile::TempDir,
        recorder: Recorder,
        store: Store,
        pg: Option<PgDatabase>,
    ) -> World {
        World {
            _dir: dir,
            recorder,
            store,
            _pg: pg,
            rules: Rules::shipped().unwrap(),
            notices: NoticeRules::shipped().unwrap(),
        }
    }

    /// Ingests the lines and projects them.
    async fn record(&self, lines: &[String]) {
        let jsonl = lines.join("\n") + "\n";
        let report = self
            .recorder
            .ingest(jsonl.as_bytes(), IngestOptions::default())
            .await
            .unwrap();
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        project(&self.recorder, &self.store, 100).await;
    }

    fn timer<'a>(&'a self, channels: &'a [String]) -> Timer<'a> {
        Timer {
            log: self.recorder.log().as_ref(),
            store: &self.store,
            rules: &self.rules,
            notices: &self.notices,
            channels,
        }
    }

    /// One timer round at `now` (China time), with no delivery channel; returns how many
    /// notices it recorded.
    async fn tick(&self, now: &str) -> u64 {
        self.timer(&[]).tick(cn(now)).await.unwrap().notices
    }

    async fn notices(&self) -> Vec<NoticeLine> {
        list_notices(&self.store, &NoticeFilter::default(), 1000, 0)
            .await
            .unwrap()
            .1
    }

    /// Every notice as `step kind → recipient @ moment (China time)`, oldest first.
    async fn summary(&self) -> Vec<String> {
        let mut lines: Vec<(DateTime<Utc>, String)> = self
            .notices()
            .await
            .into_iter()
            .map(|l| {
                let n = l.notice;
                let moment = n
                    .moment
                    .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
                    .format("%m-%d %H:%M");
                (
                    n.moment,
                    format!(
                        "{}/{} {} → {} {} @ {moment}",
                        n.policy, n.step, n.kind, n.audience, n.recipient
                    ),
                )
            })
            .collect();
        lines.sort();
        lines.into_iter().map(|(_, l)| l).collect()
    }
}

async fn a_2473_clock_reminds_then_escalates_to_the_county_then_the_city(w: World) {
    w.record(&alert()).await;
    assert_eq!(w.tick("03-02 12:00").await, 0, "nothing is due on day one");
    assert_eq!(w.tick("03-03 08:59").await, 0);
    assert_eq!(w.tick("03-03 09:00").await, 1);
    assert_eq!(
        w.summary().await,
        ["response-2473/contact reminder → caseworker cw-350121-007 @ 03-03 09:00"]
    );
    assert_eq!(w.tick("03-04 09:00").await, 1);
    assert_eq!(w.tick("03-06 09:00").await, 3);
    assert_eq!(
        w.summary().await,
        [
            "response-2473/contact reminder → caseworker cw-350121-007 @ 03-03 09:00",
            "response-2473/contact escalation-1 → supervisor 350121 @ 03-04 09:00",
            "response-2473/visit reminder → caseworker cw-350121-007 @ 03-05 09:00",
            "response-2473/contact escalation-2 → supervisor 3501 @ 03-06 09:00",
            "response-2473/visit escalation-1 → supervisor 350121 @ 03-06 09:00",
        ]
    );
}

#[tokio::test]
async fn a_2473_clock_reminds_the_caseworker_then_escalates_to_the_county_then_the_city() {
    a_2473_clock_reminds_then_escalates_to_the_county_then_the_city(World::sqlite().await).await;
}

#[tokio::test]
async fn on_postgresql_a_2473_clock_reminds_then_escalates_as_on_sqlite() {
    a_2473_clock_reminds_then_escalates_to_the_county_then_the_city(World::postgres().await).await;
}

#[tokio::test]
async fn a_step_met_in_time_sends_nothing() {
    let w = World::sqlite().await;
    let mut lines = alert();
    lines.push(contact(4, "03-02 15:00"));
    w.record(&lines).await;
    w.tick("03-20 09:00").await;
    let contact_notices: Vec<String> = w
        .summary()
        .await
        .into_iter()
        .filter(|l| l.contains("/contact "))
        .collect();
    assert!(contact_notices.is_empty(), "{contact_notices:?}");
    assert!(
        w.summary().await.iter().any(|l| l.contains("/visit ")),
        "the visit, never done, still reminds and escalates"
    );
}

#[tokio::test]
async fn a_step_met_after_its_reminder_sends_no_escalation() {
    let w = World::sqlite().await;
    w.record(&alert()).await;
    assert_eq!(w.tick("03-03 10:00").await, 1);
    w.record(&[contact(4, "03-03 11:00")]).await;
    w.tick("03-10 09:00").await;
    let contact: Vec<String> = w
        .summary()
        .await
        .into_iter()
        .filter(|l| l.contains("/contact "))
        .collect();
    assert_eq!(
        contact,
        ["response-2473/contact reminder → caseworker cw-350121-007 @ 03-03 09:00"]
    );
}

#[tokio::test]
async fn a_pause_postpones_the_notices_and_a_resume_reschedules_them() {
    let w = World::sqlite().await;
    let mut lines = alert();
    lines.push(event(
        4,
        PERSON,
        "clock_paused",
        "03-02 10:00",
        json!({"reason": "person_hospitalised", "policy": "response-2473"}),
    ));
    w.record(&lines).await;
    assert_eq!(w.tick("03-05 09:00").await, 0, "paused: nothing is due");
    // Paused Monday 10:00 to Thursday 10:00: 72 hours of working time, so the contact
    // deadline moves from Wednesday 4 March 09:00 by 72 working hours, past the weekend, to
    // Monday 9 March 09:00; the reminder is 24 hours before it.
    w.record(&[event(
        5,
        PERSON,
        "clock_resumed",
        "03-05 10:00",
        json!({"reason": "person_discharged", "policy": "response-2473"}),
    )])
    .await;
    assert_eq!(w.tick("03-05 12:00").await, 0);
    assert_eq!(w.tick("03-08 08:59").await, 0);
    assert_eq!(w.tick("03-08 09:00").await, 1);
    let n = &w.notices().await[0].notice;
    assert_eq!((n.step.as_str(), n.kind.as_str()), ("contact", "reminder"));
    assert_eq!(n.deadline, cn("03-09 09:00"));
}

#[tokio::test]
async fn a_household_past_its_clearing_deadline_escalates_to_the_county_then_the_city() {
    let w = World::sqlite().await;
    w.record(&[event(
        1,
        HOUSEHOLD,
        "household_identified",
        "03-08 09:24",
        json!({"region": "350121", "members": [{"person": PERSON, "working_age": true, "able_and_willing": true}]}),
    )])
    .await;
    // Cleared within 30 calendar days: by 7 April 09:24. Reminder 120 hours before; the
    // household has no caseworker, so its county's supervisors get it.
    let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    let timer = w.timer(&[]);
    assert_eq!(
        timer
            .tick(t("2026-04-02T09:23:00+08:00"))
            .await
            .unwrap()
            .notices,
        0
    );
    assert_eq!(
        timer
            .tick(t("2026-04-14T09:24:00+08:00"))
            .await
            .unwrap()
            .notices,
        3
    );
    let s: Vec<String> = w
        .notices()
        .await
        .iter()
        .rev()
        .map(|l| {
            format!(
                "{} {} {}",
                l.notice.kind, l.notice.audience, l.notice.recipient
            )
        })
        .collect();
    assert_eq!(
        s,
        [
            "reminder supervisor 350121",
            "escalation-1 supervisor 350121",
            "escalation-2 supervisor 3501"
        ]
    );
}

#[tokio::test]
async fn a_timer_started_late_catches_up_once_and_a_restarted_one_sends_nothing_twice() {
    let w = World::sqlite().await;
    w.record(&alert()).await;
    // Down from the start until Friday 09:00: everything that came due meanwhile, once.
    assert_eq!(w.tick("03-06 09:00").await, 5);
    let ids: Vec<_> = w
        .notices()
        .await
        .iter()
        .map(|l| l.notice.notice_id)
        .collect();
    // A new timer over the same store (a restart), at the same time and later.
    assert_eq!(w.tick("03-06 09:00").await, 0);
    assert_eq!(w.tick("03-06 10:00").await, 0);
    let again: Vec<_> = w
        .notices()
        .await
        .iter()
        .map(|l| l.notice.notice_id)
        .collect();
    assert_eq!(ids, again);
}

#[tokio::test]
async fn a_rebuild_swapping_in_a_new_generation_sends_nothing_again() {
    let w = World::sqlite().await;
    w.record(&alert()).await;
    assert_eq!(w.tick("03-04 09:00").await, 2);
    let gen = w.store.begin_rebuild().await.unwrap();
    catch_up(w.recorder.log().as_ref(), &w.store, gen, 100).await;
    w.store.finish_rebuild(gen).await.unwrap();
    let stats = w.timer(&[]).tick(cn("03-04 09:00")).await.unwrap();
    assert!(stats.rescheduled, "{stats:?}");
    assert_eq!(stats.notices, 0);
    assert_eq!(w.tick("03-05 09:00").await, 1, "the visit reminder, once");
}

#[tokio::test]
async fn the_timer_wakes_at_the_next_moment_due() {
    let w = World::sqlite().await;
    w.record(&alert()).await;
    let timer = w.timer(&[]);
    timer.tick(cn("03-02 12:00")).await.unwrap();
    assert_eq!(timer.next_moment().await.unwrap(), Some(cn("03-03 09:00")));
    timer.tick(cn("03-03 09:00")).await.unwrap();
    assert_eq!(timer.next_moment().await.unwrap(), Some(cn("03-04 09:00")));
}

/// A receiver that takes notices only while it is up, and keeps what it took.
struct Receiver {
    up: Mutex<bool>,
    got: Mutex<Vec<uuid::Uuid>>,
}

#[async_trait]
impl Channel for Receiver {
    fn name(&self) -> &str {
        "webhook"
    }
    async fn send(&self, n: &assist_projections::notices::Notice) -> Result<(), String> {
        if !*self.up.lock().unwrap() {
            return Err("connection refused".into());
        }
        self.got.lock().unwrap().push(n.notice_id);
        Ok(())
    }
}

#[tokio::test]
async fn a_receiver_that_is_down_for_a_while_gets_every_notice_afterwards() {
    let w = World::sqlite().await;
    w.record(&alert()).await;
    let names = vec!["webhook".to_string()];
    let receiver = std::sync::Arc::new(Receiver {
        up: Mutex::new(false),
        got: Mutex::new(Vec::new()),
    });
    struct Shared(std::sync::Arc<Receiver>);
    #[async_trait]
    impl Channel for Shared {
        fn name(&self) -> &str {
            self.0.name()
        }
        async fn send(&self, n: &assist_projections::notices::Notice) -> Result<(), String> {
            self.0.send(n).await
        }
    }
    let channels: Vec<Box<dyn Channel>> = vec![Box::new(Shared(receiver.clone()))];
    let outbox = Outbox {
        store: &w.store,
        channels: &channels,
    };
    let timer = w.timer(&names);
    timer.tick(cn("03-04 09:00")).await.unwrap();
    let first = outbox.deliver_due(cn("03-04 09:00")).await.unwrap();
    assert_eq!((first.delivered, first.failed), (0, 2));
    // Retried 30 s later, still down; then up.
    assert_eq!(
        outbox.deliver_due(cn("03-04 09:00")).await.unwrap().failed,
        0,
        "not retried before its backoff"
    );
    let second = outbox
        .deliver_due(cn("03-04 09:00") + chrono::Duration::seconds(30))
        .await
        .unwrap();
    assert_eq!(second.failed, 2);
    let lines = w.notices().await;
    assert!(lines.iter().all(|l| l.deliveries[0].attempts == 2
        && l.deliveries[0].last_error.as_deref() == Some("connection refused")));
    *receiver.up.lock().unwrap() = true;
    let later = outbox.deliver_due(cn("03-04 10:00")).await.unwrap();
    assert_eq!((later.delivered, later.failed), (2, 0));
    let mut got = receiver.got.lock().unwrap().clone();
    let mut ids: Vec<_> = lines.iter().map(|l| l.notice.notice_id).collect();
    got.sort();
    ids.sort();
    assert_eq!(got, ids);
    assert_eq!(outbox.next_attempt().await.unwrap(), None);
}

#[tokio::test]
async fn notices_are_listed_by_recipient_and_region_newest_first() {
    let w = World::sqlite().await;
    w.record(&alert()).await;
    w.tick("03-06 09:00").await;
    let mine = NoticeFilter {
        audience: Some("caseworker".into()),
        recipient: Some(CASEWORKER.into()),
        ..NoticeFilter::default()
    };
    let (total, page) = list_notices(&w.store, &mine, 1, 0).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(page[0].notice.step, "visit", "newest moment first");
    let elsewhere = NoticeFilter {
        region: Some("3502".into()),
        ..NoticeFilter::default()
    };
    assert_eq!(
        list_notices(&w.store, &elsewhere, 10, 0).await.unwrap().0,
        0
    );
}

#[tokio::test]
async fn a_clock_cancelled_before_its_moment_sends_nothing() {
    let w = World::sqlite().await;
    let mut lines = alert();
    // Hired on day one: every 2473 clock is cancelled (the retention follow-ups start).
    lines.push(event(
        4,
        PERSON,
        "hired",
        "03-02 15:00",
        json!({"offer_id": "01935000-0000-7000-8000-00000000f0f1", "employer": {"id": "91350121MA2XYZ1234", "name": "Minhou Food Processing Co."},
               "job_title": "food packer", "wage": 4200, "wage_period": "month", "contract": "fixed_term",
               "public_welfare_post": false, "starts_on": "2026-03-09"}),
    ));
    w.record(&lines).await;
    w.tick("03-20 09:00").await;
    let s = w.summary().await;
    assert!(!s.iter().any(|l| l.contains("response-2473")), "{s:?}");
}
