CREATE TABLE memos_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO memos_meta (key, value) VALUES ('revision', 0);
CREATE TABLE memories (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    memory_key TEXT NOT NULL,
    memory_value TEXT NOT NULL,
    memory_type TEXT NOT NULL,
    memory_time BIGINT,
    status TEXT NOT NULL,
    confidence REAL NOT NULL,
    tags JSONB NOT NULL,
    info JSONB NOT NULL,
    agent_id TEXT,
    app_id TEXT,
    sources JSONB NOT NULL,
    create_time BIGINT NOT NULL,
    update_time BIGINT NOT NULL
);
CREATE INDEX memories_scope ON memories (project_id, user_id, create_time DESC, seq DESC);
CREATE TABLE messages (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    message_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    role TEXT NOT NULL,
    name TEXT,
    content TEXT NOT NULL,
    chat_time BIGINT NOT NULL,
    create_time BIGINT NOT NULL,
    task_id TEXT NOT NULL
);
CREATE INDEX messages_conversation ON messages (project_id, user_id, conversation_id, chat_time);
CREATE INDEX messages_task ON messages (task_id);
CREATE TABLE tasks (
    seq BIGSERIAL,
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    status TEXT NOT NULL,
    payload JSONB NOT NULL,
    memory_ids JSONB NOT NULL,
    error TEXT,
    create_time BIGINT NOT NULL,
    update_time BIGINT NOT NULL
);
CREATE INDEX tasks_status ON tasks (status, create_time);
CREATE TABLE embeddings (
    memory_id TEXT NOT NULL,
    model TEXT NOT NULL,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    vector vector NOT NULL,
    PRIMARY KEY (memory_id, model)
);
CREATE INDEX embeddings_scope ON embeddings (project_id, user_id, model);
CREATE TABLE history (
    seq BIGSERIAL PRIMARY KEY,
    memory_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    time BIGINT NOT NULL,
    kind TEXT NOT NULL,
    related_id TEXT,
    before TEXT,
    note TEXT NOT NULL
);
CREATE INDEX history_memory ON history (memory_id);
CREATE TABLE api_keys (
    seq BIGSERIAL,
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    label TEXT NOT NULL,
    create_time BIGINT NOT NULL,
    revoked_time BIGINT
);
