//! What every layer above stands on: child processes and their groups,
//! signals, the state folders and their writes, redaction of secrets, the
//! HTTP client's TLS set-up.

pub mod failpoint;
pub mod gc;
pub mod http;
pub mod interrupt;
pub mod log;
pub mod process;
pub mod redact;
pub mod source_tree;
pub mod state;
pub mod sweep;
