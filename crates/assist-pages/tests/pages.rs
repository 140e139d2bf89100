//! The pages on a real server over loopback: each test starts `assist_http::serve_with` with
//! the pages on 127.0.0.1:0 over a fresh embedded data dir holding a simulated city, and
//! reads the HTML the way a browser would get it (the session cookie set by hand, as
//! `POST /signin` sets it). The numbers on each page are checked against the JSON API's
//! answer for the same person.

mod common;

use assist_catalog::RegionPrefix;
use assist_http::auth::{Claims, Role, Signer};
use assist_pages::Ratings;
use common::{start, start_rating_by, Server, AT};
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::Value;
use std::collections::BTreeSet;

impl Server {
    /// A page for the person of `token` (their session cookie), in `lang`.
    async fn page_in(&self, token: &str, path: &str, lang: &str) -> (StatusCode, String) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .header(
                COOKIE,
                format!("assist_session={token}; assist_lang={lang}"),
            )
            .send()
            .await
            .unwrap();
        (r.status(), unescape(&r.text().await.unwrap()))
    }

    /// The answer to `GET path` for the person of `token` (their session cookie).
    async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .header(COOKIE, format!("assist_session={token}"))
            .send()
            .await
            .unwrap()
    }

    async fn page(&self, token: &str, path: &str) -> (StatusCode, String) {
        self.page_in(token, path, "zh").await
    }
}

/// HTML with the entities the templates escape with turned back into characters, as a
/// browser reads attribute values and text.
fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The text between `start` (after it) and the next `end`, for every occurrence.
fn between<'h>(html: &'h str, start: &str, end: &str) -> Vec<&'h str> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find(start) {
        rest = &rest[i + start.len()..];
        let Some(j) = rest.find(end) else { break };
        out.push(&rest[..j]);
        rest = &rest[j..];
    }
    out
}

/// The table row of `table` (its id) whose `data-key` is `key`.
fn row<'h>(html: &'h str, table: &str, key: &str) -> &'h str {
    let table = &html[html.find(&format!("id=\"{table}\"")).expect(table)..];
    let table = &table[..table.find("</table>").unwrap()];
    let start = table
        .find(&format!("data-key=\"{key}\""))
        .unwrap_or_else(|| panic!("no row {key} in {table}"));
    let row = &table[start..];
    &row[..row.find("</tr>").unwrap()]
}

/// The counts per status a row shows, by status.
fn counts(row: &str) -> Vec<(String, u64)> {
    between(row, "data-status=\"", "<")
        .into_iter()
        .map(|cell| {
            let (status, n) = cell.split_once("\">").unwrap();
            (status.to_string(), n.trim().parse().unwrap())
        })
        .collect()
}

fn api_counts(line: &Value) -> Vec<(String, u64)> {
    [
        "on_track",
        "at_risk",
        "paused",
        "breached",
        "met",
        "met_late",
        "cancelled",
    ]
    .into_iter()
    .map(|s| {
        (
            s.to_string(),
            line["counts"]["by_status"][s].as_u64().unwrap(),
        )
    })
    .collect()
}

fn href_of(row: &str, status: &str) -> String {
    let before = &row[..row.find(&format!("data-status=\"{status}\"")).unwrap()];
    let href = &before[before.rfind("href=\"").unwrap() + 6..];
    href[..href.find('"').unwrap()].replace("&amp;", "&")
}

