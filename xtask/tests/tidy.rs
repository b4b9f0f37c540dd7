//! Rules about the source tree, checked as ordinary tests.
//!
//! Secrets are kept out of everything the harness writes by one choke point
//! (`redact.rs`); these checks make a new writer that bypasses it fail here,
//! rather than leak a secret in some release.

use std::path::{Path, PathBuf};

fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(sources(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
    found
}

/// The product's code: `src/` less the bench (a developer tool that prints
/// its own figures) and less unit tests.
fn product_code() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    sources(&src)
        .into_iter()
        .filter(|path| !path.starts_with(src.join("bench")))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let code = match text.find("#[cfg(test)]") {
                Some(tests) => text[..tests].to_owned(),
                None => text,
            };
            let name = path.strip_prefix(&src).unwrap().display().to_string();
            (name, code)
        })
        .collect()
}

/// Lines of `code` (not comments) that contain `needle`.
fn uses<'a>(code: &'a str, needle: &str) -> Vec<&'a str> {
    code.lines()
        .filter(|line| !line.trim_start().starts_with("//") && line.contains(needle))
        .collect()
}

#[test]
fn stdout_and_stderr_are_written_through_the_redaction_choke_point() {
    let mut offenders = Vec::new();
    for (file, code) in product_code() {
        if file == "redact.rs" {
            continue;
        }
        for needle in [
            "println!(",
            "print!(",
            "eprintln!(",
            "eprint!(",
            "io::stdout()",
            "io::stderr()",
        ] {
            for line in uses(&code, needle) {
                // The redacting macros `out!`, `outln!`, `errln!` contain these words only as names.
                if needle == "print!(" && line.contains("crate::out!(") {
                    continue;
                }
                // Asking whether stderr is a terminal writes nothing.
                if line.contains(".is_terminal()") {
                    continue;
                }
                offenders.push(format!("{file}: {}", line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "print with crate::out!/outln!/errln! (redact.rs), never directly:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn files_are_written_through_the_redaction_choke_point() {
    // Files written directly, each for a reason that keeps secrets out.
    let allowed = [
        // Markers and lists of packages the environment builders make: no
        // scenario or service text reaches them.
        "env/uv_build.rs",
        "env/cargo_build.rs",
        // The owner file of a run's folder: a pid and a start time.
        "sweep.rs",
        // The PostgreSQL template's completion marker: empty.
        "db.rs",
        // The service log: created empty, filled only by redact::pump_log.
        "service.rs",
    ];
    let mut offenders = Vec::new();
    for (file, code) in product_code() {
        if file == "redact.rs" || file == "state.rs" || allowed.contains(&file.as_str()) {
            continue;
        }
        for needle in [
            "fs::write(",
            "File::create(",
            "OpenOptions",
            "fs_err::write(",
        ] {
            for line in uses(&code, needle) {
                offenders.push(format!("{file}: {}", line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "write files with state::write_atomic, which scrubs secrets:\n{}",
        offenders.join("\n")
    );
    // And the service log is filled by the pump alone.
    let service = product_code()
        .into_iter()
        .find(|(file, _)| file == "service.rs")
        .unwrap()
        .1;
    assert!(
        service.contains("redact::pump_log("),
        "the log pump writes the log"
    );
    assert!(
        !service.contains("stdout_path(") && !service.contains("stderr_path("),
        "a service's output never goes to a file unscrubbed"
    );
}
