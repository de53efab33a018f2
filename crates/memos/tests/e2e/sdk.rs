//! The official MemOS Python SDK (`MemOSClient`, PyPI `MemoryOS` 2.0.33, fetched and pinned
//! by `scripts/fetch-sdk.sh`) driven against the real binary, method by method
//! (`sdk_harness.py`): every typed answer parsed by the SDK's own pydantic models, every
//! effect checked on the server.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::Server;

/// The SDK's client files: `$MEMOS_SDK_DIR`, else `./sdk` at the repository root.
fn sdk_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("MEMOS_SDK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk"));
    if dir.join("memos/api/client.py").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must fetch the SDK (scripts/fetch-sdk.sh, run by scripts/test.sh)"
    );
    eprintln!("skipping: run scripts/fetch-sdk.sh to fetch the MemOS SDK");
    None
}

/// Tokens of the scripted model's answer, streamed 150 ms apart.
const TOKENS: [&str; 5] = ["You", " like", " jazz", " and", " Lisbon."];

/// A scripted OpenAI-compatible model on a real socket, for `chat`: the whole answer at
/// once, or streamed slowly so the SDK sees the first tokens well before the last.
fn scripted_model() -> String {
    use axum::Json;
    use axum::response::IntoResponse;
    use serde_json::{Value, json};

    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = axum::Router::new().route(
                "/v1/chat/completions",
                axum::routing::post(|Json(body): Json<Value>| async move {
                    if body["stream"] != true {
                        return Json(json!({"choices": [{"message": {"role": "assistant", "content": TOKENS.concat()}}]}))
                            .into_response();
                    }
                    let frames = futures_util::stream::unfold(0usize, |i| async move {
                        let frame = match i {
                            0..5 => {
                                tokio::time::sleep(std::time::Duration::from_millis(150)).await;
                                format!(
                                    "data: {}\n\n",
                                    json!({"choices": [{"index": 0, "delta": {"content": TOKENS[i]}}]})
                                )
                            }
                            5 => "data: [DONE]\n\n".to_string(),
                            _ => return None,
                        };
                        Some((Ok::<_, std::convert::Infallible>(frame), i + 1))
                    });
                    axum::response::Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(axum::body::Body::from_stream(frames))
                        .unwrap()
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(format!("http://{}/v1", listener.local_addr().unwrap()))
                .unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

#[test]
fn every_everyday_sdk_call_works_and_parses_into_the_sdks_models() {
    let Some(sdk) = sdk_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let model = scripted_model();
    // The model answers `chat` only: adds stay on the fast path (`llm.refine = false`).
    let server = Server::start_env(
        dir.path(),
        "e2e-sdk-key",
        &[],
        &[
            ("MEMOS__LLM__BASE_URL", &model),
            ("MEMOS__LLM__MODEL", "scripted"),
            ("MEMOS__LLM__REFINE", "false"),
        ],
    );
    let harness = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/sdk_harness.py");
    // Files for the knowledge-base rows, written here so no binary fixture is committed.
    let files = tempfile::tempdir().unwrap();
    use memos_core::knowledge::fixtures;
    std::fs::write(
        files.path().join("policy.pdf"),
        fixtures::pdf(&[
            &["Software procurement policy."],
            &["The design software limit is 1000 yuan per seat."],
        ]),
    )
    .unwrap();
    std::fs::write(
        files.path().join("travel.docx"),
        fixtures::docx(&[
            (Some("Heading1"), "Trains"),
            (
                None,
                "Employees travel second class on trains under four hours.",
            ),
        ]),
    )
    .unwrap();
    let out = Command::new("python3")
        .arg(&harness)
        .env("MEMOS_FIXTURES", files.path())
        .env("MEMOS_SDK_DIR", &sdk)
        .env("MEMOS_BASE_URL", server.base())
        .env("MEMOS_API_KEY", &server.key)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // One line per SDK call: the CI log shows which work.
    println!("{stdout}");
    assert!(
        out.status.success(),
        "SDK rows failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.lines().count() >= 13, "every row ran: {stdout}");
}
