-- The LLM's reasoning behind an inferred memory.
ALTER TABLE memories ADD COLUMN reasoning TEXT;
