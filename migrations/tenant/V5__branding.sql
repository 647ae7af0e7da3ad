-- The organization's branding, owned by the host and readable by plugins
-- that declare it (the notifications plugin renders email with it). One row
-- at most (`id` is always 1); absent until someone sets it.
CREATE TABLE branding (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    display_name     TEXT,
    logo_url         TEXT,
    primary_colour   TEXT,                  -- #RRGGBB
    secondary_colour TEXT,                  -- #RRGGBB
    contact_email    TEXT,                  -- where the organization's own notifications go
    updated_at       TEXT NOT NULL,
    updated_by       TEXT
);
