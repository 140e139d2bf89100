//! The pages in a real headless Chromium (Debian's `chromium` and `chromium-driver`, which
//! `./scripts/test` installs), driven through WebDriver against the real server over
//! loopback: sign in through the form, click down from a figure to one event, download an
//! export, switch the language. The numbers on every page are checked against the JSON
//! API's answer for the same person. Screenshots of every page go to
//! `target/screenshots/` (not committed).

mod common;

use assist_http::auth::Role;
use common::{start, Server};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::Duration;

/// A chromedriver on a free local port and a headless Chromium session through it;
/// both end when dropped.
struct Browser {
    client: Client,
    driver: std::process::Child,
    downloads: tempfile::TempDir,
}

impl Drop for Browser {
    /// Ends chromedriver and the Chromium it started: they share a process group of
    /// their own, so no browser outlives its test.
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &group])
            .status();
        let _ = self.driver.wait();
    }
}

fn chromedriver() -> String {
    std::env::var("ASSIST_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".to_string())
}

async fn browser() -> Browser {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = std::process::Command::new(chromedriver())
        .process_group(0)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start chromedriver ({e}): run the tests through ./scripts/test, which \
                 installs Debian's chromium and chromium-driver, or set ASSIST_CHROMEDRIVER"
            )
        });
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let downloads = tempfile::tempdir().unwrap();
    let mut options = json!({
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000", "--lang=zh-CN"],
        "prefs": {
            "download.default_directory": downloads.path(),
            "download.prompt_for_download": false,
        },
    });
    if let Ok(binary) = std::env::var("ASSIST_CHROMIUM") {
        options["binary"] = json!(binary);
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".to_string(), options);
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a headless Chromium session");
    Browser {
        client,
        driver,
        downloads,
    }
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Browser {
    /// Signs in through the form, as a person pasting the token an SSO gave them.
    async fn sign_in(&self, s: &Server, token: &str) {
        self.client
            .goto(&format!("{}/signin", s.base))
            .await
            .unwrap();
        self.type_into("token", token).await;
        self.click("main button[type=submit]").await;
    }

    /// Types `text` into the field with id `id`.
    async fn type_into(&self, id: &str, text: &str) {
        self.client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("#{id}: {e}"))
            .send_keys(text)
            .await
            .unwrap();
    }

    /// Clicks `css` and waits until the page it was on has gone (its `html` element no
    /// longer answers), up to 5 s: WebDriver's click may return before a form's redirects
    /// have landed. A click that opens no page (a download) waits the 5 s.
    async fn click(&self, css: &str) {
        let before = self.client.find(Locator::Css("html")).await.unwrap();
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
        for _ in 0..100 {
            if before.tag_name().await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The new page's document is there.
        self.client
            .wait()
            .for_element(Locator::Css("main"))
            .await
            .unwrap();
    }

    async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    async fn attr(&self, css: &str, name: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .attr(name)
            .await
            .unwrap()
            .unwrap_or_default()
    }

    /// Attribute `name` of every element `css` finds, in page order.
    async fn attrs(&self, css: &str, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        for e in self.client.find_all(Locator::Css(css)).await.unwrap() {
            out.push(e.attr(name).await.unwrap().unwrap_or_default());
        }
        out
    }

    async fn all(&self, css: &str) -> usize {
        self.client.find_all(Locator::Css(css)).await.unwrap().len()
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
    }

    /// Presses `key` (a WebDriver key code such as [`TAB`]) where the focus is, as a
    /// keyboard does.
    async fn press(&self, key: char) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let keys = KeyActions::new("keyboard".to_string())
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
        self.client.perform_actions(keys).await.unwrap();
    }

    /// The element that has the focus: its text and its `href` property (absolute).
    async fn focused(&self) -> (String, String) {
        let e = self.client.active_element().await.unwrap();
        let href = e.prop("href").await.unwrap().unwrap_or_default();
        (e.text().await.unwrap(), href)
    }

    async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        url.path().to_string()
    }
}

