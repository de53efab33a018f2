-- Leases: which server's worker holds a running task, and until when.
ALTER TABLE tasks ADD COLUMN owner TEXT;
ALTER TABLE tasks ADD COLUMN lease_until BIGINT;
