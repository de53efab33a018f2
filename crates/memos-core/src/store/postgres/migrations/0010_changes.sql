-- Which memories changed at which revision, so a server's copy of a user's search data
-- (the terms and vectors it searches in RAM, `mirror.rs`) catches up with one indexed read
-- of the rows written since its last look, whichever server wrote them. Every writer takes
-- the revision row first and holds it to commit, so revisions commit in order: a reader
-- that sees revision R sees every change logged at R or before. Statement triggers log
-- every insert, update and delete of memories and vectors in the writer's transaction.
-- Old entries are pruned (`changes_floor`: revisions at or below it may be gone, and a
-- copy older than that loads again whole).
CREATE TABLE memos_changes (
    revision BIGINT NOT NULL,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    memory_id TEXT NOT NULL
);
CREATE INDEX memos_changes_user ON memos_changes (project_id, user_id, revision);
CREATE INDEX memos_changes_revision ON memos_changes (revision);
INSERT INTO memos_meta (key, value) VALUES ('changes_floor', 0);
CREATE FUNCTION memos_memories_logged() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    rev BIGINT := (SELECT value FROM memos_meta WHERE key = 'revision');
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO memos_changes SELECT rev, project_id, user_id, id FROM old_rows;
    ELSE
        INSERT INTO memos_changes SELECT rev, project_id, user_id, id FROM new_rows;
    END IF;
    RETURN NULL;
END $$;
CREATE FUNCTION memos_embeddings_logged() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    rev BIGINT := (SELECT value FROM memos_meta WHERE key = 'revision');
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO memos_changes SELECT rev, project_id, user_id, memory_id FROM old_rows;
    ELSE
        INSERT INTO memos_changes SELECT rev, project_id, user_id, memory_id FROM new_rows;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER memories_logged_insert AFTER INSERT ON memories
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION memos_memories_logged();
CREATE TRIGGER memories_logged_update AFTER UPDATE ON memories
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION memos_memories_logged();
CREATE TRIGGER memories_logged_delete AFTER DELETE ON memories
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION memos_memories_logged();
CREATE TRIGGER embeddings_logged_insert AFTER INSERT ON embeddings
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION memos_embeddings_logged();
CREATE TRIGGER embeddings_logged_update AFTER UPDATE ON embeddings
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION memos_embeddings_logged();
CREATE TRIGGER embeddings_logged_delete AFTER DELETE ON embeddings
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION memos_embeddings_logged();