/// WebDriver's key codes for Tab and Enter.
const TAB: char = '\u{e004}';
const ENTER: char = '\u{e007}';

/// The API's counts of a line, per status.
fn status_count(line: &Value, status: &str) -> String {
    line["counts"]["by_status"][status]
        .as_u64()
        .unwrap()
        .to_string()
}

/// The dashboard's figures for its own region (the `node` row) equal the API's total for
/// the same region at the same moment, which the page states in its `time` element.
async fn assert_node_is_the_apis(b: &Browser, s: &Server, token: &str, region: &str) -> Value {
    let at = b.attr("main time", "datetime").await;
    let api = s
        .api_get(
            token,
            &format!("/v1/sla?region={region}&at={}", at.replace('+', "%2B")),
        )
        .await;
    let node = json!({"counts": api["total"]});
    for status in [
        "on_track",
        "at_risk",
        "breached",
        "met",
        "met_late",
        "cancelled",
    ] {
        assert_eq!(
            b.text(&format!("#regions tr.node [data-status={status}]"))
                .await,
            status_count(&node, status),
            "{region} {status}"
        );
    }
    node
}

#[tokio::test]
async fn a_province_supervisor_clicks_from_the_province_figure_down_to_one_event() {
    let s = start().await;
    let b = browser().await;
    let token = s.token(Role::Supervisor, "35", "sup-35");
    b.sign_in(&s, &token).await;
    assert_eq!(b.path().await, "/dashboard");
    b.screenshot("dashboard-province").await;
    assert_node_is_the_apis(&b, &s, &token, "35").await;
    // Click 1: the city.
    b.click("#regions tr[data-key='3501'] th a").await;
    b.screenshot("dashboard-city").await;
    assert_node_is_the_apis(&b, &s, &token, "3501").await;
    // Click 2: the county.
    b.click("#regions tr[data-key='350121'] th a").await;
    b.screenshot("dashboard-county").await;
    let county = assert_node_is_the_apis(&b, &s, &token, "350121").await;
    let at = b.attr("main time", "datetime").await.replace('+', "%2B");
    // Click 3: its breached figure, to the clocks behind it: as many as the figure, the
    // API's first page in the API's order.
    b.click("#regions tr.node a[data-status=breached]").await;
    assert_eq!(b.path().await, "/clocks");
    b.screenshot("clocks-breached").await;
    assert_eq!(
        b.attr("#count", "data-total").await,
        status_count(&county, "breached")
    );
    let api = s
        .api_get(
            &token,
            &format!("/v1/sla/clocks?status=breached&region=350121&at={at}"),
        )
        .await;
    let shown = b.attrs("#clocks tbody tr", "data-clock").await;
    let listed: Vec<&str> = api["clocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["clock_id"].as_str().unwrap())
        .collect();
    assert_eq!(shown, listed);
    // Click 4: one clock and the facts that breached it, as the API explains it.
    b.click("#clocks tbody tr:first-child td:first-child a")
        .await;
    b.screenshot("clock").await;
    let clock = s
        .api_get(
            &token,
            &format!("/v1/sla/clocks/{}?at={at}", listed[0].replace('/', "%2F")),
        )
        .await;
    assert_eq!(b.attr("#clock", "data-status").await, "breached");
    assert_eq!(clock["clock"]["status"], "breached");
    let facts = clock["facts"].as_array().unwrap();
    assert_eq!(b.all("#facts tbody tr").await, facts.len());
    // Click 5: the last fact, to that one event in the person's timeline (personal
    // fields masked for a supervisor), which holds the API's history.
    let event = facts.last().unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    b.click(&format!("#facts tr[data-event='{event}'] a")).await;
    b.screenshot("timeline").await;
    let url = b.client.current_url().await.unwrap();
    assert_eq!(url.fragment(), Some(format!("e-{event}").as_str()));
    assert_eq!(b.attr(&format!("#e-{event}"), "data-event").await, event);
    assert_eq!(b.attr("#personal", "data-personal").await, "masked");
    let subject = clock["clock"]["subject"].as_str().unwrap();
    let history = s
        .api_get(&token, &format!("/v1/streams/{subject}/history"))
        .await;
    assert_eq!(
        b.all("#events tbody tr[data-event]").await,
        history["events"].as_array().unwrap().len()
    );
    // The README's picture: the city in the middle of the simulated quarter.
    b.client
        .goto(&format!("{}/dashboard?region=3501&at=2026-03-20", s.base))
        .await
        .unwrap();
    b.screenshot("dashboard-city-2026-03-20").await;
}

#[tokio::test]
async fn each_role_sees_what_it_may_and_a_url_outside_its_region_is_not_found() {
    let s = start().await;
    // The observer: figures, no link to a list of people, and a typed list URL refused.
    let b = browser().await;
    b.sign_in(&s, &s.token(Role::Observer, "3501", "obs-3501"))
        .await;
    assert_eq!(b.path().await, "/dashboard");
    b.screenshot("dashboard-observer").await;
    assert_eq!(b.all("a[href^='/clocks']").await, 0);
    assert_eq!(b.all("#list-breached").await, 0);
    b.client
        .goto(&format!("{}/clocks?status=breached", s.base))
        .await
        .unwrap();
    assert_eq!(b.attr("#problem", "data-status").await, "403");
    drop(b);

    // A county supervisor typing another county's URLs: not found.
    let b = browser().await;
    let city = s.token(Role::Supervisor, "3501", "sup-3501");
    let other = s
        .api_get(&city, "/v1/sla/clocks?region=350121&limit=1")
        .await["clocks"][0]
        .clone();
    b.sign_in(&s, &s.token(Role::Supervisor, "350102", "sup-350102"))
        .await;
    for path in [
        "/dashboard?region=350121".to_string(),
        format!("/streams/{}", other["subject"].as_str().unwrap()),
    ] {
        b.client.goto(&format!("{}{path}", s.base)).await.unwrap();
        assert_eq!(b.attr("#problem", "data-status").await, "404", "{path}");
    }
    b.screenshot("not-found").await;
    drop(b);

    // A caseworker: their worklist, each case linking to its timeline.
    let worker = s.first_case("&region=350102", "caseworker").await;
    let b = browser().await;
    let token = s.token(Role::Caseworker, "350102", &worker);
    b.sign_in(&s, &token).await;
    assert_eq!(b.path().await, "/worklist");
    b.screenshot("worklist").await;
    let api = s.api_get(&token, "/v1/caseload?limit=1000").await;
    assert_eq!(
        b.all("tr[data-subject]").await,
        api["cases"].as_array().unwrap().len()
    );
    drop(b);

    // An auditor: a timeline, personal fields opened only with a reason.
    let subject = other["subject"].as_str().unwrap();
    let b = browser().await;
    b.sign_in(&s, &s.token(Role::Auditor, "3501", "aud-3501"))
        .await;
    assert_eq!(b.path().await, "/streams");
    b.type_into("stream", subject).await;
    b.click("main form button").await;
    assert_eq!(b.attr("#personal", "data-personal").await, "masked");
    b.type_into("reason", "案件复核").await;
    b.click("main form button").await;
    b.screenshot("timeline-auditor-opened").await;
    assert_eq!(b.attr("#personal", "data-personal").await, "opened");
}

#[tokio::test]
async fn an_xlsx_downloaded_from_a_list_holds_the_lists_rows() {
    use calamine::Reader;
    let s = start().await;
    let b = browser().await;
    let token = s.token(Role::Supervisor, "3501", "sup-3501");
    b.sign_in(&s, &token).await;
    b.client
        .goto(&format!(
            "{}/clocks?status=breached&region=350121&limit=1000",
            s.base
        ))
        .await
        .unwrap();
    let shown = b.attrs("#clocks tbody tr", "data-clock").await;
    assert!(!shown.is_empty());
    b.click("#export-xlsx").await;
    let file = b.downloads.path().join("clocks.xlsx");
    for _ in 0..100 {
        if file.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut book: calamine::Xlsx<_> = calamine::open_workbook(&file).expect("the download");
    let sheet = book.worksheet_range_at(0).unwrap().unwrap();
    let ids: Vec<String> = sheet.rows().skip(1).map(|r| r[0].to_string()).collect();
    assert_eq!(ids, shown);
}

#[tokio::test]
async fn the_english_switch_changes_the_labels_and_nothing_else() {
    let s = start().await;
    let b = browser().await;
    b.sign_in(&s, &s.token(Role::Supervisor, "3501", "sup-3501"))
        .await;
    let figures = |b: &Browser| {
        let client = b.client.clone();
        async move {
            let mut out = Vec::new();
            for e in client
                .find_all(Locator::Css("[data-status]"))
                .await
                .unwrap()
            {
                out.push(e.text().await.unwrap());
            }
            out
        }
    };
    let zh = figures(&b).await;
    assert!(b.text("h1").await.starts_with("督导看板"));
    b.click("#switch-language").await;
    assert_eq!(b.path().await, "/dashboard");
    b.screenshot("dashboard-english").await;
    assert!(b.text("h1").await.starts_with("Dashboard"));
    assert_eq!(figures(&b).await, zh);
}

#[tokio::test]
async fn the_keyboard_alone_skips_to_the_content_reaches_a_region_and_opens_it() {
    let s = start().await;
    let b = browser().await;
    b.sign_in(&s, &s.token(Role::Supervisor, "3501", "sup-3501"))
        .await;
    let row = "#regions tbody tr:nth-child(2)";
    let key = b.attr(row, "data-key").await;
    let county = b
        .client
        .find(Locator::Css(&format!("{row} th a")))
        .await
        .unwrap()
        .prop("href")
        .await
        .unwrap()
        .unwrap();
    // The first Tab lands on the link that skips the header.
    b.press(TAB).await;
    let (text, href) = b.focused().await;
    assert_eq!(text, "跳到正文");
    assert!(href.ends_with("#main"), "{href}");
    b.screenshot("keyboard-skip-link").await;
    // Tab on, through the header and the page's controls, to the first county's link.
    let mut tabs = 1;
    while b.focused().await.1 != county {
        assert!(tabs < 60, "the county's link is not reached by Tab");
        b.press(TAB).await;
        tabs += 1;
    }
    b.screenshot("keyboard-focus-on-county").await;
    // Enter opens it.
    b.press(ENTER).await;
    for _ in 0..100 {
        if b.client.current_url().await.unwrap().as_str() == county {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(b.client.current_url().await.unwrap().as_str(), county);
    assert!(b.text("h1").await.ends_with(&key), "{key}");
}

#[tokio::test]
async fn an_auditor_signs_in_and_reads_findings_verify_and_the_access_log() {
    let s = start().await;
    let b = browser().await;
    let token = s.token(Role::Auditor, "3501", "aud-3501");
    b.client.goto(&format!("{}/signin", s.base)).await.unwrap();
    b.screenshot("signin").await;
    b.sign_in(&s, &token).await;
    assert_eq!(b.path().await, "/streams");
    b.screenshot("streams").await;
    // Findings: as many as the API finds, each linking to its events.
    b.click("nav a[href='/audit/findings']").await;
    b.screenshot("findings").await;
    let api = s.api_get(&token, "/v1/audit/findings").await;
    assert_eq!(
        b.attr("#count", "data-total").await,
        api["total"].to_string()
    );
    // Verify: run when its page is asked for; the log agrees with the views.
    b.click("nav a[href='/audit/verify']").await;
    b.screenshot("verify").await;
    assert_eq!(b.attr("#verify", "data-agrees").await, "true");
    // The access log: the API's entries.
    b.click("nav a[href='/audit/access']").await;
    b.screenshot("access-log").await;
    let api = s.api_get(&token, "/v1/access-log").await;
    assert_eq!(
        b.attr("#count", "data-total").await,
        api["total"].to_string()
    );
}
