//! The supervisor dashboard: the region tree below the region looked at (province → city
//! → county → caseworker) with each node's on-time rate and rating, the counts per status
//! for each policy step, and the first breached and due-soon clocks. Every count links to
//! the clocks behind it, at the same `at` as the figure, so the list adds up to it.

use crate::answers::{json_of, params, query};
use crate::render::page;
use crate::session::Session;
use crate::Pages;
use assist_http::auth::Role;
use assist_http::reads::{self, SlaParams};
use assist_http::App;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::Uri;
use axum::response::Response;
use axum::Extension;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// The statuses, in the order the pages show them.
pub const STATUSES: [&str; 7] = [
    "on_track",
    "at_risk",
    "paused",
    "breached",
    "met",
    "met_late",
    "cancelled",
];

/// Query pairs a link adds (name, value).
type Filter = Vec<(&'static str, Option<String>)>;

/// How many breached and due-soon clocks the dashboard lists.
const LISTED: usize = 10;

/// The parts of the page's query the page itself reads (the API reads them all).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Looking {
    pub region: Option<String>,
    pub offset: Option<usize>,
}

impl Looking {
    pub(crate) fn of(uri: &Uri) -> Looking {
        Query::<Looking>::try_from_uri(uri)
            .map(|Query(l)| l)
            .unwrap_or_default()
    }
}

/// A figure's line as the page shows it: counts per status with the link behind each,
/// the on-time rate and its rating.
fn row(
    pages: &Pages,
    line: &Value,
    name: &str,
    href: Option<String>,
    clocks: &dyn Fn(&str) -> Option<String>,
) -> Value {
    let counts = &line["counts"];
    let cells: Vec<Value> = STATUSES
        .iter()
        .map(|s| {
            json!({
                "status": s,
                "n": counts["by_status"][s].as_u64().unwrap_or(0),
                "href": clocks(s),
            })
        })
        .collect();
    json!({
        "name": name,
        "level": line["level"],
        "only": line["only"],
        "href": href,
        "total": counts["total"],
        "rate": counts["on_time_rate"],
        "rating": pages.ratings.rate(counts["on_time_rate"].as_f64()),
        "cells": cells,
    })
}

