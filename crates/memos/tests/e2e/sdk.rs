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

#[test]
fn every_everyday_sdk_call_works_and_parses_into_the_sdks_models() {
    let Some(sdk) = sdk_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "e2e-sdk-key");
    let harness = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/sdk_harness.py");
    let out = Command::new("python3")
        .arg(&harness)
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
