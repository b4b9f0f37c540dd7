//! What every layer above stands on: child processes and their groups,
//! signals, the state folders and their writes, redaction of secrets, the
//! HTTP client's TLS set-up, which sockets listen on a port.

pub(crate) mod failpoint;
pub mod gc;
pub(crate) mod http;
pub(crate) mod interrupt;
pub(crate) mod listening;
pub(crate) mod log;
pub mod process;
pub mod redact;
pub(crate) mod source_tree;
pub(crate) mod state;
pub(crate) mod sweep;
