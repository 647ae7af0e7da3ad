-- The audit log becomes a hash chain: every row carries `seq` (1, 2, 3, ...
-- with no gap), the previous row's hash and its own hash, SHA-256 over a
-- canonical encoding of its fields and the previous hash (see
-- host/src/audit/chain.rs). The host writes them; nothing else may.
ALTER TABLE audit_log ADD COLUMN seq INTEGER;
ALTER TABLE audit_log ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_log ADD COLUMN hash TEXT;
CREATE UNIQUE INDEX audit_log_by_seq ON audit_log(seq);

-- SQL has no SHA-256, so rows written before this migration are chained, in
-- id order, by the host's first append or verification after it. This
-- marks how far those rows go; the marker is removed once they are chained
-- (a row without a `seq` appearing later is then reported, not chained).
INSERT OR REPLACE INTO host_meta (key, value)
SELECT 'audit_legacy_through', CAST(last_id AS TEXT)
FROM (SELECT MAX(id) AS last_id FROM audit_log)
WHERE last_id IS NOT NULL;
