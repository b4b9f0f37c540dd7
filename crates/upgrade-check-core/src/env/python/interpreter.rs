//! Finds the Python interpreter that cell environments are built on.

use std::path::PathBuf;
use std::time::Duration;

use crate::sys::process;

/// Oldest interpreter the harness builds environments with.
const MINIMUM: (u32, u32) = (3, 9);

#[derive(Debug, Clone)]
pub struct Python {
    /// Absolute path of the interpreter (its `sys.executable`).
    pub path: PathBuf,
    /// `major.minor.micro`.
    pub version: String,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "no Python {}.{} or newer found (tried {tried}); install one, or name it with `service.python` in the config",
    MINIMUM.0,
    MINIMUM.1
)]
pub struct NoPython {
    pub tried: String,
}

/// The configured interpreter, or the first suitable `python3`/`python` on PATH.
pub fn find(configured: Option<&str>) -> Result<Python, NoPython> {
    let candidates: Vec<&str> = match configured {
        Some(program) => vec![program],
        None => vec!["python3", "python"],
    };
    let mut tried = Vec::new();
    for program in &candidates {
        match probe(program) {
            Some(python) if python.is_supported() => return Ok(python),
            Some(python) => tried.push(format!("{program}: {}", python.version)),
            None => tried.push(format!("{program}: not found")),
        }
    }
    Err(NoPython {
        tried: tried.join(", "),
    })
}

fn probe(program: &str) -> Option<Python> {
    let script = "import sys; print(sys.executable); print('%d.%d.%d' % sys.version_info[:3])";
    let output = process::run_captured(duct::cmd(program, ["-c", script]), Duration::from_secs(30))
        .ok()??;
    if !output.status.success() {
        return None;
    }
    let stdout = String::from_utf8(output.stdout).ok()?;
    let mut lines = stdout.lines();
    let path = PathBuf::from(lines.next()?);
    let version = lines.next()?.to_owned();
    Some(Python { path, version })
}

impl Python {
    fn is_supported(&self) -> bool {
        let mut parts = self
            .version
            .split('.')
            .map(|part| part.parse::<u32>().unwrap_or(0));
        let major = parts.next().unwrap_or(0);
        let minor = parts.next().unwrap_or(0);
        (major, minor) >= MINIMUM
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_interpreter_is_named_in_the_error() {
        let err = find(Some("python-that-does-not-exist")).unwrap_err();
        assert!(
            err.to_string()
                .contains("python-that-does-not-exist: not found"),
            "{err}"
        );
    }

    #[test]
    fn version_gate() {
        let python = |version: &str| Python {
            path: PathBuf::new(),
            version: version.to_owned(),
        };
        assert!(python("3.9.0").is_supported());
        assert!(python("3.11.7").is_supported());
        assert!(!python("3.8.18").is_supported());
        assert!(!python("2.7.18").is_supported());
    }
}
