//! Scenes: the RON model (`model`), loading with located syntax/type errors, and the scan that
//! refuses fields whose behaviour this build does not implement yet (`refusals`), and building a
//! scene in code / writing it back as RON (`builder`: [`SceneBuilder`], [`SceneSpec::to_ron`]).

mod builder;
mod model;
mod refusals;

pub use builder::*;
pub use model::*;
pub use refusals::refusals;

use crate::error::{Diagnostic, Error, Location, Result};
use std::path::{Path, PathBuf};

/// The only scene format version this build reads.
pub const SCENE_VERSION: u32 = 1;

/// A parsed scene together with where it came from (relative paths resolve against `base_dir`).
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    pub spec: SceneSpec,
    /// The file name used in diagnostics (`<string>` for scenes built in memory).
    pub origin: String,
    pub base_dir: PathBuf,
}

impl Scene {
    /// Reads and parses a scene file. Syntax and type errors are located `file:line:col` (E100–E104).
    pub fn load(path: impl AsRef<Path>) -> Result<Scene> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::invalid(Diagnostic {
                code: "E105",
                message: format!("cannot read scene file: {e}"),
                location: Location::Argument(path.display().to_string()),
            })
        })?;
        let base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Scene::parse(&text, &path.display().to_string(), base_dir)
    }

    /// Parses RON text; `origin` names the text in diagnostics.
    pub fn parse(text: &str, origin: &str, base_dir: PathBuf) -> Result<Scene> {
        // IMPLICIT_SOME: optional fields take `Some(x)` or plain `x` (SCENE.md writes `capacity: 4`).
        let spec: SceneSpec = ron::Options::default()
            .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
            .from_str(text)
            .map_err(|e| Error::invalid(ron_diagnostic(&e, origin)))?;
        if spec.version != SCENE_VERSION {
            return Err(Error::invalid(Diagnostic::at(
                "E104",
                "version",
                format!(
                    "scene format version {} is not supported (this build reads version {SCENE_VERSION})",
                    spec.version
                ),
            )));
        }
        Ok(Scene {
            spec,
            origin: origin.to_string(),
            base_dir,
        })
    }

    /// Wraps a scene built in code.
    pub fn from_spec(spec: SceneSpec) -> Scene {
        Scene {
            spec,
            origin: "<memory>".into(),
            base_dir: PathBuf::from("."),
        }
    }
}

fn ron_diagnostic(e: &ron::error::SpannedError, origin: &str) -> Diagnostic {
    use ron::Error as R;
    let code = match &e.code {
        R::NoSuchStructField { .. } => "E102",
        R::MissingStructField { .. } => "E103",
        R::NoSuchEnumVariant { .. } | R::ExpectedDifferentStructName { .. } => "E101",
        R::Message(_) | R::InvalidValueForType { .. } | R::ExpectedDifferentLength { .. } => "E101",
        // A well-formed value of the wrong type (a string where a number belongs, -1 for a count).
        R::ExpectedBoolean
        | R::ExpectedFloat
        | R::ExpectedInteger
        | R::ExpectedString
        | R::ExpectedOption
        | R::ExpectedUnit
        | R::ExpectedArray
        | R::ExpectedMap
        | R::ExpectedStructLike
        | R::IntegerOutOfBounds => "E101",
        _ => "E100",
    };
    let mut message = e.code.to_string();
    if let R::Message(m) = &e.code
        && m.contains("did not match any variant")
    {
        message = match m.as_str() {
            s if s.contains("DelaySpec") => {
                "expected a delay: a number of ticks or Symbol(\"name\")".into()
            }
            s if s.contains("LatencySpec") => {
                "expected a latency: a number of ticks or Measured".into()
            }
            s if s.contains("TokenSpec") => {
                "expected a token: one number or a list of batch·channels·frames numbers".into()
            }
            s => s.to_string(),
        };
    }
    if let R::ExceededRecursionLimit = &e.code {
        // The parser's depth limit keeps hostile input from overflowing the stack.
        message = "the value nests too deeply (no scene field nests more than a few levels)".into();
    }
    Diagnostic {
        code,
        message,
        location: Location::File {
            path: origin.to_string(),
            line: e.span.start.line,
            col: e.span.start.col,
        },
    }
}
