//! Passwords for commands that make accounts: from an environment variable,
//! else one line of standard input; the password policy applies.

use std::io::{BufRead, IsTerminal};

use crate::commands::operator::output::Failure;

/// The password for `email`: `variable` if set, else a line of stdin.
pub fn password(variable: &str, email: &str) -> anyhow::Result<String> {
    let password = match malipo::config::var(variable) {
        Ok(password) => password,
        Err(_) => {
            if std::io::stdin().is_terminal() {
                eprintln!("password for {email}: ");
            }
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    if let Some(reason) = malipo::passwords::policy_violation(&password) {
        return Err(Failure::error(
            "validation_failed",
            format!("{reason} (password from {variable} or standard input)"),
        ));
    }
    Ok(password)
}