/// `GET /dashboard`: takes the API's `/v1/sla` parameters.
pub async fn dashboard(
    session: Session,
    State(app): State<Arc<App>>,
    Extension(pages): Extension<Arc<Pages>>,
    uri: Uri,
    p: Result<Query<SlaParams>, QueryRejection>,
) -> Response {
    let looking = Looking::of(&uri);
    let doc = match json_of(
        &session,
        reads::sla(session.caller.clone(), State(app.clone()), p).await,
    )
    .await
    {
        Ok(doc) => doc,
        Err(page) => return page,
    };
    let mine = session.caller.region.as_str().to_string();
    let current = looking
        .region
        .clone()
        .filter(|r| r.starts_with(&mine))
        .unwrap_or(mine.clone());
    let at = doc["at"].as_str().unwrap_or_default().to_string();
    // Lists of clocks are for those who may read them (not the observer).
    let lists = session.caller.role != Role::Observer;
    let at_str = at.as_str();
    // The link from a count with status `status` to its clocks, filtered by `extra`.
    let clocks_href = |extra: Filter| {
        move |status: &str| -> Option<String> {
            lists.then(|| {
                let mut pairs = vec![("status", Some(status)), ("at", Some(at_str))];
                pairs.extend(extra.iter().map(|(k, v)| (*k, v.as_deref())));
                format!("/clocks?{}", query(&pairs))
            })
        }
    };
    let lines = doc["by_region"].as_array().cloned().unwrap_or_default();
    let node = lines
        .iter()
        .find(|l| l["key"] == current.as_str())
        .map(|l| {
            row(
                &pages,
                l,
                &current,
                None,
                &clocks_href(vec![("region", Some(current.to_string()))]),
            )
        });
    let children: Vec<Value> = lines
        .iter()
        .filter_map(|l| {
            let key = l["key"].as_str()?;
            (key.len() == current.len() + 2 && key.starts_with(&current)).then(|| {
                row(
                    &pages,
                    l,
                    key,
                    Some(format!(
                        "/dashboard?{}",
                        query(&[("region", Some(key)), ("at", Some(at.as_str()))])
                    )),
                    &clocks_href(vec![("region", Some(key.to_string()))]),
                )
            })
        })
        .collect();
    // The way up: each region from the caller's down to the one looked at.
    let trail: Vec<Value> = (mine.len()..=current.len())
        .step_by(2)
        .map(|n| {
            let key = &current[..n];
            json!({"key": key, "href": format!("/dashboard?{}", query(&[("region", Some(key)), ("at", Some(at.as_str()))]))})
        })
        .collect();
    // The lines of `field`, each with the filter its counts' links add to the region's.
    let lines_of = |field: &str, filter: &dyn Fn(&str) -> Filter| {
        doc[field]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| {
                let key = l["key"].as_str().unwrap_or_default();
                let mut extra = vec![("region", Some(current.to_string()))];
                extra.extend(filter(key));
                row(&pages, l, key, None, &clocks_href(extra))
            })
            .collect::<Vec<Value>>()
    };
    let steps = lines_of("by_step", &|key| {
        let (policy, step) = key.split_once('/').unwrap_or((key, ""));
        vec![
            ("policy", Some(policy.to_string())),
            ("step", Some(step.to_string())),
        ]
    });
    let workers = lines_of("by_caseworker", &|key| {
        vec![("caseworker", Some(key.to_string()))]
    });
    let offset = looking.offset.unwrap_or(0);
    let more = doc["caseworkers"].as_u64().unwrap_or(0) as usize > offset + workers.len();
    let worker_page = |offset: usize| {
        format!(
            "/dashboard?{}",
            query(&[
                ("region", Some(current.as_str())),
                ("at", Some(at.as_str())),
                ("offset", Some(&offset.to_string())),
            ])
        )
    };
    // The first breached and due-soon clocks, and the households past their clearing
    // deadline (the breached clocks of the clearing step), each with the link to all.
    let mut listed = json!({});
    if lists {
        let wanted = [
            ("breached", "breached", None),
            ("at_risk", "at_risk", None),
            (
                "households",
                "breached",
                Some(("household-clearing", "cleared")),
            ),
        ];
        for (name, status, step) in wanted {
            let mut pairs = vec![
                ("status", Some(status)),
                ("region", Some(current.as_str())),
                ("at", Some(at.as_str())),
            ];
            if let Some((policy, step)) = step {
                pairs.push(("policy", Some(policy)));
                pairs.push(("step", Some(step)));
            }
            listed[format!("{name}_href")] = json!(format!("/clocks?{}", query(&pairs)));
            let limit = LISTED.to_string();
            pairs.push(("limit", Some(&limit)));
            let answer = reads::clocks(
                session.caller.clone(),
                State(app.clone()),
                params(&query(&pairs)),
            )
            .await;
            match json_of(&session, answer).await {
                Ok(d) => listed[name] = d,
                Err(page) => return page,
            }
        }
    }
    // The weekly on-time trend up to the same moment.
    let q = query(&[
        ("region", Some(current.as_str())),
        ("at", Some(at.as_str())),
    ]);
    let answer = reads::trend(session.caller.clone(), State(app.clone()), params(&q)).await;
    let trend = match json_of(&session, answer).await {
        Ok(d) => d["weeks"].as_array().cloned().unwrap_or_default(),
        Err(page) => return page,
    };
    let trend_title = session.lang.messages()["dashboard"]["trend"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    page(
        "dashboard.html",
        session.lang,
        Some(&session),
        json!({
            "here": uri.to_string(),
            "at": at,
            "region": current,
            "trail": trail,
            "node": node,
            "total": row(&pages, &json!({"level": "total", "counts": doc["total"]}), &current, None, &clocks_href(vec![("region", Some(current.to_string()))])),
            "children": children,
            "steps": steps,
            "workers": workers,
            "caseworkers": doc["caseworkers"],
            "workers_from": offset + 1,
            "workers_prev": (offset > 0).then(|| worker_page(offset.saturating_sub(50))),
            "workers_next": more.then(|| worker_page(offset + 50)),
            "lists": lists,
            "listed": listed,
            "statuses": STATUSES,
            "policies_differ": doc["policies_differ"],
            "trend": trend,
            "export_query": query(&[("region", Some(current.as_str())), ("at", Some(at.as_str()))]),
            "trend_svg": crate::chart::svg(&trend, &trend_title),
        }),
    )
}
