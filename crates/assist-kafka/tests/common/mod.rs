//! What the Kafka backend's tests share: a PostgreSQL database for the shared log.

use sqlx::Connection;

/// The URL of a database on the test server, made empty once per test process under
/// `name` (each test binary names its own); tests keep apart by their topics.
pub async fn postgres(name: &'static str) -> String {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        // Made on a thread of its own: the first test to ask may run on any runtime.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(make(name))
        })
        .join()
        .unwrap()
    })
    .clone()
}

async fn make(name: &str) -> String {
    let admin = std::env::var("ASSIST_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut c = sqlx::PgConnection::connect(&admin)
        .await
        .expect("the test command starts PostgreSQL");
    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    sqlx::query(&drop).execute(&mut c).await.unwrap();
    let create = format!("CREATE DATABASE {name}");
    sqlx::query(&create).execute(&mut c).await.unwrap();
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or_default();
    format!("{base}/{name}")
}
