-- Small JSON documents beside the memories: profile templates (user_id '') and the profile
-- instances bound to a subject. Erased with their user.
CREATE TABLE IF NOT EXISTS docs (
    kind TEXT NOT NULL,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    PRIMARY KEY (kind, project_id, user_id, id)
);
CREATE INDEX IF NOT EXISTS docs_user ON docs (project_id, user_id);
