-- Lookups the audit reader and the store-access check make on every request.
CREATE INDEX audit_log_by_at ON audit_log(at);
CREATE INDEX store_members_by_user ON store_members(user_id);
