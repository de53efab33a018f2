-- Tag filters from an index. A tag condition (the preference channel asks one on every
-- search) was an EXISTS over each row's JSON tags: a scan of every memory of the user,
-- half a second at 100k. memos_tags() is a row's tags lower-cased (tags compare
-- case-insensitively), and the GIN index over (scope, memos_tags(tags)) lets a condition
-- `memos_tags(m.tags) @> ARRAY[tag]` start from the few rows that carry the tag.
CREATE FUNCTION memos_tags(tags JSONB) RETURNS TEXT[] LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT coalesce(array_agg(lower(t)), '{}') FROM pg_catalog.jsonb_array_elements_text(tags) t $$;
CREATE INDEX memories_tags ON memories USING gin (project_id, user_id, memos_tags(tags));
-- The planner's estimate of how selective a tag is comes from the index expression's
-- statistics; without them it guesses and may walk the vector index instead.
ANALYZE memories;
