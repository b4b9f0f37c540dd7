//! Faults the tests ask for with `UPGRADE_CHECK_FAILPOINT=name=value`, so that
//! the harness's own failure paths run for real; unset in normal use.

/// The value set for failpoint `name`, if the environment asks for it.
pub(crate) fn failpoint(name: &str) -> Option<String> {
    let setting = std::env::var("UPGRADE_CHECK_FAILPOINT").ok()?;
    let (key, value) = setting.split_once('=')?;
    (key == name).then(|| value.to_owned())
}

/// Tells the test that asked for a failpoint that it is reached: the one
/// line the library itself writes to stderr, and only under a failpoint.
pub(crate) fn announce(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
