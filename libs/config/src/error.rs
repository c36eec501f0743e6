//! Configuration errors: every problem is reported with the file and line it came from.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem found in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the problem is in. Empty when the problem belongs to a value whose
    /// origin the reporting code does not know (a caller such as `check` fills it in).
    pub file: PathBuf,
    /// 1-based line number; 0 means the whole file.
    pub line: usize,
    pub message: String,
}

impl Diagnostic {
    pub fn new(file: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: file.into(),
            line,
            message: message.into(),
        }
    }

    /// A diagnostic not yet tied to a file (see `Diagnostic::file`).
    pub(crate) fn unplaced(message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(PathBuf::new(), 0, message)
    }

    /// Places an unplaced diagnostic at `file:line`, prefixing `context` (if any) to
    /// its message.
    pub(crate) fn place(mut self, file: &Path, line: usize, context: &str) -> Diagnostic {
        if self.file.as_os_str().is_empty() {
            self.file = file.to_path_buf();
            self.line = line;
            if !context.is_empty() {
                self.message = format!("{context}: {}", self.message);
            }
        }
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.file.as_os_str().is_empty() {
            write!(f, "{}", self.message)
        } else if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug)]
pub enum ConfigError {
    /// A file could not be read at all.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The files were read but contain mistakes; all of them are listed.
    Invalid(Vec<Diagnostic>),
}

impl ConfigError {
    /// The error as a list of diagnostics (an I/O error becomes one whole-file diagnostic).
    pub fn into_diagnostics(self) -> Vec<Diagnostic> {
        match self {
            ConfigError::Io { path, source } => {
                vec![Diagnostic::new(path, 0, format!("cannot read: {source}"))]
            }
            ConfigError::Invalid(diagnostics) => diagnostics,
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> ConfigError {
        ConfigError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Io { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            ConfigError::Invalid(diagnostics) => {
                for (i, d) in diagnostics.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(f, "{d}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Io { source, .. } => Some(source),
            ConfigError::Invalid(_) => None,
        }
    }
}

/// Reads a whole configuration or table file.
pub(crate) fn read_file(path: &Path) -> Result<String, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| ConfigError::io(path, e))?;
    // Postfix files are byte strings; a stray Latin-1 comment must not make a file unreadable.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_forms() {
        assert_eq!(
            Diagnostic::new("main.cf", 12, "bad").to_string(),
            "main.cf:12: bad"
        );
        assert_eq!(
            Diagnostic::new("main.cf", 0, "bad").to_string(),
            "main.cf: bad"
        );
        assert_eq!(Diagnostic::unplaced("bad").to_string(), "bad");
        let e = ConfigError::Invalid(vec![
            Diagnostic::new("a", 1, "x"),
            Diagnostic::new("b", 2, "y"),
        ]);
        assert_eq!(e.to_string(), "a:1: x\nb:2: y");
        let e = ConfigError::Io {
            path: "/nope".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(e.to_string().starts_with("cannot read /nope: "));
    }

    #[test]
    fn place_only_fills_unplaced() {
        let d = Diagnostic::unplaced("oops").place(Path::new("main.cf"), 3, "relay_domains");
        assert_eq!(d.to_string(), "main.cf:3: relay_domains: oops");
        let d = Diagnostic::new("t", 1, "x").place(Path::new("main.cf"), 3, "ctx");
        assert_eq!(d.to_string(), "t:1: x");
    }
}
