//! A fresh database for every scenario run, so no run sees another's data.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Database {
    /// The SQLite file the service creates on first use.
    pub sqlite_path: PathBuf,
    /// The same database as a URL, for services that take one.
    pub url: String,
}

/// A database file that does not exist yet, inside `dir` (the run's private folder).
pub fn fresh_sqlite(dir: &Path, name: &str) -> Database {
    let sqlite_path = dir.join(format!("{name}.sqlite3"));
    Database {
        url: format!("sqlite:///{}", sqlite_path.display()),
        sqlite_path,
    }
}
