//! `malipo tenant create|list|suspend|reactivate|delete`, `malipo user create|list|assign-role` and `malipo migrate`: the operator's CLI.
