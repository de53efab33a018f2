-- A write-order cursor over vectors, for `memos migrate`.
ALTER TABLE embeddings ADD COLUMN seq BIGSERIAL;
CREATE INDEX embeddings_seq ON embeddings (seq);
