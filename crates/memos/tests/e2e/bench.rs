//! The benchmark commands run (on a small slice) and print their figures.

use crate::common::{BIN, e5_dir, memos, shared_dir};

/// Runs `memos bench ...` (each bench keeps its data in temporary directories of its own)
/// and returns what it printed.
fn bench(args: &[&str]) -> String {
    let scratch = tempfile::tempdir().unwrap();
    memos(args, scratch.path())
}

#[test]
fn bench_retrieval_runs_on_a_slice_of_locomo() {
    let Some(shared) = shared_dir() else { return };
    let data = shared.join("bench/locomo.jsonl");
    let model = e5_dir();
    let text = bench(&[
        "bench",
        "retrieval",
        "--cases",
        "1",
        "--questions",
        "12",
        "--data",
        data.to_str().unwrap(),
        "--model-dir",
        model.to_str().unwrap(),
    ]);
    assert!(text.contains("== bm25"), "{text}");
    assert!(text.contains("session/all"), "{text}");
    assert!(text.contains("search latency ms"), "{text}");
    if !model.as_os_str().is_empty() {
        assert!(text.contains("== hybrid"), "{text}");
    }
}

#[test]
fn bench_load_runs_small() {
    let model = e5_or_none();
    let text = bench(&[
        "bench",
        "load",
        "--memories",
        "300",
        "--user-size",
        "100",
        "--big-user",
        "100",
        "--seconds",
        "2",
        "--clients",
        "2",
        "--model-dir",
        model.to_str().unwrap(),
    ]);
    for figure in [
        "search, user of 100: p50",
        "search, users of 100: p50",
        "add (10 messages, sync): p50",
        "messages/s",
        "server RSS: peak",
    ] {
        assert!(text.contains(figure), "no {figure:?} in\n{text}");
    }
}

#[test]
fn bench_cache_stays_within_its_budget() {
    let model = e5_dir();
    if model.as_os_str().is_empty() {
        eprintln!("skipping: no embedding model");
        return;
    }
    let text = bench(&[
        "bench",
        "cache",
        "--users",
        "60",
        "--user-size",
        "40",
        "--cache-mb",
        "16",
        "--rounds",
        "1",
        "--model-dir",
        model.to_str().unwrap(),
    ]);
    assert!(text.contains("RSS"), "{text}");
    assert!(text.contains("of a 16 MiB budget (within)"), "{text}");
}

#[test]
fn bench_embed_runs() {
    let model = e5_dir();
    if model.as_os_str().is_empty() {
        return;
    }
    let text = bench(&[
        "bench",
        "embed",
        "--queries",
        "5",
        "--documents",
        "8",
        "--model-dir",
        model.to_str().unwrap(),
    ]);
    // Both precisions, alternated, each with its figures; int8 names the kernel it ran on.
    assert!(text.contains("query embedding, f32: p50"), "{text}");
    assert!(text.contains("query embedding, int8 ("), "{text}");
    assert!(text.contains("document embedding, f32:"), "{text}");
    assert!(text.contains("document embedding, int8 ("), "{text}");
    assert!(text.contains("memories/s"), "{text}");
}

#[tokio::test]
async fn bench_extract_scores_the_fast_path_and_an_llm() {
    use axum::routing::post;
    use serde_json::json;
    // An OpenAI-compatible stand-in that finds nothing: the bench must still run and count.
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(|| async {
            axum::Json(json!({
                "choices": [{"message": {"role": "assistant", "content": "{\"memories\": []}"}}],
                "usage": {"prompt_tokens": 50, "completion_tokens": 5}
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let out = tokio::process::Command::new(BIN)
        .args(["bench", "extract", "--llm-url", &url])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("heldout/all"), "{text}");
    assert!(text.contains("tokens per 100 messages"), "{text}");
    assert!(text.contains("27 calls"), "{text}");
}

/// The e5 directory, or `none` (BM25 only) when the models were not fetched.
fn e5_or_none() -> std::path::PathBuf {
    let d = e5_dir();
    if d.as_os_str().is_empty() {
        "none".into()
    } else {
        d
    }
}
