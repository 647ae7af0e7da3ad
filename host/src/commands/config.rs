//! `malipo config show`: the effective configuration, secrets redacted.
