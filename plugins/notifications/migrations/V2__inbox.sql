-- In-app notifications of the tenant, one per event that people should
-- see, and who has read which.
CREATE TABLE notifications_inbox (
    id          TEXT PRIMARY KEY,
    event_id    TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    title       TEXT NOT NULL,
    body        TEXT NOT NULL,
    data        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX notifications_inbox_by_time ON notifications_inbox(created_at);

CREATE TABLE notifications_reads (
    notification_id TEXT NOT NULL REFERENCES notifications_inbox(id),
    user_id         TEXT NOT NULL,
    read_at         TEXT NOT NULL,
    PRIMARY KEY (notification_id, user_id)
);
