//! Authentication: password hashing, access tokens, opaque secrets, and the
//! resolution of a request's credential into a checked [`Principal`].

pub mod principal;

pub use principal::{Credential, Principal};
