//! The caller of an operation, as filled in by the host from the credential.

/// Who is calling, for which tenant and store; a plain copy of the
/// generated `call-context` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub tenant_id: String,
    /// Absent for system calls (migrations, jobs, host-internal calls).
    pub user_id: Option<String>,
    /// The store named by `X-Store-ID`, already checked by the host.
    pub store_id: Option<String>,
    pub request_id: String,
    pub channel: String,
    /// Milliseconds since the Unix epoch, from the host clock.
    pub now_ms: u64,
    /// The stores the caller may see and act in; `None`: every store.
    /// Computed by the host from the caller's store assignments.
    pub allowed_stores: Option<Vec<String>>,
}

impl Context {
    /// The current host time as an RFC 3339 UTC timestamp.
    pub fn now(&self) -> String {
        crate::time::rfc3339(self.now_ms)
    }

    /// True for calls the host makes on its own behalf (no user).
    pub fn is_system(&self) -> bool {
        self.user_id.is_none()
    }

    /// The stores the caller is confined to: the `X-Store-ID` store if one
    /// was named, else the host's `allowed_stores`. `None`: no confinement.
    pub fn store_scope(&self) -> Option<Vec<String>> {
        match (&self.store_id, &self.allowed_stores) {
            (Some(store), _) => Some(vec![store.clone()]),
            (None, Some(list)) => Some(list.clone()),
            (None, None) => None,
        }
    }

    /// May the caller see or act on an object of `store`? With
    /// `X-Store-ID`, only that store's objects; otherwise objects of the
    /// caller's stores and objects of no store (`None`: the tenant's own),
    /// never another store's.
    pub fn may_see_store(&self, store: Option<&str>) -> bool {
        match (&self.store_id, &self.allowed_stores) {
            (Some(mine), _) => store == Some(mine.as_str()),
            (None, None) => true,
            (None, Some(list)) => store.is_none_or(|s| list.iter().any(|a| a == s)),
        }
    }

    /// A SQL condition confining `column` (or a SQL expression) to what
    /// [`Self::may_see_store`] allows, with its parameters appended to
    /// `params` (numbered `?n` after those already there); `None` when the
    /// caller is not confined.
    pub fn store_condition(&self, column: &str, params: &mut Vec<crate::Sql>) -> Option<String> {
        let (list, with_unassigned) = match (&self.store_id, &self.allowed_stores) {
            (Some(mine), _) => (vec![mine.clone()], false),
            (None, Some(list)) => (list.clone(), true),
            (None, None) => return None,
        };
        let mut marks = Vec::with_capacity(list.len());
        for store in list {
            params.push(crate::Sql::Text(store));
            marks.push(format!("?{}", params.len()));
        }
        let within = if marks.is_empty() {
            "0".to_owned()
        } else {
            format!("{column} IN ({})", marks.join(", "))
        };
        Some(if with_unassigned {
            format!("({column} IS NULL OR {within})")
        } else {
            within
        })
    }

    /// Refuses a `store_id` from the input that names a store outside the
    /// caller's scope (`forbidden`, naming the stores they may use).
    pub fn check_store(&self, wanted: &str) -> crate::Result<()> {
        match self.store_scope() {
            Some(list) if !list.iter().any(|s| s == wanted) => {
                Err(crate::Error::forbidden(format!(
                    "`store_id` names a store you may not use; you may use: {}.",
                    if list.is_empty() {
                        "no store".to_owned()
                    } else {
                        list.join(", ")
                    }
                )))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(store: Option<&str>, allowed: Option<&[&str]>) -> Context {
        Context {
            tenant_id: "t".into(),
            user_id: Some("u".into()),
            store_id: store.map(str::to_owned),
            request_id: "r".into(),
            channel: "rest".into(),
            now_ms: 0,
            allowed_stores: allowed.map(|l| l.iter().map(|s| (*s).to_owned()).collect()),
        }
    }

    #[test]
    fn scope_follows_header_then_allowed_stores() {
        assert_eq!(ctx(None, None).store_scope(), None);
        assert!(ctx(None, None).may_see_store(None));
        let limited = ctx(None, Some(&["a", "b"]));
        assert!(limited.may_see_store(Some("b")));
        assert!(!limited.may_see_store(Some("c")));
        assert!(limited.may_see_store(None));
        assert!(limited.check_store("c").is_err());
        let mut params = vec![crate::Sql::Integer(1)];
        assert_eq!(
            limited.store_condition("store_id", &mut params).as_deref(),
            Some("(store_id IS NULL OR store_id IN (?2, ?3))")
        );
        assert_eq!(
            ctx(None, Some(&[]))
                .store_condition("x", &mut Vec::new())
                .as_deref(),
            Some("(x IS NULL OR 0)")
        );
        assert_eq!(
            ctx(Some("a"), Some(&["a"]))
                .store_condition("x", &mut Vec::new())
                .as_deref(),
            Some("x IN (?1)")
        );
        assert!(!ctx(Some("a"), None).may_see_store(Some("b")));
        assert!(!ctx(Some("a"), None).may_see_store(None));
    }
}
