ALTER TABLE memories ADD COLUMN reasoning TEXT;
