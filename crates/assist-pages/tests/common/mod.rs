//! The test server the page tests share: `assist_http::serve_with` with the pages on
//! 127.0.0.1:0 over a fresh embedded data dir holding a simulated city (400 people, 90
//! days from 2026-01-05), its views caught up.

// Each test file uses a part of the harness.
#![allow(dead_code)]

use assist_catalog::RegionPrefix;
use assist_http::auth::{load_or_create_secret, Claims, Role, Signer, Verifier};
use assist_http::{App, Config, Views};
use assist_ingest::{IngestOptions, Recorder};
use assist_pages::{Pages, Ratings};
use assist_projections::sla::Rules;
use assist_projections::Store;
use std::sync::Arc;

/// The figures' time: the simulated 90 days end on 2026-04-05.
pub const AT: &str = "2026-03-20T12:00:00+08:00";

pub struct Server {
    pub base: String,
    pub app: Arc<App>,
    pub secret: Vec<u8>,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
}

pub async fn start() -> Server {
    start_rating_by(Ratings::shipped()).await
}

/// As [`start`], the dashboard rating by thresholds `ratings` (`serve --ratings FILE`).
pub async fn start_rating_by(ratings: Ratings) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::open_embedded(dir.path()).await.unwrap();
    let events = assist_simulate::simulate(400, 90, 7);
    recorder
        .ingest(
            assist_simulate::to_jsonl(&events).as_slice(),
            IngestOptions::default(),
        )
        .await
        .unwrap();
    let store = Store::open(&format!("sqlite:{}", dir.path().join("views.db").display()))
        .await
        .unwrap();
    let views = Views::new(recorder, store, Rules::shipped().unwrap(), 10_000);
    let secret = load_or_create_secret(dir.path()).unwrap();
    let app = Arc::new(App {
        views,
        verifier: Verifier::shared_secret(&secret),
        config: Config::default(),
        metrics: Default::default(),
    });
    app.views.catch_up().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    // Exports a few dozen rows at a time, so that a test's lists take many pages.
    let mut pages = Pages::new(ratings);
    pages.export_page_rows = 37;
    let pages = assist_pages::routes(pages);
    tokio::spawn(assist_http::serve_with(
        listener,
        app.clone(),
        pages,
        std::future::pending(),
    ));
    Server {
        base,
        app,
        secret,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        _dir: dir,
    }
}

impl Server {
    pub fn token(&self, role: Role, region: &str, sub: &str) -> String {
        let claims = Claims::new(
            sub,
            role,
            &RegionPrefix::new(region).unwrap(),
            chrono::Duration::hours(1),
        );
        Signer::shared_secret(&self.secret).sign(&claims).unwrap()
    }

    /// The API's answer for the same person.
    pub async fn api_get(&self, token: &str, path: &str) -> serde_json::Value {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::OK, "{path}");
        r.json().await.unwrap()
    }

    /// A form posted to `path` with cookie header `cookie` (if any), without following
    /// the redirect it answers with.
    pub async fn post_form(
        &self,
        cookie: Option<&str>,
        path: &str,
        body: &str,
    ) -> reqwest::Response {
        let mut r = self.client.post(format!("{}{path}", self.base)).header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        );
        if let Some(cookie) = cookie {
            r = r.header(reqwest::header::COOKIE, cookie);
        }
        r.body(body.to_string()).send().await.unwrap()
    }

    /// Field `field` of the first case of the city's caseload (`filter`: more of the
    /// query, such as `&region=350102`), as a city supervisor reads it.
    pub async fn first_case(&self, filter: &str, field: &str) -> String {
        let city = self.token(Role::Supervisor, "3501", "sup-3501");
        self.api_get(&city, &format!("/v1/caseload?limit=1{filter}"))
            .await["cases"][0][field]
            .as_str()
            .unwrap()
            .to_string()
    }
}
