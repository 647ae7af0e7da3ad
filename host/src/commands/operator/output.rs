//! How operator commands answer: text for people, one JSON document for
//! programs, and errors with a stable code.

use serde_json::{Value, json};

/// A failure with a stable machine-readable code (`not_found`,
/// `validation_failed`, `conflict`, …).
#[derive(Debug)]
pub struct Failure {
    /// The code printed in `{"error":{"code"}}`.
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
    /// The command already printed its one JSON document (e.g. a summary
    /// that lists what failed): no error document follows it.
    pub answered: bool,
}

impl Failure {
    /// A failure with this code and message.
    pub fn error(code: &'static str, message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Self {
            code,
            message: message.into(),
            answered: false,
        })
    }

    /// A failure reported in the document the command printed already:
    /// only the exit status and stderr say it again.
    pub fn answered(code: &'static str, message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Self {
            code,
            message: message.into(),
            answered: true,
        })
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// The stable code of an error: a [`Failure`]'s, an `ApiError`'s, else `internal`.
fn code_of(error: &anyhow::Error) -> &'static str {
    if let Some(failure) = error.downcast_ref::<Failure>() {
        return failure.code;
    }
    if let Some(api) = error.downcast_ref::<malipo::error::ApiError>() {
        return api.code();
    }
    if let Some(deletion) = error.downcast_ref::<malipo::deletion::service::DeletionError>() {
        use malipo::deletion::service::DeletionError as D;
        return match deletion {
            D::NoSuchTenant(_) => "not_found",
            D::NotScheduled(_) | D::PlatformTenant(_) => "conflict",
            D::BadGrace(_) => "validation_failed",
            D::Control(_) | D::Tenancy(_) => "internal",
        };
    }
    "internal"
}

/// Where a command writes its answer.
#[derive(Clone, Copy, Debug)]
pub struct Out {
    /// `--json` was given.
    pub json: bool,
}

impl Out {
    /// Runs a command; on failure with `--json`, prints the error document
    /// on stdout too, unless the command answered already (the message
    /// reaches stderr through `main`'s error).
    pub fn run(json: bool, work: impl FnOnce(Out) -> anyhow::Result<()>) -> anyhow::Result<()> {
        let out = Out { json };
        let result = work(out);
        if let Err(error) = &result
            && json
            && !error.downcast_ref::<Failure>().is_some_and(|f| f.answered)
        {
            println!(
                "{}",
                json!({"error": {"code": code_of(error), "message": format!("{error:#}")}})
            );
        }
        result
    }

    /// Prints `document` (with `--json`) or `text`.
    pub fn answer(&self, document: &Value, text: impl FnOnce() -> String) {
        if self.json {
            println!("{document}");
        } else {
            println!("{}", text());
        }
    }
}

/// An aligned table: a header row, then one row per item.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| -> String {
        cells
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                let width = widths.get(i).copied().unwrap_or(0);
                format!("{cell:<width$}")
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut text = vec![line(headers.to_vec())];
    text.extend(
        rows.iter()
            .map(|row| line(row.iter().map(String::as_str).collect())),
    );
    text.join("\n")
}
