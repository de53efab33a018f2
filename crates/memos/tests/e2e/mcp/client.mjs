// The official MCP TypeScript SDK (@modelcontextprotocol/sdk, pinned in package-lock.json)
// as a client of memos. Driven by crates/memos/tests/e2e/mcp.rs:
//
//   node client.mjs http <url of /mcp> <key> <user>
//   node client.mjs stdio <key> <user> <command> [args...]
//   node client.mjs refused-http <url of /mcp> <key>
//   node client.mjs refused-stdio <key> <command> [args...]
//
// The two first run the same scenario (list the tools, add, search, update, get with its
// history, list, delete,
// an argument error, an API refusal) and print one JSON line of what they saw; every
// assertion failure exits non-zero with its message. The refused-* modes expect the
// connection itself to fail for a wrong key.
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const [mode, ...rest] = process.argv.slice(2);

function httpTransport(url, key) {
  return new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Token ${key}` } },
  });
}

function stdioTransport(key, command, args) {
  return new StdioClientTransport({
    command,
    args,
    env: { ...process.env, MEMOS_API_KEY: key },
    stderr: "inherit",
  });
}

async function connect(transport) {
  const client = new Client({ name: "memos-e2e", version: "1.0.0" });
  await client.connect(transport);
  return client;
}

/// Calls a tool; returns [isError, text, parsed JSON or null].
async function call(client, name, args) {
  const res = await client.callTool({ name, arguments: args });
  const text = res.content.map((c) => c.text ?? "").join("");
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return [Boolean(res.isError), text, json];
}

async function scenario(client, user) {
  const seen = {};
  const { tools } = await client.listTools();
  seen.tools = tools.map((t) => t.name).sort();
  for (const t of tools) {
    assert.equal(t.inputSchema.type, "object", `${t.name}: schema type`);
    assert.ok(t.description && t.description.length > 20, `${t.name}: a description`);
  }

  let [err, text, data] = await call(client, "add_memory", {
    user_id: user,
    conversation_id: "c1",
    messages: [
      { role: "user", content: "I live in Lisbon with my two cats, Miso and Tofu." },
      { role: "assistant", content: "Lovely, Lisbon is a beautiful city." },
      { role: "user", content: "I work night shifts as a nurse at the Santa Maria hospital." },
    ],
  });
  assert.equal(err, false, `add_memory failed: ${text}`);
  assert.ok(data.memory_ids.length >= 1, `add_memory gave ids: ${text}`);
  seen.added = data.memory_ids.length;

  [err, text, data] = await call(client, "search_memories", {
    user_id: user,
    query: "Where does the user live?",
  });
  assert.equal(err, false, `search_memories failed: ${text}`);
  const hit = data.memory_detail_list.find((m) => m.memory_value.includes("Lisbon"));
  assert.ok(hit, `search found Lisbon: ${text}`);
  seen.search_hits = data.memory_detail_list.length;

  [err, text] = await call(client, "update_memory", {
    memory_id: hit.id,
    memory_value: "The user lives in Porto with two cats.",
  });
  assert.equal(err, false, `update_memory failed: ${text}`);
  [err, text, data] = await call(client, "search_memories", { user_id: user, query: "Porto" });
  assert.ok(
    data.memory_detail_list.some((m) => m.id === hit.id && m.memory_value.includes("Porto")),
    `the update is searchable: ${text}`,
  );
  [err, text, data] = await call(client, "get_memory", { memory_id: hit.id });
  assert.equal(err, false, `get_memory failed: ${text}`);
  assert.equal(data.memory.id, hit.id);
  assert.ok(data.history.length >= 1, `the update is in its history: ${text}`);

  [err, text, data] = await call(client, "list_memories", { user_id: user, size: 50 });
  assert.equal(err, false, `list_memories failed: ${text}`);
  seen.listed = data.memory_detail_list.length;

  [err, text] = await call(client, "delete_memories", { memory_ids: [hit.id] });
  assert.equal(err, false, `delete_memories failed: ${text}`);
  [err, text, data] = await call(client, "search_memories", {
    user_id: user,
    query: "Where does the user live? Porto Lisbon",
  });
  assert.ok(!data.memory_detail_list.some((m) => m.id === hit.id), `deleted, gone: ${text}`);

  [err, text] = await call(client, "get_profile", { user_id: user });
  assert.equal(err, false, `get_profile failed: ${text}`);

  // Arguments outside the schema: a tool error naming the field, not a crash.
  [err, text] = await call(client, "search_memories", { user_id: user, qeury: "typo" });
  assert.equal(err, true, "a misspelt field is refused");
  seen.argument_error = text;
  // The API's refusal comes back as the tool's error, with its code.
  [err, text] = await call(client, "get_memory", { memory_id: "no-such-memory" });
  assert.equal(err, true, "an unknown memory is an error");
  seen.api_error = text;
  return seen;
}

async function expectRefused(transport) {
  try {
    const client = await connect(transport);
    await client.listTools();
  } catch (e) {
    console.log(JSON.stringify({ refused: String(e.message ?? e) }));
    return;
  }
  throw new Error("a wrong key was let in");
}

try {
  if (mode === "http") {
    const [url, key, user] = rest;
    const client = await connect(httpTransport(url, key));
    console.log(JSON.stringify(await scenario(client, user)));
    await client.close();
  } else if (mode === "stdio") {
    const [key, user, command, ...args] = rest;
    const client = await connect(stdioTransport(key, command, args));
    console.log(JSON.stringify(await scenario(client, user)));
    await client.close();
  } else if (mode === "refused-http") {
    const [url, key] = rest;
    await expectRefused(httpTransport(url, key));
  } else if (mode === "refused-stdio") {
    const [key, command, ...args] = rest;
    await expectRefused(stdioTransport(key, command, args));
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
} catch (e) {
  console.error(e.stack ?? String(e));
  process.exit(1);
}