fn enc(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn signing_in_with_a_token_sets_an_httponly_samesite_strict_session_cookie() {
    let s = start().await;
    let form = s
        .client
        .get(format!("{}/signin", s.base))
        .send()
        .await
        .unwrap();
    let csrf_cookie = form.headers()[SET_COOKIE].to_str().unwrap().to_string();
    let html = form.text().await.unwrap();
    let csrf = between(&html, "name=\"csrf\" value=\"", "\"")[0].to_string();
    let token = s.token(Role::Supervisor, "3501", "sup-3501");
    let r = s
        .post_form(
            Some(csrf_cookie.split(';').next().unwrap()),
            "/signin",
            &format!("csrf={csrf}&token={token}"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r.headers()[SET_COOKIE].to_str().unwrap();
    assert!(
        cookie.starts_with(&format!("assist_session={token};")),
        "{cookie}"
    );
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    // And the session opens the supervisor's start page.
    let (status, html) = s.page(&token, "/dashboard").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<title>督导看板 3501"), "{html}");
}

#[tokio::test]
async fn signing_in_without_the_forms_csrf_token_is_refused() {
    let s = start().await;
    let token = s.token(Role::Supervisor, "3501", "sup-3501");
    let r = s
        .post_form(None, "/signin", &format!("csrf=guessed&token={token}"))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get(SET_COOKIE).is_none());
}

#[tokio::test]
async fn a_page_without_a_session_or_with_a_forged_one_goes_to_sign_in() {
    let s = start().await;
    let r = s
        .client
        .get(format!("{}/dashboard", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/signin");
    let forged = Signer::shared_secret(b"not the server's key, 32 bytes long!")
        .sign(&Claims::new(
            "x",
            Role::Supervisor,
            &RegionPrefix::new("35").unwrap(),
            chrono::Duration::hours(1),
        ))
        .unwrap();
    let (status, _) = s.page(&forged, "/dashboard").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_form_without_the_sessions_csrf_token_is_refused() {
    let s = start().await;
    let token = s.token(Role::Supervisor, "3501", "sup-3501");
    let r = s
        .post_form(
            Some(&format!("assist_session={token}")),
            "/language",
            "csrf=0000&lang=en&back=/dashboard",
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get(SET_COOKIE).is_none());
}

#[tokio::test]
async fn every_page_has_a_content_security_policy_and_is_not_cached() {
    let s = start().await;
    let token = s.token(Role::Supervisor, "3501", "sup-3501");
    let r = s.get(&token, "/dashboard").await;
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("form-action 'self'"));
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
}

/// Every page with a token that may see it: the supervisor's, and the auditor's.
async fn every_page(s: &Server) -> Vec<(String, String)> {
    let city = s.token(Role::Supervisor, "3501", "sup-3501");
    let auditor = s.token(Role::Auditor, "3501", "aud-3501");
    let subject = s.first_case("", "subject").await;
    let clock = s.api_get(&city, "/v1/sla/clocks?limit=1").await["clocks"][0]["clock_id"]
        .as_str()
        .unwrap()
        .replace('/', "%2F");
    [
        (&city, "/dashboard".to_string()),
        (&city, "/clocks".to_string()),
        (&city, format!("/clocks/{clock}")),
        (&city, format!("/streams/{subject}")),
        (&city, "/worklist".to_string()),
        (&auditor, "/streams".to_string()),
        (&auditor, "/audit/findings".to_string()),
        (&auditor, "/audit/verify".to_string()),
        (&auditor, "/audit/access".to_string()),
    ]
    .into_iter()
    .map(|(t, p)| (t.clone(), p))
    .collect()
}

#[tokio::test]
async fn every_page_has_a_title_of_its_own() {
    let s = start().await;
    let pages = every_page(&s).await;
    let mut titles = BTreeSet::new();
    for (token, path) in &pages {
        let (status, html) = s.page(token, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let title = between(&html, "<title>", "</title>")[0].to_string();
        assert!(
            title.ends_with(" · 就业帮扶") && title.len() > " · 就业帮扶".len(),
            "{path}: {title}"
        );
        titles.insert(title);
    }
    let signin = s
        .client
        .get(format!("{}/signin", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    titles.insert(between(&signin, "<title>", "</title>")[0].to_string());
    assert_eq!(titles.len(), pages.len() + 1, "{titles:?}");
}

#[tokio::test]
async fn no_page_carries_a_script_so_every_one_works_without_javascript() {
    let s = start().await;
    for (token, path) in every_page(&s).await {
        let (status, html) = s.page(&token, &path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(!html.to_lowercase().contains("<script"), "{path}");
    }
}

#[tokio::test]
async fn the_dashboard_lists_its_caseworkers_and_first_breached_and_due_soon_clocks_as_the_api_does(
) {
    let s = start().await;
    let token = s.token(Role::Supervisor, "3501", "sup-3501");
    let at = enc(AT);
    let api = s.api_get(&token, &format!("/v1/sla?at={at}")).await;
    let (status, html) = s.page(&token, &format!("/dashboard?at={at}")).await;
    assert_eq!(status, StatusCode::OK);
    // The caseworker lines: the API's first page, with its counts.
    let workers = api["by_caseworker"].as_array().unwrap();
    assert!(!workers.is_empty());
    for line in workers {
        let key = line["key"].as_str().unwrap();
        assert_eq!(
            counts(row(&html, "workers", key)),
            api_counts(line),
            "{key}"
        );
    }
    // The first breached and due-soon clocks: the API's first ten of each, in its order.
    let mut listed = 0;
    for status in ["breached", "at_risk"] {
        let api = s
            .api_get(
                &token,
                &format!("/v1/sla/clocks?status={status}&region=3501&at={at}&limit=10"),
            )
            .await;
        let want: Vec<&str> = api["clocks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["clock_id"].as_str().unwrap())
            .collect();
        let section = between(&html, &format!("id=\"list-{status}\""), "</section>")[0];
        let shown: Vec<String> = between(section, "<a href=\"/clocks/", "?")
            .iter()
            .map(|id| id.replace("%2F", "/"))
            .collect();
        assert_eq!(shown, want, "{status}");
        listed += shown.len();
    }
    assert!(listed > 0, "the lists compared hold nothing");
}

#[tokio::test]
async fn the_dashboard_rates_by_the_thresholds_it_is_given() {
    // Every decided rate is at least 0: with both thresholds at 0, every node is green.
    let dashboard = |s: Server| async move {
        let token = s.token(Role::Supervisor, "3501", "sup-3501");
        s.page(&token, &format!("/dashboard?at={}", enc(AT))).await
    };
    let (_, shipped) = dashboard(start().await).await;
    assert!(
        shipped.contains("data-rating=\"red\""),
        "the shipped thresholds rate some red"
    );
    let all_green = Ratings::parse("green = 0.0\namber = 0.0").unwrap();
    let (status, html) = dashboard(start_rating_by(all_green).await).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("data-rating=\"green\""));
    for rating in ["red", "amber"] {
        assert!(
            !html.contains(&format!("data-rating=\"{rating}\"")),
            "{rating}"
        );
    }
}

#[tokio::test]
async fn each_case_on_the_worklist_shows_its_next_step_the_time_left_and_a_link_to_its_timeline() {
    let s = start().await;
    let worker = s.first_case("&region=350102", "caseworker").await;
    let token = s.token(Role::Caseworker, "350102", &worker);
    let api = s.api_get(&token, "/v1/caseload?limit=1000").await;
    let (_, html) = s.page(&token, "/worklist").await;
    let cases = api["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for c in cases {
        let subject = c["subject"].as_str().unwrap();
        let tr = between(&html, &format!("<tr data-subject=\"{subject}\">"), "</tr>")[0];
        assert!(
            tr.contains(&format!("<a href=\"/streams/{subject}\">")),
            "{tr}"
        );
        if let Some(step) = c["next_step"]["step"].as_str() {
            assert!(tr.contains(&format!("<td>{step}</td>")), "{tr}");
            assert!(tr.contains("已逾期") || tr.contains("还剩"), "{tr}");
        }
    }
}

#[tokio::test]
async fn the_dashboard_shows_the_apis_numbers_for_the_same_caller() {
    let s = start().await;
    let token = s.token(Role::Supervisor, "3501", "sup-3501");
    let at = enc(AT);
    let api = s.api_get(&token, &format!("/v1/sla?at={at}")).await;
    let (status, html) = s.page(&token, &format!("/dashboard?at={at}")).await;
    assert_eq!(status, StatusCode::OK);
    let mut checked = 0;
    for line in api["by_region"].as_array().unwrap() {
        let key = line["key"].as_str().unwrap();
        if key.len() == 6 {
            assert_eq!(
                counts(row(&html, "regions", key)),
                api_counts(line),
                "{key}"
            );
            checked += 1;
        }
    }
    // The simulated city has six counties.
    assert_eq!(checked, 6);
    for line in api["by_step"].as_array().unwrap() {
        let key = line["key"].as_str().unwrap();
        assert_eq!(counts(row(&html, "steps", key)), api_counts(line), "{key}");
    }
    let total = counts(row(&html, "regions", "3501"));
    assert_eq!(
        total,
        api_counts(&serde_json::json!({"counts": api["total"]}))
    );
    assert!(total.iter().map(|(_, n)| n).sum::<u64>() > 100);
}

#[tokio::test]
async fn each_node_is_rated_in_words_as_well_as_colour() {
    let s = start().await;
    let token = s.token(Role::Supervisor, "3501", "sup-3501");
    let api = s.api_get(&token, &format!("/v1/sla?at={}", enc(AT))).await;
    let (_, html) = s.page(&token, &format!("/dashboard?at={}", enc(AT))).await;
    let ratings = Ratings::shipped();
    for line in api["by_region"].as_array().unwrap() {
        let key = line["key"].as_str().unwrap();
        if key.len() != 6 {
            continue;
        }
        let rating = ratings.rate(line["counts"]["on_time_rate"].as_f64());
        let r = row(&html, "regions", key);
        assert!(
            r.contains(&format!("data-rating=\"{rating}\"")),
            "{key}: {r}"
        );
        let word = match rating {
            "green" => "绿：良好",
            "amber" => "黄：需关注",
            "red" => "红：需整改",
            _ => "无数据",
        };
        assert!(r.contains(word), "{key}: {r}");
    }
}

#[tokio::test]
async fn a_figure_leads_to_exactly_its_clocks_then_one_clock_then_the_timeline() {
    let s = start().await;
    let token = s.token(Role::Supervisor, "3501", "sup-3501");
    let at = enc(AT);
    let (_, html) = s.page(&token, &format!("/dashboard?at={at}")).await;
    // Click: the city → a county.
    let county = row(&html, "regions", "350121");
    let county_href = between(county, "<a href=\"", "\"")[0].replace("&amp;", "&");
    let (status, html) = s.page(&token, &county_href).await;
    assert_eq!(status, StatusCode::OK);
    // Click: the county's breached figure → the clocks behind it.
    let node = row(&html, "regions", "350121");
    let figure = counts(node)
        .into_iter()
        .find(|(st, _)| st == "breached")
        .unwrap()
        .1;
    assert!(figure > 0, "the simulated county has breached clocks");
    let (status, list) = s.page(&token, &href_of(node, "breached")).await;
    assert_eq!(status, StatusCode::OK);
    let total: u64 = between(&list, "id=\"count\" data-total=\"", "\"")[0]
        .parse()
        .unwrap();
    assert_eq!(total, figure);
    // Click: one clock → its facts.
    let clock_href = between(&list, "<tr data-clock=\"", "</tr>")[0];
    let clock_href = between(clock_href, "<a href=\"", "\"")[0].replace("&amp;", "&");
    let (status, clock) = s.page(&token, &clock_href).await;
    assert_eq!(status, StatusCode::OK);
    assert!(clock.contains("data-status=\"breached\""), "{clock}");
    assert!(clock.contains("开始计时"), "the fact that started it");
    // Click: the subject's timeline, its personal fields masked for a supervisor.
    let timeline = between(&clock, "id=\"timeline-link\"", "</a>");
    assert_eq!(timeline.len(), 1);
    let timeline_href = between(&clock, "<a href=\"/streams/", "\"")[0];
    let (status, t) = s.page(&token, &format!("/streams/{timeline_href}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(t.contains("data-personal=\"masked\""));
    assert!(between(&t, "data-event=\"", "\"").len() > 1);
}

#[tokio::test]
async fn an_out_of_region_url_typed_by_hand_is_not_found() {
    let s = start().await;
    let county = s.token(Role::Supervisor, "350102", "sup-350102");
    let city = s.token(Role::Supervisor, "3501", "sup-3501");
    // A subject of another county, found with the city's scope.
    let other = s
        .api_get(&city, "/v1/sla/clocks?region=350121&limit=1")
        .await["clocks"][0]
        .clone();
    for path in [
        format!("/streams/{}", other["subject"].as_str().unwrap()),
        format!(
            "/clocks/{}",
            other["clock_id"].as_str().unwrap().replace('/', "%2F")
        ),
        "/dashboard?region=350121".to_string(),
        "/clocks?region=350121".to_string(),
    ] {
        let (status, html) = s.page(&county, &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(html.contains("未找到，或不在您的管辖范围内。"), "{path}");
    }
}

#[tokio::test]
async fn the_observer_sees_figures_without_any_list_of_people_or_export() {
    let s = start().await;
    let observer = s.token(Role::Observer, "3501", "obs-3501");
    let (status, html) = s
        .page(&observer, &format!("/dashboard?at={}", enc(AT)))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !html.contains("href=\"/clocks"),
        "no link to a list of clocks"
    );
    assert!(!html.contains("id=\"list-breached\""));
    assert!(!html.contains("person-"), "no person is named");
    for path in [
        "/clocks?status=breached",
        "/export/clocks.xlsx?status=breached",
    ] {
        let (status, _) = s.page(&observer, path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
}

#[tokio::test]
async fn a_caseworkers_worklist_holds_their_cases_only_overdue_first() {
    let s = start().await;
    let worker = s.first_case("&region=350102", "caseworker").await;
    let token = s.token(Role::Caseworker, "350102", &worker);
    let api = s.api_get(&token, "/v1/caseload?limit=1000").await;
    let (status, html) = s.page(&token, "/worklist").await;
    assert_eq!(status, StatusCode::OK);
    let shown = between(&html, "<tr data-subject=\"", "\"");
    let mine: Vec<&str> = api["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["subject"].as_str().unwrap())
        .collect();
    assert_eq!(shown.len(), mine.len());
    assert!(shown.iter().all(|s| mine.contains(s)));
    // Today (2026-12) every simulated deadline is long past: all overdue, and first.
    if !shown.is_empty() {
        assert!(html.find("id=\"band-overdue\"").unwrap() < html.find("data-subject").unwrap());
    }
}

#[tokio::test]
async fn the_english_switch_changes_the_labels_and_nothing_else() {
    let s = start().await;
    let token = s.token(Role::Supervisor, "3501", "sup-3501");
    let path = format!("/dashboard?at={}", enc(AT));
    let (_, zh) = s.page_in(&token, &path, "zh").await;
    let (_, en) = s.page_in(&token, &path, "en").await;
    assert!(zh.contains("<html lang=\"zh-CN\">") && zh.contains("按时率"));
    assert!(en.contains("<html lang=\"en\">") && en.contains("On time"));
    assert!(!en.contains("按时率"));
    // The same figures, ratings and links.
    assert_eq!(
        between(&zh, "data-status=\"", "<"),
        between(&en, "data-status=\"", "<")
    );
    assert_eq!(
        between(&zh, "data-rating=\"", "\""),
        between(&en, "data-rating=\"", "\"")
    );
    assert_eq!(between(&zh, "href=\"", "\""), between(&en, "href=\"", "\""));
}

#[tokio::test]
async fn the_language_form_sets_the_choice_for_this_browser() {
    let s = start().await;
    let token = s.token(Role::Supervisor, "3501", "sup-3501");
    let (_, html) = s.page(&token, "/dashboard").await;
    let csrf = between(&html, "name=\"csrf\" value=\"", "\"")[0].to_string();
    let r = s
        .post_form(
            Some(&format!("assist_session={token}")),
            "/language",
            &format!("csrf={csrf}&lang=en&back=%2Fdashboard"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/dashboard");
    assert!(r.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .starts_with("assist_lang=en;"));
}

#[tokio::test]
async fn an_xlsx_export_holds_the_rows_of_the_list_and_is_in_the_access_log() {
    use calamine::Reader;
    let s = start().await;
    let token = s.token(Role::Supervisor, "3501", "sup-3501");
    let query = format!("status=breached&region=350121&at={}", enc(AT));
    let api = s
        .api_get(&token, &format!("/v1/sla/clocks?{query}&limit=1000"))
        .await;
    let r = s.get(&token, &format!("/export/clocks.xlsx?{query}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let bytes = r.bytes().await.unwrap();
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let sheet = book.worksheet_range_at(0).unwrap().unwrap();
    let rows: Vec<Vec<String>> = sheet
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    assert_eq!(rows[0][0], "时钟编号");
    assert_eq!(rows[0][7], "状态");
    let ids: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    let api_ids: Vec<&str> = api["clocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["clock_id"].as_str().unwrap())
        .collect();
    // Longer than two of the test server's export pages (37 rows): read page by page.
    assert!(api_ids.len() > 2 * 37, "{} clocks", api_ids.len());
    assert_eq!(ids, api_ids);
    assert!(rows[1..].iter().all(|r| r[7] == "已超时"));
    // The CSV of the same list, sent as its pages are read, holds the same clocks.
    let csv = s
        .get(&token, &format!("/export/clocks.csv?{query}"))
        .await
        .text()
        .await
        .unwrap();
    let csv_ids: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(csv_ids, api_ids);
    // Times as the pages write them, in China time.
    let due = api["clocks"][0]["due_at"].as_str().unwrap();
    assert_eq!(rows[1][6], assist_pages::catalog::Lang::Zh.when(due));
    assert!(rows[1][6].contains(" 周"), "{}", rows[1][6]);
    let (log, _) = s.app.views.store.access_log(100, 0).await.unwrap();
    let export = log
        .iter()
        .find(|a| a.command.starts_with("GET export clocks.xlsx"))
        .expect("the export is in the access log");
    assert_eq!(export.actor, "sup-3501");
    assert!(export.command.contains(&format!("rows={}", api_ids.len())));
}

#[tokio::test]
async fn opening_personal_fields_takes_a_reason_that_goes_to_the_access_log() {
    let s = start().await;
    let subject = s.first_case("", "subject").await;
    let auditor = s.token(Role::Auditor, "3501", "aud-3501");
    let (_, html) = s.page(&auditor, &format!("/streams/{subject}")).await;
    assert!(html.contains("data-personal=\"masked\""));
    // A reason in the URL is refused: it goes in the form.
    let (status, _) = s
        .page(&auditor, &format!("/streams/{subject}?reason=x"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let csrf = between(&html, "name=\"csrf\" value=\"", "\"")[0].to_string();
    let r = s
        .client
        .post(format!("{}/streams/{subject}", s.base))
        .header(COOKIE, format!("assist_session={auditor}"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!(
            "csrf={csrf}&reason=%E6%A1%88%E4%BB%B6%E5%A4%8D%E6%A0%B8"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("data-personal=\"opened\""));
    let (log, _) = s.app.views.store.access_log(100, 0).await.unwrap();
    assert!(log
        .iter()
        .any(|a| a.stream == subject && a.reason.as_deref() == Some("案件复核")));
}

#[tokio::test]
async fn the_auditor_sees_the_apis_findings_each_linking_to_its_events_in_the_timeline() {
    let s = start().await;
    let auditor = s.token(Role::Auditor, "3501", "aud-3501");
    let api = s.api_get(&auditor, "/v1/audit/findings").await;
    let (status, html) = s.page(&auditor, "/audit/findings").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        between(&html, "id=\"count\" data-total=\"", "\"")[0],
        api["total"].to_string()
    );
    let first = &api["findings"][0];
    let event = first["events"][0].as_str().unwrap();
    let link = format!("/streams/{}#e-{event}", first["subject"].as_str().unwrap());
    assert!(html.contains(&format!("href=\"{link}\"")), "{link}");
    // The anchor is on the event's row of the timeline.
    let (_, timeline) = s.page(&auditor, link.split('#').next().unwrap()).await;
    let (_, all) = s
        .page(
            &auditor,
            &format!("{}?limit=1000", link.split('#').next().unwrap()),
        )
        .await;
    assert!(
        all.contains(&format!("id=\"e-{event}\""))
            || timeline.contains(&format!("id=\"e-{event}\"")),
        "the finding's event is on the timeline"
    );
}

#[tokio::test]
async fn verify_runs_when_its_page_is_asked_for_and_says_the_log_agrees() {
    let s = start().await;
    let auditor = s.token(Role::Auditor, "3501", "aud-3501");
    let (status, html) = s.page(&auditor, "/audit/verify").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("data-agrees=\"true\""), "{html}");
    assert!(html.contains("日志与审计记录完全一致。"));
    let supervisor = s.token(Role::Supervisor, "3501", "sup-3501");
    let (status, _) = s.page(&supervisor, "/audit/verify").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_access_log_page_lists_who_read_which_history_and_why() {
    let s = start().await;
    let city = s.token(Role::Supervisor, "3501", "sup-3501");
    let subject = s.first_case("", "subject").await;
    let (status, _) = s.page(&city, &format!("/streams/{subject}")).await;
    assert_eq!(status, StatusCode::OK);
    let auditor = s.token(Role::Auditor, "3501", "aud-3501");
    let api = s.api_get(&auditor, "/v1/access-log").await;
    let (status, html) = s.page(&auditor, "/audit/access").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        between(&html, "id=\"count\" data-total=\"", "\"")[0],
        api["total"].to_string()
    );
    assert!(html.contains(&format!("<td>{subject}</td>")));
    assert!(html.contains("<td>sup-3501</td>"));
}

#[tokio::test]
async fn an_export_is_in_the_access_log_of_its_regions_auditors_and_no_others() {
    let s = start().await;
    let city = s.token(Role::Supervisor, "3501", "sup-3501");
    let (status, _) = s
        .page(&city, "/export/clocks.csv?status=breached&region=350121")
        .await;
    assert_eq!(status, StatusCode::OK);
    let exports = |doc: Value| -> Vec<Value> {
        doc["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["command"].as_str().unwrap().starts_with("GET export "))
            .cloned()
            .collect()
    };
    // The province's and the county's auditors see it, with the region it covers.
    for region in ["35", "350121"] {
        let auditor = s.token(Role::Auditor, region, &format!("aud-{region}"));
        let seen = exports(s.api_get(&auditor, "/v1/access-log?limit=1000").await);
        assert_eq!(seen.len(), 1, "{region}");
        assert_eq!(seen[0]["actor"], "sup-3501");
        assert_eq!(seen[0]["region"], "350121");
        assert!(seen[0]["command"]
            .as_str()
            .unwrap()
            .starts_with("GET export clocks.csv rows="));
        let (_, html) = s.page(&auditor, "/audit/access?limit=1000").await;
        assert!(html.contains("<td>350121</td>"), "{region}");
    }
    // Another county's auditor does not.
    let other = s.token(Role::Auditor, "350102", "aud-350102");
    assert!(exports(s.api_get(&other, "/v1/access-log?limit=1000").await).is_empty());
}

#[tokio::test]
async fn the_auditors_findings_and_access_log_exports_hold_the_apis_lists() {
    use calamine::Reader;
    let s = start().await;
    // A history read, so that the access log holds something.
    let city = s.token(Role::Supervisor, "3501", "sup-3501");
    let subject = s.first_case("", "subject").await;
    assert_eq!(
        s.page(&city, &format!("/streams/{subject}")).await.0,
        StatusCode::OK
    );
    let auditor = s.token(Role::Auditor, "3501", "aud-3501");
    let findings = s.api_get(&auditor, "/v1/audit/findings?limit=1000").await;
    let listed = findings["findings"].as_array().unwrap();
    assert!(!listed.is_empty(), "the simulation has findings");
    let csv = s
        .get(&auditor, "/export/findings.csv")
        .await
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "\u{feff}类型,帮扶对象,说明,相关事件");
    assert_eq!(lines.len() - 1, listed.len());
    let subjects: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    let api_subjects: Vec<&str> = listed
        .iter()
        .map(|f| f["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, api_subjects);
    let log = s.api_get(&auditor, "/v1/access-log?limit=1000").await;
    let entries = log["entries"].as_array().unwrap();
    let bytes = s
        .get(&auditor, "/export/access.xlsx")
        .await
        .bytes()
        .await
        .unwrap();
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let sheet = book.worksheet_range_at(0).unwrap().unwrap();
    let rows: Vec<Vec<String>> = sheet
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    assert_eq!(rows[0][1], "访问人");
    // The entries the API listed, in its order (the export's own entry comes after).
    let actors: Vec<&str> = rows[1..].iter().map(|r| r[1].as_str()).collect();
    let api_actors: Vec<&str> = entries
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert_eq!(actors[..api_actors.len()], api_actors[..]);
    assert!(rows[1..].iter().any(|r| r[3] == subject));
}

#[tokio::test]
async fn a_timeline_as_of_a_date_holds_what_had_occurred_by_then_as_the_api_says() {
    let s = start().await;
    let subject = s.first_case("", "subject").await;
    let auditor = s.token(Role::Auditor, "3501", "aud-3501");
    let all = s
        .api_get(&auditor, &format!("/v1/streams/{subject}/history"))
        .await;
    let first_day = &all["events"][0]["event"]["occurred_at"].as_str().unwrap()[..10];
    let api = s
        .api_get(
            &auditor,
            &format!("/v1/streams/{subject}/history?as_of={first_day}"),
        )
        .await;
    // The picker's empty known-on date asks for nothing.
    let (status, html) = s
        .page(
            &auditor,
            &format!("/streams/{subject}?as_of={first_day}&known_on="),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert_eq!(
        between(&html, "id=\"count\" data-total=\"", "\"")[0],
        api["total"].to_string()
    );
    assert!(api["total"].as_u64().unwrap() < all["total"].as_u64().unwrap());
    assert!(html.contains(&format!("value=\"{first_day}\"")));
}

#[tokio::test]
async fn the_dashboard_lists_the_households_past_their_clearing_deadline_as_the_api_does() {
    let s = start().await;
    let token = s.token(Role::Supervisor, "3501", "sup-3501");
    let at = enc(AT);
    let api = s
        .api_get(
            &token,
            &format!(
                "/v1/sla/clocks?status=breached&policy=household-clearing&step=cleared&at={at}"
            ),
        )
        .await;
    let (_, html) = s.page(&token, &format!("/dashboard?at={at}")).await;
    let section = &html[html.find("id=\"list-households\"").unwrap()..];
    let section = &section[..section.find("</section>").unwrap()];
    let shown = between(section, "<td><a href=\"/clocks/", "\"").len();
    let total = api["total"].as_u64().unwrap() as usize;
    assert_eq!(shown, total.min(10));
    assert!(
        section.contains(&format!("({total})")) || total == 0,
        "{section}"
    );
}

#[tokio::test]
async fn the_weekly_trend_shows_the_apis_weeks_as_a_chart_and_a_table() {
    let s = start().await;
    let token = s.token(Role::Observer, "3501", "obs-3501");
    let at = enc(AT);
    let api = s
        .api_get(&token, &format!("/v1/sla/trend?region=3501&at={at}"))
        .await;
    let (status, html) = s.page(&token, &format!("/dashboard?at={at}")).await;
    assert_eq!(status, StatusCode::OK);
    let weeks = api["weeks"].as_array().unwrap();
    assert_eq!(weeks.len(), 8);
    let rates = between(&html, "data-rate=\"", "\"");
    let table: Vec<&str> = rates.iter().copied().filter(|r| !r.is_empty()).collect();
    let want: Vec<String> = weeks
        .iter()
        .map(|w| match &w["counts"]["on_time_rate"] {
            Value::Null => "none".to_string(),
            r => r.to_string(),
        })
        .collect();
    assert_eq!(table, want);
    let decided = weeks
        .iter()
        .filter(|w| !w["counts"]["on_time_rate"].is_null())
        .count();
    assert!(decided > 0);
    assert!(html.contains("<svg") && html.contains("role=\"img\""));
    assert_eq!(html.matches("<circle").count(), decided);
}

/// The rows of an XLSX answer's first sheet, as text.
async fn xlsx_rows(r: reqwest::Response) -> Vec<Vec<String>> {
    use calamine::Reader;
    assert_eq!(r.status(), StatusCode::OK);
    let bytes = r.bytes().await.unwrap();
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let sheet = book.worksheet_range_at(0).unwrap().unwrap();
    sheet
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect()
}

#[tokio::test]
async fn the_summary_export_holds_the_dashboards_figures_for_every_region_and_caseworker() {
    let s = start().await;
    let token = s.token(Role::Supervisor, "3501", "sup-3501");
    let at = enc(AT);
    let api = s
        .api_get(&token, &format!("/v1/sla?at={at}&limit=1000"))
        .await;
    let r = s
        .get(&token, &format!("/export/summary.xlsx?region=3501&at={at}"))
        .await;
    let rows = xlsx_rows(r).await;
    assert_eq!(rows[0][0], "级别");
    assert_eq!(rows[0][5], "已超时");
    // The total, every region line, every caseworker line.
    let regions = api["by_region"].as_array().unwrap();
    let workers = api["by_caseworker"].as_array().unwrap();
    assert_eq!(rows.len(), 1 + 1 + regions.len() + workers.len());
    assert_eq!(
        rows[1][5],
        api["total"]["by_status"]["breached"].to_string()
    );
    let county = regions.iter().find(|l| l["key"] == "350121").unwrap();
    let row = rows.iter().find(|r| r[1] == "350121").unwrap();
    assert_eq!(row[0], "区县");
    assert_eq!(
        row[5],
        county["counts"]["by_status"]["breached"].to_string()
    );
}

#[tokio::test]
async fn the_caseload_export_holds_the_caseworkers_cases_and_the_observer_has_no_export() {
    let s = start().await;
    let worker = s.first_case("&region=350102", "caseworker").await;
    let token = s.token(Role::Caseworker, "350102", &worker);
    let api = s.api_get(&token, "/v1/caseload?limit=1000").await;
    let r = s.get(&token, "/export/caseload.xlsx").await;
    let rows = xlsx_rows(r).await;
    let subjects: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    let want: Vec<&str> = api["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, want);
    let observer = s.token(Role::Observer, "3501", "obs-3501");
    for path in ["/export/summary.xlsx", "/export/caseload.csv"] {
        let (status, _) = s.page(&observer, path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
}
