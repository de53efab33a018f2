//! Starting and stopping the real binary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_memos");

/// A running `memos serve` on a free loopback port.
pub struct Server {
    child: Child,
    pub url: String,
    pub key: String,
    client: reqwest::Client,
}

impl Server {
    /// Starts the binary on `data_dir` with `MEMOS_API_KEY=key` and waits until it listens.
    pub fn start(data_dir: &Path, key: &str) -> Server {
        Self::start_with(data_dir, key, &[])
    }

    /// [`Self::start`] with more `serve` flags.
    pub fn start_with(data_dir: &Path, key: &str, flags: &[&str]) -> Server {
        Self::start_env(data_dir, key, flags, &[])
    }

    /// [`Self::start_with`] with more environment variables.
    pub fn start_env(data_dir: &Path, key: &str, flags: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(BIN)
            .args(["serve", "--port", "0", "--data-dir"])
            .arg(data_dir)
            .args(flags)
            .envs(env.iter().copied())
            .env("MEMOS_API_KEY", key)
            .env("MEMOS__EMBED__MODEL_DIR", e5_dir())
            .env("MEMOS_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start memos");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("memos listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("memos did not report its address");
        Server {
            child,
            url,
            key: key.to_string(),
            client: reqwest::Client::new(),
        }
    }

    /// The API base URL.
    pub fn base(&self) -> String {
        format!("{}/api/openmem/v1", self.url)
    }

    /// POSTs JSON with a key; returns status and body.
    pub async fn post_as(&self, key: &str, path: &str, body: Value) -> (u16, Value) {
        let resp = self
            .client
            .post(format!("{}/{path}", self.base()))
            .header("Authorization", format!("Token {key}"))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("json body"))
    }

    /// POSTs JSON with the server's key.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.post_as(&self.key.clone(), path, body).await
    }

    /// Adds messages synchronously; panics unless it succeeds.
    pub async fn add(&self, user: &str, conversation: &str, messages: Value) {
        let (s, v) = self
            .post("add/message", json!({"user_id": user, "conversation_id": conversation, "messages": messages, "async_mode": false}))
            .await;
        assert_eq!((s, v["code"].as_i64()), (200, Some(0)), "{v}");
    }

    /// GETs a path of the API with the server's key; returns status and body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .client
            .get(format!("{}/{path}", self.base()))
            .header("Authorization", format!("Token {}", self.key))
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("json body"))
    }

    /// Kills the process with SIGKILL: no shutdown code runs.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary with arguments and returns stdout; panics on failure.
pub fn memos(args: &[&str], data_dir: &Path) -> String {
    let out = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run memos");
    assert!(
        out.status.success(),
        "memos {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The default embedding model, fetched by scripts/fetch-models.sh (empty: BM25 only).
pub fn e5_dir() -> PathBuf {
    let models = std::env::var_os("MEMOS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"));
    let dir = models.join("multilingual-e5-small-q4");
    if dir.is_dir() {
        return dir;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must fetch the models first (scripts/fetch-models.sh)"
    );
    PathBuf::new()
}

/// `../shared` next to the repository, where the seed examples live.
pub fn shared_dir() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
    let dir = std::env::var_os("MEMOS_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("shared"));
    dir.join("seed").is_dir().then_some(dir)
}

/// The database URL in a schema of its own, or `None` outside CI without a server.
pub async fn pg_url(name: &str) -> Option<String> {
    let Some(url) = std::env::var("MEMOS_PG_URL").ok().filter(|u| !u.is_empty()) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must start PostgreSQL (scripts/start-postgres.sh) and set MEMOS_PG_URL"
        );
        return None;
    };
    let schema = format!("e2e_{name}_{}", std::process::id());
    let (admin, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    admin
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    Some(format!(
        "{url}{sep}options=-c%20search_path%3D{schema}%2Cpublic"
    ))
}
