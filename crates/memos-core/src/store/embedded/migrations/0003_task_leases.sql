-- Task leases, so a restarted or second server takes over a stopped one's tasks.
ALTER TABLE tasks ADD COLUMN owner TEXT;
ALTER TABLE tasks ADD COLUMN lease_until INTEGER;
