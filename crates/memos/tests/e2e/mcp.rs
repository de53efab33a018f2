//! The MCP server (issue 15) driven by a client nobody here wrote: the official MCP
//! TypeScript SDK (`@modelcontextprotocol/sdk`, pinned with its lockfile in `mcp/`;
//! `scripts/fetch-mcp-sdk.sh` installs it), over streamable HTTP at `/mcp` and over stdio
//! (`memos mcp`, both against a running server and on a data directory of its own). Each
//! lists the tools, adds, searches, reads one memory with its history, updates, deletes, and
//! sees an argument error and an API refusal come back as tool errors; a wrong key is
//! refused at the door.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::{BIN, Server, e5_dir};

const TOOLS: [&str; 9] = [
    "add_feedback",
    "add_memory",
    "delete_memories",
    "get_memory",
    "get_profile",
    "list_memories",
    "search_knowledge_bases",
    "search_memories",
    "update_memory",
];

/// The client's directory, when its packages are installed.
fn client_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/mcp");
    if dir.join("node_modules/@modelcontextprotocol/sdk").is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must install the MCP SDK (scripts/fetch-mcp-sdk.sh, run by scripts/test.sh)"
    );
    eprintln!("skipping: run scripts/fetch-mcp-sdk.sh to install the MCP TypeScript SDK");
    None
}

/// Runs `node client.mjs args...`; returns its one JSON line, or panics with what it said.
fn client(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Value {
    let out = Command::new("node")
        .arg(dir.join("client.mjs"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .expect("run node");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the MCP client failed ({args:?}):\n{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(said.trim().lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("not one JSON line ({e}): {said}"))
}

fn check_scenario(seen: &Value) {
    let tools: Vec<&str> = seen["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(tools, TOOLS);
    assert!(seen["added"].as_u64().unwrap() >= 1, "{seen}");
    let arg_error = seen["argument_error"].as_str().unwrap();
    assert!(
        arg_error.contains("qeury"),
        "names the bad field: {arg_error}"
    );
    let api_error = seen["api_error"].as_str().unwrap();
    assert!(api_error.contains("code 4"), "the API's code: {api_error}");
}

#[test]
fn the_official_mcp_sdk_uses_memos_over_http_and_stdio() {
    let Some(dir) = client_dir() else { return };
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), "mcp-test-key");
    let mcp_url = format!("{}/mcp", server.url);

    // Streamable HTTP on the server itself.
    check_scenario(&client(
        &dir,
        &["http", &mcp_url, "mcp-test-key", "alice"],
        &[],
    ));
    let refused = client(&dir, &["refused-http", &mcp_url, "wrong-key"], &[]);
    assert!(
        refused["refused"].as_str().unwrap().contains("401"),
        "{refused}"
    );

    // stdio, calling the running server: another user, so nothing of alice's helps.
    let url_flag = ["--url", &server.url];
    let stdio = |key: &str, user: Option<&str>| {
        let mut args = vec![
            if user.is_some() {
                "stdio"
            } else {
                "refused-stdio"
            },
            key,
        ];
        args.extend(user);
        args.extend([BIN, "mcp"]);
        args.extend(url_flag);
        client(&dir, &args, &[("MEMOS_LOG", "warn")])
    };
    check_scenario(&stdio("mcp-test-key", Some("bob")));
    let refused = stdio("wrong-key", None);
    assert!(refused["refused"].is_string(), "{refused}");
    // The server saw the stdio tools' calls as API calls with the same key.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_, users) = rt.block_on(server.post("get/users", serde_json::json!({})));
    let users = users.to_string();
    assert!(users.contains("alice") && users.contains("bob"), "{users}");
    server.kill();

    // stdio on a data directory of its own (no server holds it), MEMOS_API_KEY seeded as
    // `memos serve` seeds it.
    let own = tempfile::tempdir().unwrap();
    let own_dir = own.path().to_str().unwrap();
    let e5 = e5_dir();
    let env = [
        ("MEMOS_LOG", "warn"),
        ("MEMOS__EMBED__MODEL_DIR", e5.to_str().unwrap()),
    ];
    let seen = client(
        &dir,
        &[
            "stdio",
            "own-test-key",
            "carol",
            BIN,
            "mcp",
            "--data-dir",
            own_dir,
        ],
        &env,
    );
    check_scenario(&seen);
}
