//! Authentication: password hashing, access tokens, opaque secrets, and the
//! resolution of a request's credential into a checked [`Principal`].

pub mod jwt;
pub mod password;
pub mod principal;
pub mod token;

pub use principal::{Credential, Principal};
