//! The key table in PostgreSQL (the Kafka + PostgreSQL mode), on the real server the test
//! command starts: shared by every instance, wrapped at rest, erasure seen by all at once.

use assist_privacy::{DataKey, Kek, KeyState, KeyStore, PrivacyError};
use chrono::Utc;
use sqlx::Connection;

/// A fresh database on the test server, dropped when the guard goes.
struct Database {
    admin: String,
    name: String,
}

impl Database {
    async fn new() -> Database {
        let admin = std::env::var("ASSIST_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("assist_keys_{}", uuid::Uuid::new_v4().simple());
        let mut c = sqlx::PgConnection::connect(&admin)
            .await
            .expect("the test command starts PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await
            .unwrap();
        Database { admin, name }
    }

    fn url(&self) -> String {
        let base = self
            .admin
            .rsplit_once('/')
            .map(|(b, _)| b)
            .unwrap_or_default();
        format!("{base}/{}", self.name)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
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

/// Two instances' key stores on one database, with the same KEK file.
async fn two_instances(db: &Database) -> (tempfile::TempDir, KeyStore, KeyStore) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kek");
    Kek::create(&path).unwrap();
    let url = db.url();
    let a = KeyStore::open_postgres(&url, Kek::load(&path).unwrap());
    let b = KeyStore::open_postgres(&url, Kek::load(&path).unwrap());
    let (a, b) = tokio::join!(a, b);
    (dir, a.unwrap(), b.unwrap())
}

async fn sealing_key(s: &KeyStore, subject: &str) -> KeyState {
    s.keys_for_sealing(&[subject.to_string()], Utc::now())
        .await
        .unwrap()
        .remove(subject)
        .unwrap()
}

fn present(state: KeyState) -> DataKey {
    match state {
        KeyState::Present(k) => k,
        _ => panic!("no key"),
    }
}

#[tokio::test]
async fn a_key_made_through_one_instance_opens_through_another() {
    let db = Database::new().await;
    let (_dir, a, b) = two_instances(&db).await;
    let sealed = present(sealing_key(&a, "person-a").await).seal("name", "Lin Xiaomei");
    let key = present(b.key("person-a").await.unwrap());
    assert_eq!(key.open("name", &sealed).unwrap(), "Lin Xiaomei");
}

#[tokio::test]
async fn an_erasure_through_one_instance_is_seen_by_the_other_at_once() {
    let db = Database::new().await;
    let (_dir, a, b) = two_instances(&db).await;
    present(sealing_key(&a, "person-a").await);
    present(b.key("person-a").await.unwrap());
    assert!(a.erase("person-a", Utc::now()).await.unwrap());
    assert!(matches!(
        b.key("person-a").await.unwrap(),
        KeyState::Erased(_)
    ));
    assert!(matches!(
        sealing_key(&b, "person-a").await,
        KeyState::Erased(_)
    ));
    assert!(
        !b.erase("person-a", Utc::now()).await.unwrap(),
        "already erased"
    );
}

#[tokio::test]
async fn two_instances_making_the_same_keys_at_once_get_the_same_keys() {
    let db = Database::new().await;
    let (_dir, a, b) = two_instances(&db).await;
    let subjects: Vec<String> = (0..200).map(|i| format!("person-{i}")).collect();
    let (from_a, from_b) = tokio::join!(
        a.keys_for_sealing(&subjects, Utc::now()),
        b.keys_for_sealing(&subjects, Utc::now())
    );
    let (mut from_a, mut from_b) = (from_a.unwrap(), from_b.unwrap());
    for subject in &subjects {
        let sealed = present(from_a.remove(subject).unwrap()).seal("phone", "13800000000");
        let other = present(from_b.remove(subject).unwrap());
        assert_eq!(
            other.open("phone", &sealed).unwrap(),
            "13800000000",
            "{subject}"
        );
    }
}

#[tokio::test]
async fn no_key_survives_an_erasure_that_races_with_sealing() {
    let db = Database::new().await;
    let (_dir, a, b) = two_instances(&db).await;
    let mut c = sqlx::PgConnection::connect(&db.url()).await.unwrap();
    // Several rounds: without the erasure's lock a round leaves a key about one time in
    // three (tried), so eight rounds all but always catch it.
    for round in 0..8 {
        let subject = format!("person-raced-{round}");
        present(sealing_key(&a, &subject).await);
        // One instance keeps asking for the key to seal with while the other erases.
        let sealing = async {
            let mut erased_seen = false;
            for _ in 0..200 {
                let state = sealing_key(&b, &subject).await;
                let erased = matches!(state, KeyState::Erased(_));
                assert!(erased || !erased_seen, "a key came back after the erasure");
                erased_seen |= erased;
            }
            erased_seen
        };
        let erasing = async {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            a.erase(&subject, Utc::now()).await.unwrap()
        };
        let (erased_seen, erased) = tokio::join!(sealing, erasing);
        assert!(erased && erased_seen);
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM data_keys WHERE subject = $1")
            .bind(&subject)
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(
            left, 0,
            "round {round}: a key of the erased subject is stored"
        );
    }
}

#[tokio::test]
async fn the_database_holds_keys_only_wrapped_with_the_kek_id() {
    let db = Database::new().await;
    let (dir, a, _b) = two_instances(&db).await;
    let key = present(sealing_key(&a, "person-a").await);
    let sealed = key.seal("name", "Lin Xiaomei");
    let mut c = sqlx::PgConnection::connect(&db.url()).await.unwrap();
    let (stored, kek_id): (Vec<u8>, String) =
        sqlx::query_as("SELECT key, kek_id FROM data_keys WHERE subject = 'person-a'")
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_eq!(kek_id, a.kek_id().unwrap());
    assert_eq!(stored.len(), 12 + 32 + 16, "nonce, wrapped key, tag");
    // A KEK that is not the one they are wrapped with opens nothing.
    let other = Kek::create(&dir.path().join("other")).unwrap();
    let e = KeyStore::open_postgres(&db.url(), other)
        .await
        .err()
        .unwrap();
    assert!(matches!(e, PrivacyError::WrongKek { .. }), "{e}");
    // Rotated: the new KEK opens what was sealed before.
    let new = Kek::create(&dir.path().join("new")).unwrap();
    assert_eq!(a.rotate(&new).await.unwrap(), 1);
    let rotated = KeyStore::open_postgres(&db.url(), new).await.unwrap();
    let key = present(rotated.key("person-a").await.unwrap());
    assert_eq!(key.open("name", &sealed).unwrap(), "Lin Xiaomei");
}
