-- The shared lexical index: each memory's terms as memos' own tokenizer computes them
-- (jieba for Chinese, stemming for English), so the database cannot tokenize
-- differently from the embedded store. A GIN index over (scope, terms) finds a user's
-- memories holding any query term; document frequencies and lengths for BM25 are kept
-- by statement triggers in the same transaction as the write.
CREATE EXTENSION IF NOT EXISTS btree_gin;
ALTER TABLE memories ADD COLUMN terms TEXT[];
CREATE INDEX memories_terms ON memories USING gin (project_id, user_id, terms);
CREATE TABLE memos_term_df (term TEXT PRIMARY KEY, df BIGINT NOT NULL);
INSERT INTO memos_meta (key, value) VALUES ('docs', 0), ('doc_terms', 0);
CREATE FUNCTION memos_terms_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO memos_term_df (term, df)
        SELECT t, count(*) FROM new_rows, LATERAL (SELECT DISTINCT unnest(new_rows.terms) AS t) x
        GROUP BY t
        ON CONFLICT (term) DO UPDATE SET df = memos_term_df.df + excluded.df;
    UPDATE memos_meta SET value = value + CASE key
        WHEN 'docs' THEN (SELECT count(*) FROM new_rows WHERE terms IS NOT NULL)
        ELSE (SELECT coalesce(sum(cardinality(terms)), 0) FROM new_rows) END
        WHERE key IN ('docs', 'doc_terms');
    RETURN NULL;
END $$;
CREATE FUNCTION memos_terms_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE memos_term_df d SET df = d.df - x.n
        FROM (SELECT t, count(*) AS n FROM old_rows,
              LATERAL (SELECT DISTINCT unnest(old_rows.terms) AS t) y GROUP BY t) x
        WHERE d.term = x.t;
    UPDATE memos_meta SET value = value - CASE key
        WHEN 'docs' THEN (SELECT count(*) FROM old_rows WHERE terms IS NOT NULL)
        ELSE (SELECT coalesce(sum(cardinality(terms)), 0) FROM old_rows) END
        WHERE key IN ('docs', 'doc_terms');
    RETURN NULL;
END $$;
CREATE FUNCTION memos_terms_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Only rows whose terms changed count; status changes and the like leave the stats be.
    UPDATE memos_term_df d SET df = d.df - x.n
        FROM (SELECT t, count(*) AS n FROM old_rows JOIN new_rows USING (seq),
              LATERAL (SELECT DISTINCT unnest(old_rows.terms) AS t) y
              WHERE old_rows.terms IS DISTINCT FROM new_rows.terms GROUP BY t) x
        WHERE d.term = x.t;
    INSERT INTO memos_term_df (term, df)
        SELECT t, count(*) FROM new_rows JOIN old_rows USING (seq),
        LATERAL (SELECT DISTINCT unnest(new_rows.terms) AS t) x
        WHERE old_rows.terms IS DISTINCT FROM new_rows.terms GROUP BY t
        ON CONFLICT (term) DO UPDATE SET df = memos_term_df.df + excluded.df;
    UPDATE memos_meta SET value = value + CASE key
        WHEN 'docs' THEN (SELECT count(*) FILTER (WHERE n.terms IS NOT NULL)
                                 - count(*) FILTER (WHERE o.terms IS NOT NULL)
                          FROM new_rows n JOIN old_rows o USING (seq))
        ELSE (SELECT coalesce(sum(cardinality(n.terms)), 0) - coalesce(sum(cardinality(o.terms)), 0)
              FROM new_rows n JOIN old_rows o USING (seq)) END
        WHERE key IN ('docs', 'doc_terms');
    RETURN NULL;
END $$;
CREATE TRIGGER memories_terms_insert AFTER INSERT ON memories
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION memos_terms_added();
CREATE TRIGGER memories_terms_delete AFTER DELETE ON memories
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION memos_terms_removed();
CREATE TRIGGER memories_terms_update AFTER UPDATE ON memories
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION memos_terms_changed();
