//! What a lock costs against a requirements file: the fixture's pins as
//! `requirements.txt`, and the same service as a uv project
//! (`fixtures/variants/uv-project`) locked by `uv lock` here, each cell of
//! the matrix resolved on top of each from an empty resolution cache, with
//! uv's own download cache as the runs before left it (warm for both).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use upgrade_check_core::StateDirs;
use upgrade_check_core::config::Config;
use upgrade_check_core::internals::{BaselineFile, DeclaredHashes};
use upgrade_check_core::internals::{UvBuilder, python, uv};
use upgrade_check_core::model::cell::Pin;

/// Time to resolve one baseline and each cell on it.
pub struct Resolving {
    pub baseline: Duration,
    /// The mean over the cells.
    pub per_cell: Duration,
}

/// The same cells resolved on `requirements.txt` and on `uv.lock`.
pub struct Compared {
    pub requirements: Resolving,
    pub lock: Resolving,
    pub cells: usize,
}

/// Resolves `cells` (each cell's pins) on the config's requirements file and
/// on the uv project's lock, in folders made under `state`.
pub fn compare(config: &Config, cells: &[Vec<Pin>], state: &Path) -> anyhow::Result<Compared> {
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/variants/uv-project");
    let scratch = tempfile::Builder::new()
        .prefix("bench-lock-")
        .tempdir_in(state)
        .context("a folder for the uv project")?;
    fs_err::copy(
        project.join("pyproject.toml"),
        scratch.path().join("pyproject.toml"),
    )?;
    let interpreter = python::find(config.service.python.as_deref())?;
    let dirs = |cache: &Path| StateDirs {
        state: state.to_owned(),
        cache: cache.to_owned(),
    };
    let tools = dirs(&scratch.path().join("cache")).tools_dir();
    let uv = uv::locate_or_bootstrap(&tools, &interpreter, false, &|_| {})?;
    let locked = uv
        .command(vec!["lock".into(), "--quiet".into()])
        .dir(scratch.path())
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .run()?;
    if !locked.status.success() {
        bail!("uv lock: {}", String::from_utf8_lossy(&locked.stdout));
    }
    let mut measured = Vec::new();
    for baseline in [
        config.service.baseline.clone(),
        scratch.path().join("uv.lock"),
    ] {
        let baseline = BaselineFile::load(&baseline)?;
        let mut hashes = DeclaredHashes::default();
        hashes.add(&baseline);
        let cache = tempfile::tempdir_in(scratch.path())?;
        let builder = UvBuilder {
            python: interpreter.clone(),
            uv: uv.clone(),
            dirs: dirs(cache.path()),
            baseline,
            hashes,
            timeout: config.timeouts.build,
            no_build: false,
            offline: false,
        };
        let started = Instant::now();
        let resolved = builder.resolve_baseline()?.set;
        let baseline = started.elapsed();
        let started = Instant::now();
        for pins in cells {
            builder.resolve_cell(&resolved, pins)?;
        }
        measured.push(Resolving {
            baseline,
            per_cell: started.elapsed() / cells.len().max(1) as u32,
        });
    }
    let lock = measured.pop().expect("two baselines measured");
    let requirements = measured.pop().expect("two baselines measured");
    Ok(Compared {
        requirements,
        lock,
        cells: cells.len(),
    })
}
