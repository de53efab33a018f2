//! The benchmark commands run (on a small slice) and print their figures.

use std::process::Command;

use crate::common::{BIN, e5_dir, shared_dir};

#[test]
fn bench_retrieval_runs_on_a_slice_of_locomo() {
    let Some(shared) = shared_dir() else { return };
    let out = Command::new(BIN)
        .args([
            "bench",
            "retrieval",
            "--cases",
            "1",
            "--questions",
            "12",
            "--data",
        ])
        .arg(shared.join("bench/locomo.jsonl"))
        .arg("--model-dir")
        .arg(e5_dir())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("== bm25"), "{text}");
    assert!(text.contains("session/all"), "{text}");
    assert!(text.contains("search latency ms"), "{text}");
    if !e5_dir().as_os_str().is_empty() {
        assert!(text.contains("== hybrid"), "{text}");
    }
}
