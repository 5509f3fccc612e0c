//! Typed errors with stable codes (`docs/errors.md`) and the CLI exit code each maps to.
//!
//! `E1xx` scene (syntax, type, semantic), `E2xx` plan, `R3xx` refusals, `E4xx` run-time failures.

use std::fmt;

/// Where a diagnostic points: a place in the file (syntax/type errors) or a scene path (semantics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `file:line:col`, 1-based.
    File {
        path: String,
        line: usize,
        col: usize,
    },
    /// A path inside the scene, e.g. `edges[3].to`.
    ScenePath(String),
    /// A command-line argument, e.g. `--until`.
    Argument(String),
    Nowhere,
}

/// One located message with a stable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: &'static str,
    pub message: String,
    pub location: Location,
}

impl Diagnostic {
    pub fn at(code: &'static str, path: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            message: message.into(),
            location: Location::ScenePath(path.into()),
        }
    }

    pub fn nowhere(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            message: message.into(),
            location: Location::Nowhere,
        }
    }

    pub fn location_text(&self) -> Option<String> {
        match &self.location {
            Location::File { path, line, col } => Some(format!("{path}:{line}:{col}")),
            Location::ScenePath(p) => Some(p.clone()),
            Location::Argument(a) => Some(a.clone()),
            Location::Nowhere => None,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = match self.code.as_bytes().first() {
            Some(b'R') => "refused",
            Some(b'W') => "warning",
            _ => "error",
        };
        write!(f, "{head}[{}]: {}", self.code, self.message)?;
        if let Some(loc) = self.location_text() {
            write!(f, "\n  --> {loc}")?;
        }
        Ok(())
    }
}

/// Every failure the library reports. Never a panic for anything a user wrote.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The scene (or an argument) is invalid: exit 2. Every problem found is listed.
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
    /// A request this build or device does not support: exit 4.
    #[error("{}", render(.0))]
    Refused(Vec<Diagnostic>),
    /// A bug or an environment failure (I/O): exit 1.
    #[error("internal error: {0}")]
    Internal(String),
}

fn render(d: &[Diagnostic]) -> String {
    d.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

impl Error {
    pub fn invalid(d: Diagnostic) -> Self {
        Error::Invalid(vec![d])
    }
    pub fn refused(d: Diagnostic) -> Self {
        Error::Refused(vec![d])
    }
    /// The CLI exit code of §19.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Invalid(_) => 2,
            Error::Refused(_) => 4,
            Error::Internal(_) => 1,
        }
    }
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            Error::Invalid(d) | Error::Refused(d) => d,
            Error::Internal(_) => &[],
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
