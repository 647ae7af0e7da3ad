//! Identifiers, parsed once: once a value is a [`TenantId`], it is valid
//! everywhere, and a tenant file path is only ever built from one.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random identifier.
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }

            /// Accepts only the canonical hyphenated lower-case UUID form,
            /// so one id has exactly one spelling (and one file name).
            pub fn parse(text: &str) -> Option<Self> {
                let uuid = Uuid::try_parse(text).ok()?;
                (uuid.hyphenated().to_string() == text).then_some(Self(uuid))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A tenant: one organization, one SQLite file.
    TenantId
);
uuid_id!(
    /// A person with a login; global across tenants.
    UserId
);
uuid_id!(
    /// A store (branch, till) inside a tenant.
    StoreId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_uuids_parse() {
        let id = TenantId::new();
        assert_eq!(TenantId::parse(&id.to_string()), Some(id));
        assert!(TenantId::parse(&id.to_string().to_uppercase()).is_none());
        assert!(TenantId::parse("../../etc/passwd").is_none());
        assert!(TenantId::parse("").is_none());
    }
}
