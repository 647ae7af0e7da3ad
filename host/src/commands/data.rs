//! `malipo tenant export|import`, `malipo backup`, `malipo restore`: moving a tenant's data and the whole data directory in and out.
