//! What the tests of the `assist` binary share: running it, speaking HTTP to it, and a
//! throw-away PostgreSQL database.
#![allow(dead_code)] // each test binary uses some of these

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The `assist` binary on `data_dir`, with China time as the default zone.
pub fn assist(data_dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_assist"));
    c.arg("--data-dir").arg(data_dir).env_remove("ASSIST_TZ");
    c
}

/// One HTTP/1.1 request; the whole answer as text.
pub fn request(addr: &str, method: &str, path: &str, token: Option<&str>) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Starts `assist serve` on a free port of `dir` with more arguments; its address.
pub fn spawn_serve_with(dir: &Path, more: &[&str]) -> (std::process::Child, String) {
    spawn_serve_command(assist(dir), more)
}

/// Starts `command` (`assist` with its global options) as `serve` on a free port with
/// more arguments; the process and its address, once it listens.
pub fn spawn_serve_command(mut command: Command, more: &[&str]) -> (std::process::Child, String) {
    let mut server = command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(more)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim()
        .trim_start_matches("listening on http://")
        .to_string();
    (server, addr)
}

/// One POST of `body` (JSON); the whole answer, or the error of a connection cut short.
pub fn post_json(addr: &str, path: &str, token: &str, body: &str) -> std::io::Result<String> {
    post(addr, path, token, "application/json", body)
}

/// One POST of `body` as `content_type`; the whole answer, or the error of a connection
/// cut short.
pub fn post(
    addr: &str,
    path: &str,
    token: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// A fresh database on the PostgreSQL the test command provides; its URL and a guard that
/// drops it.
pub fn fresh_postgres() -> (String, impl Drop) {
    use sqlx::Connection;
    let admin = std::env::var("ASSIST_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("assist_serve_{}", uuid::Uuid::new_v4().simple());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = sqlx::PgConnection::connect(&admin)
            .await
            .expect("the test command starts PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await
            .unwrap();
    });
    let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
    struct Dropped(String, String);
    impl Drop for Dropped {
        fn drop(&mut self) {
            let (admin, name) = (self.0.clone(), self.1.clone());
            if let Ok(rt) = tokio::runtime::Runtime::new() {
                rt.block_on(async {
                    use sqlx::Connection;
                    if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&mut c)
                                .await;
                    }
                });
            }
        }
    }
    (url, Dropped(admin, name))
}

/// The body of an HTTP answer as JSON.
pub fn body_json(answer: &str) -> serde_json::Value {
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

/// A child process killed (SIGKILL) and reaped when dropped, so that a failing test leaves
/// no server behind.
pub struct Running(pub std::process::Child);

impl Running {
    /// Kills it now with SIGKILL, as an operator's `kill -9` would, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}
