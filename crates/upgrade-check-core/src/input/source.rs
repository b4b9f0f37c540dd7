//! Reads the harness's TOML input files (config, scenarios) into typed values.
//!
//! Every error names the file, the line and column, and the key path, so a
//! user can jump straight to the mistake. Nothing here runs anything.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A mistake in an input file: where it is and what is wrong.
#[derive(Debug, thiserror::Error)]
pub struct InputError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Dotted key path, e.g. `matrix.packages.bcrypt[2]`; empty for the file as a whole.
    pub key: String,
    pub message: String,
}

impl InputError {
    /// A mistake in the file as a whole: no key, its first line.
    pub fn in_file(path: &Path, message: impl Into<String>) -> InputError {
        InputError {
            path: path.to_owned(),
            line: 1,
            column: 1,
            key: String::new(),
            message: message.into(),
        }
    }

    /// About a folder: no line to point at.
    pub fn in_folder(path: &Path, message: impl Into<String>) -> InputError {
        InputError {
            line: 0,
            column: 0,
            ..InputError::in_file(path, message)
        }
    }
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A file that cannot be read has no line to point at.
        match self.line {
            0 => write!(f, "{}: ", self.path.display())?,
            line => write!(f, "{}:{line}:{}: ", self.path.display(), self.column)?,
        }
        if !self.key.is_empty() {
            write!(f, "`{}`: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// An input file's text, kept so that later validation can point into it.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

/// The largest input file read (a HAR file with every response body of a
/// long browser session is the largest in practice): a larger one is an
/// error naming it, never a read that takes the machine's memory.
pub(crate) const MAX_INPUT_BYTES: u64 = 64 << 20;

impl Source {
    /// Reads a file that must be UTF-8 text.
    pub fn read(path: &Path) -> Result<Source, InputError> {
        use std::io::Read;
        // std's error, not fs_err's: the path is said once, in front.
        let cannot = |err: std::io::Error| InputError {
            line: 0,
            column: 0,
            ..InputError::in_file(path, format!("cannot read it: {err}"))
        };
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|file| file.take(MAX_INPUT_BYTES + 1).read_to_end(&mut bytes))
            .map_err(cannot)?;
        if bytes.len() as u64 > MAX_INPUT_BYTES {
            let size = std::fs::metadata(path).map_or(bytes.len() as u64, |meta| meta.len());
            return Err(InputError::in_file(
                path,
                format!(
                    "the file is {} MiB; input files over {} MiB are not read (for a HAR file, save only \
                     the service's requests, without response bodies of static files)",
                    size >> 20,
                    MAX_INPUT_BYTES >> 20
                ),
            ));
        }
        let text = String::from_utf8(bytes).map_err(|err| {
            let (line, column) = line_column(
                &String::from_utf8_lossy(err.as_bytes()),
                err.utf8_error().valid_up_to(),
            );
            InputError {
                path: path.to_owned(),
                line,
                column,
                key: String::new(),
                message: "the file is not valid UTF-8".to_owned(),
            }
        })?;
        Ok(Source {
            path: path.to_owned(),
            text,
        })
    }

    /// Deserialises the whole file, with the key path of the first error.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, InputError> {
        let deserializer = toml::Deserializer::parse(&self.text)
            .map_err(|err| self.error_at(err.span(), "", err.message()))?;
        serde_path_to_error::deserialize(deserializer).map_err(|err| {
            // `Spanned` values show up in the path under a private field name.
            let key = err
                .path()
                .to_string()
                .replace(".$__serde_spanned_private_value", "")
                .replace("$__serde_spanned_private_value.", "")
                .replace("$__serde_spanned_private_value", "");
            let inner = err.into_inner();
            let key = if key == "." { String::new() } else { key };
            self.error_at(inner.span(), &key, inner.message())
        })
    }

    /// An error at a byte span of this file (the start of the file when unknown).
    pub fn error_at(&self, span: Option<Range<usize>>, key: &str, message: &str) -> InputError {
        let (line, column) = line_column(&self.text, span.map_or(0, |span| span.start));
        InputError {
            path: self.path.clone(),
            line,
            column,
            key: key.to_owned(),
            message: message.trim().to_owned(),
        }
    }

    /// 1-based line of a byte offset, for pointing into the file from reports.
    pub fn line_of(&self, offset: usize) -> usize {
        line_column(&self.text, offset).0
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

/// A source held in memory, for the readers' tests.
#[cfg(test)]
pub(crate) fn in_memory(path: &str, text: &str) -> Source {
    Source {
        path: path.into(),
        text: text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "fields exist to be deserialised")]
    struct Doc {
        table: Table,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "fields exist to be deserialised")]
    struct Table {
        count: u32,
    }

    fn source(text: &str) -> Source {
        Source {
            path: PathBuf::from("doc.toml"),
            text: text.to_owned(),
        }
    }

    #[test]
    fn wrong_type_names_line_and_key() {
        let err = source("# comment\n[table]\ncount = \"many\"\n")
            .parse::<Doc>()
            .unwrap_err();
        assert_eq!((err.line, err.key.as_str()), (3, "table.count"));
        assert!(err.message.contains("invalid type"), "{err}");
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let err = source("[table]\ncount = 1\ncolour = 2\n")
            .parse::<Doc>()
            .unwrap_err();
        assert_eq!(err.line, 3, "{err}");
        assert!(err.message.contains("unknown field `colour`"), "{err}");
    }

    #[test]
    fn syntax_error_names_line() {
        let err = source("[table]\ncount = = 1\n").parse::<Doc>().unwrap_err();
        assert_eq!((err.line, err.key.as_str()), (2, ""));
        assert_eq!(err.to_string(), "doc.toml:2:9: extra `=`, expected nothing");
    }

    #[test]
    fn line_column_counts_characters() {
        assert_eq!(line_column("ab\ncdé\nx", 8), (3, 1));
        assert_eq!(line_column("ab\ncdé", 5), (2, 3));
    }
}
