-- The schema as the first release wrote it (version 1). Written with IF NOT EXISTS so
-- that it runs on every open: a new file and an old one take the same path.
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('revision', 0), ('schema_version', 1);
CREATE TABLE IF NOT EXISTS memories (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    memory_key TEXT NOT NULL,
    memory_value TEXT NOT NULL,
    memory_type TEXT NOT NULL,
    memory_time INTEGER,
    status TEXT NOT NULL,
    confidence REAL NOT NULL,
    tags TEXT NOT NULL,
    info TEXT NOT NULL,
    agent_id TEXT,
    app_id TEXT,
    sources TEXT NOT NULL,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS memories_scope ON memories (project_id, user_id, create_time);
CREATE INDEX IF NOT EXISTS memories_conversation ON memories (project_id, user_id, conversation_id, create_time);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    message_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    role TEXT NOT NULL,
    name TEXT,
    content TEXT NOT NULL,
    chat_time INTEGER NOT NULL,
    create_time INTEGER NOT NULL,
    task_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_conversation ON messages (project_id, user_id, conversation_id, chat_time);
CREATE INDEX IF NOT EXISTS messages_task ON messages (task_id);
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    status TEXT NOT NULL,
    payload TEXT NOT NULL,
    memory_ids TEXT NOT NULL,
    error TEXT,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks (status, create_time);
CREATE INDEX IF NOT EXISTS tasks_scope ON tasks (project_id, user_id);
CREATE TABLE IF NOT EXISTS embeddings (
    memory_id TEXT NOT NULL,
    model TEXT NOT NULL,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (memory_id, model)
);
CREATE INDEX IF NOT EXISTS embeddings_scope ON embeddings (project_id, user_id, model);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    memory_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    time INTEGER NOT NULL,
    kind TEXT NOT NULL,
    related_id TEXT,
    before TEXT,
    note TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_memory ON history (memory_id);
CREATE INDEX IF NOT EXISTS history_scope ON history (project_id, user_id);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    label TEXT NOT NULL,
    create_time INTEGER NOT NULL,
    revoked_time INTEGER
);
