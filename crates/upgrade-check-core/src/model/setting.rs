//! Errors that blame a setting the caller gave. The library names the
//! setting in words; the command line adds which of its options sets it.

/// A setting the caller gives a check, where an error can blame it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// Where the config file is.
    Config,
    /// The PostgreSQL server to use instead of starting one.
    DatabaseUrl,
    /// The address `record` listens on.
    Listen,
    /// Where bisection starts.
    BisectFrom,
    /// Where bisection ends.
    BisectTo,
    /// Nothing is fetched: only caches are read.
    Offline,
    /// The git ref a pull request is compared with.
    Since,
    /// The one cell `accept` runs.
    Cell,
    /// Whether an unhealthy answer may become a reference.
    AcceptUnhealthy,
}

/// An error a setting caused, said without naming how it was set.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SettingError {
    pub setting: Setting,
    pub message: String,
}

impl SettingError {
    pub fn new(setting: Setting, message: impl Into<String>) -> SettingError {
        SettingError {
            setting,
            message: message.into(),
        }
    }
}
