//! Before any cell runs: the tools found, matrix ranges filled from the
//! index, listed versions checked, PostgreSQL started, the inputs
//! cross-checked, so that bad input stops the check up front.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};

use super::Options;
use crate::env::{self, BuildError, Builder, index};
use crate::exec::db;
use crate::exec::db_ahead::DatabasesAhead;
use crate::input::baseline::{BaselineFile, DeclaredHashes};
use crate::input::config::{self, Config};
use crate::input::node_lock::Manager;
use crate::input::scenario::Scenario;
use crate::input::source;
use crate::input::yarn_lock::Flavour;
use crate::model::cell::Plan;
use crate::model::event::{Events, RunEvent};
use crate::model::setting::{Setting, SettingError};
use crate::plan::pr;
use crate::sys::state::{self, StateDirs};

/// Makes a copy of the service with `overlay`'s files on top (a variant or an
/// incident's pre-fix files), and points the config at it.
pub(super) fn lay_over(config: &mut Config, overlay: &Path, scratch: &Path) -> anyhow::Result<()> {
    if !overlay.is_dir() {
        bail!("the overlay folder {} does not exist", overlay.display());
    }
    let root = scratch.join("service-with-overlay");
    state::copy_tree(&config.service.root, &root)?;
    state::copy_tree(overlay, &root)?;
    // A variant's README describes it; it is not part of the service.
    let readme = root.join("README.md");
    if overlay.join("README.md").is_file() && !config.service.root.join("README.md").is_file() {
        fs_err::remove_file(readme)?;
    }
    let baseline = config
        .service
        .baseline
        .strip_prefix(&config.service.root)?
        .to_owned();
    config.service.baseline = root.join(baseline);
    config.service.root = root;
    Ok(())
}

/// The service's ecosystem's tools, set up for `baseline`: the one place
/// an ecosystem is chosen. Digests declared in `also_hashed` (a pull
/// request's other side) are checked too.
pub(super) async fn builder(
    config: &Config,
    options: &Options,
    dirs: &StateDirs,
    events: &Events,
    baseline: BaselineFile,
    also_hashed: Option<&BaselineFile>,
) -> anyhow::Result<Builder> {
    Ok(match config.service.ecosystem {
        config::Ecosystem::Python => {
            let mut hashes = DeclaredHashes::default();
            hashes.add(&baseline);
            if let Some(other) = also_hashed {
                hashes.add(other);
            }
            Builder::new(uv_builder(config, options, dirs, events, baseline, hashes).await?)
        }
        config::Ecosystem::Cargo => {
            Builder::new(cargo_builder(config, options, dirs, events, baseline)?)
        }
        config::Ecosystem::Node => {
            Builder::new(npm_builder(config, options, dirs, events, baseline)?)
        }
    })
}

/// npm, pnpm or Yarn for a Node service: the `node` and `npm` on PATH (and
/// the lock's own package manager, installed if none fits), the lock
/// checked against its `package.json` before anything runs.
fn npm_builder(
    config: &Config,
    options: &Options,
    dirs: &StateDirs,
    events: &Events,
    baseline: BaselineFile,
) -> anyhow::Result<env::NpmBuilder> {
    let manager = Manager::of(&config.service.baseline)
        .context("a Node service's baseline is a package-lock.json, pnpm-lock.yaml or yarn.lock")?;
    let mut node = env::node::Node::find()?;
    if let Some(range) = &config.service.node {
        node = node.in_range(
            range,
            &dirs.tools_dir(),
            options.offline,
            config.timeouts.build,
        )?;
    }
    let root = &config.service.root;
    let lock_path = config
        .service
        .baseline
        .strip_prefix(root)
        .context("the baseline lock is inside the service's folder")?
        .to_owned();
    let manifest_path = lock_path.with_file_name("package.json");
    // In a pull request the baseline is the base's lock with the base's
    // package.json files (the service's, a workspace member's), where the
    // change edits them.
    let mut base_manifests = std::collections::BTreeMap::new();
    if let Some(git_ref) = &options.since {
        for (path, before) in pr::manifests_changed_since(git_ref, root, "package.json")? {
            events(&RunEvent::ManifestChanged {
                since: git_ref.clone(),
                path: path.clone(),
            });
            base_manifests.insert(path, before);
        }
    }
    let base_manifest = |path: &std::path::Path| -> anyhow::Result<source::Source> {
        Ok(match base_manifests.get(path) {
            Some(before) => source::Source {
                path: root.join(path),
                text: before.clone(),
            },
            None => source::Source::read(&root.join(path))?,
        })
    };
    let manifest = base_manifest(&manifest_path)?;
    let lock_source = source::Source {
        path: config.service.baseline.clone(),
        text: baseline.text.clone(),
    };
    // A workspace's members (and an npm `file:` folder) are installed with
    // the service, each package.json checked against the lock.
    let members = manager.members(&lock_source, &manifest)?;
    let lock_folder = lock_path.parent().unwrap_or(std::path::Path::new(""));
    let mut member_manifests = Vec::new();
    for member in &members {
        let path = lock_folder.join(member).join("package.json");
        member_manifests.push((member.clone(), base_manifest(&path)?));
    }
    manager.check_in_sync(&lock_source, &manifest, &member_manifests)?;
    // The service's own npm settings (its registry, its scopes'), and a
    // pnpm workspace's, as the base has them in a pull request: a change's
    // own `.npmrc` could send the runner's tokens to a registry of its
    // choosing.
    let settings = |name: &str| -> anyhow::Result<Option<String>> {
        let path = lock_path.with_file_name(name);
        Ok(match &options.since {
            Some(git_ref) => pr::file_at(git_ref, root, &path)?,
            None => std::fs::read_to_string(root.join(&path)).ok(),
        })
    };
    let npmrc = settings(".npmrc")?;
    let pnpm_workspace = match manager {
        Manager::Pnpm => settings("pnpm-workspace.yaml")?,
        Manager::Npm | Manager::Yarn => None,
    };
    let tool = env::node::Tool::of(manager, &baseline.text);
    // A Yarn 2+ service's own settings (its registries, scopes, package
    // extensions), the base's in a pull request, likewise.
    let yarnrc = match tool {
        env::node::Tool::Yarn(Flavour::Berry) => settings(".yarnrc.yml")?
            .map(|text| {
                crate::input::yarnrc::read(&source::Source {
                    path: root.join(lock_path.with_file_name(".yarnrc.yml")),
                    text,
                })
            })
            .transpose()?,
        _ => None,
    };
    if tool != env::node::Tool::Npm {
        let declared: serde_json::Value = serde_json::from_str(&manifest.text)?;
        let program = env::node::locate_or_bootstrap(
            tool,
            declared["packageManager"].as_str(),
            &dirs.tools_dir(),
            options.offline,
            config.timeouts.build,
        )?;
        // Yarn would take a registry passed to it over the service's own.
        let service_registry = yarnrc
            .as_ref()
            .is_some_and(|settings| settings.names_registry);
        node = node.with_manager(tool, program, service_registry)?;
    }
    events(&RunEvent::Toolchain {
        description: node.version.clone(),
    });
    // The Node on PATH must be one the service says it runs on.
    if let Some((range, mut refused)) = crate::input::npm_lock::node_engine(&manifest)?
        && env::node::accepts(&range, &node.node_version) == Some(false)
    {
        refused.message = match &config.service.node {
            Some(chosen) => format!(
                "{}, and `node = \"{chosen}\"` in [service] chose Node {}: choose a range of Nodes it accepts",
                refused.message, node.node_version
            ),
            None => format!(
                "{}, and the `node` on PATH is {}: put a Node it accepts first on PATH, or choose one with `node` in [service]",
                refused.message, node.node_version
            ),
        };
        return Err(refused.into());
    }
    Ok(env::NpmBuilder {
        node,
        dirs: dirs.clone(),
        root: root.clone(),
        lock_path,
        manager,
        baseline,
        base_manifests,
        members,
        npmrc,
        yarnrc: yarnrc.map(|settings| settings.text),
        pnpm_workspace,
        no_scripts: options.check.no_build,
        timeout: config.timeouts.build,
        offline: options.offline,
    })
}

/// Fills each range entry of the matrix with the versions it picks from the
/// index, and says what it picked before anything runs.
pub(super) async fn expand_ranges(
    config: &mut Config,
    index: &index::Index,
    events: &Events,
) -> anyhow::Result<()> {
    let config_path = config.path.clone();
    let asked = format!("from {}", index.ecosystem().index_name());
    let mut left_out = Vec::new();
    for (package, candidates) in &mut config.matrix.packages {
        let config::Candidates::Range(range) = candidates else {
            continue;
        };
        let listing = index.list(package, range.pre).await?;
        range.expanded = range.pick_from(&listing.versions);
        let source = match (listing.from_cache, listing.stale) {
            (_, true) => "index answer cached, STALE (offline)",
            (true, false) => "index answer cached",
            (false, false) => &asked,
        };
        let picked: Vec<String> = range.expanded.iter().map(ToString::to_string).collect();
        events(&RunEvent::RangeExpanded {
            package: package.to_string(),
            specifiers: range.specifiers.to_string(),
            pick: range.pick.to_string(),
            picked,
            listed: listing.versions.len(),
            source: source.to_owned(),
        });
        let skipped: Vec<String> = listing
            .skipped
            .iter()
            .filter(|skipped| range.specifiers.contains(&skipped.version))
            .map(|skipped| format!("{} ({})", skipped.version, skipped.reason))
            .collect();
        if !skipped.is_empty() {
            left_out.push(RunEvent::RangeLeftOut {
                package: package.to_string(),
                specifiers: range.specifiers.to_string(),
                skipped,
            });
        }
        if range.expanded.is_empty() {
            return Err(source::InputError {
                path: config_path.clone(),
                line: range.line,
                column: 1,
                key: format!("matrix.packages.{package}"),
                message: format!(
                    "no version of {package} on {} is in `{}`",
                    index.ecosystem().index_name(),
                    range.specifiers
                ),
            }
            .into());
        }
    }
    // After every expansion, so that those lines read as one block.
    for event in &left_out {
        events(event);
    }
    Ok(())
}

/// Finds Python and uv (bootstrapping uv when absent) for a Python service.
pub(super) async fn uv_builder(
    config: &Config,
    options: &Options,
    dirs: &StateDirs,
    events: &Events,
    baseline: BaselineFile,
    hashes: DeclaredHashes,
) -> anyhow::Result<env::UvBuilder> {
    let python = env::python::find(config.service.python.as_deref())?;
    let tools_dir = dirs.tools_dir();
    let bootstrap_python = python.clone();
    let offline = options.offline;
    let told = events.clone();
    let uv = tokio::task::spawn_blocking(move || {
        env::uv::locate_or_bootstrap(&tools_dir, &bootstrap_python, offline, &|message| {
            told(&RunEvent::ToolSetup {
                message: message.to_owned(),
            })
        })
    })
    .await??;
    events(&RunEvent::Toolchain {
        description: format!(
            "{} and Python {} ({})",
            uv.version,
            python.version,
            python.path.display()
        ),
    });
    Ok(env::UvBuilder {
        python,
        uv,
        dirs: dirs.clone(),
        baseline,
        hashes,
        timeout: config.timeouts.build,
        no_build: options.check.no_build,
        offline: options.offline,
    })
}

/// Finds cargo for a cargo service; in pull-request mode, also the
/// manifests the change edits, which the baseline is built without.
pub(super) fn cargo_builder(
    config: &Config,
    options: &Options,
    dirs: &StateDirs,
    events: &Events,
    baseline: BaselineFile,
) -> anyhow::Result<env::CargoBuilder> {
    if options.check.no_build {
        bail!(
            "installing wheels only, never building, is for Python services: a cargo service is always built"
        );
    }
    let cargo = env::cargo::Cargo::find()?;
    events(&RunEvent::Toolchain {
        description: cargo.version.clone(),
    });
    let lock_path = config
        .service
        .baseline
        .strip_prefix(&config.service.root)
        .context("the baseline lock is inside the service's folder")?
        .to_owned();
    let root = &config.service.root;
    let source_digest = env::cargo::source_digest(root, &config.service.baseline)?;
    let mut base_manifests = Vec::new();
    if let Some(git_ref) = &options.since {
        base_manifests = pr::manifests_changed_since(git_ref, root, "Cargo.toml")?;
        for (path, _) in &base_manifests {
            events(&RunEvent::ManifestChanged {
                since: git_ref.clone(),
                path: path.clone(),
            });
        }
    }
    Ok(env::CargoBuilder {
        cargo,
        dirs: dirs.clone(),
        root: root.clone(),
        lock_path,
        source_digest,
        baseline,
        base_manifests,
        timeout: config.timeouts.build,
        offline: options.offline,
    })
}

/// Every version the matrix lists must be one the index (or registry) has:
/// a missing or yanked one is bad input, refused with its line before any
/// cell runs, not a build failure found after the whole matrix ran. A version
/// found is remembered for an hour (`index/exists/`), so warm runs ask nothing.
pub(super) async fn check_listed_versions(
    builder: &Builder,
    config: &Config,
    dirs: &StateDirs,
    events: &Events,
) -> anyhow::Result<()> {
    let known = dirs.index_dir().join("exists");
    let mut asked = 0;
    for listed in &config.matrix.listed {
        let marker = known.join(format!("{}=={}", listed.package, listed.version));
        if found_lately(&marker) {
            continue;
        }
        let pin = crate::model::cell::Pin {
            package: listed.package.clone(),
            version: listed.version.clone(),
        };
        asked += 1;
        let checker = builder.clone();
        let looked_up = pin.clone();
        match tokio::task::spawn_blocking(move || checker.check_exists(&looked_up)).await? {
            Ok(()) => state::write_atomic(&marker, b"")?,
            // An index that cannot be reached (or, offline, a cold cache) says
            // nothing about the version: the cells that need it fail as they build.
            Err(BuildError::Refused(why)) if builder.says_nothing_of_the_version(&why) => {
                continue;
            }
            Err(BuildError::Refused(why)) => {
                let place = (config.path.as_path(), listed.line, listed.key.as_str());
                let hint = "; list a version it has";
                return Err(not_installable(builder, place, &pin, hint, &why).into());
            }
            // Offline with a cold cache: the cells that need it say so.
            Err(BuildError::Unavailable(_) | BuildError::NotHeld(_)) => continue,
            Err(BuildError::Harness(err)) => return Err(err),
        }
    }
    if asked > 0 {
        events(&RunEvent::VersionsChecked { count: asked });
    }
    Ok(())
}

/// Every package the matrix lists must be one the service installs: a
/// package nothing requires (a typo, `requests` on a service that does not
/// use it) would make cells that change nothing and fail late. Refused with
/// its line before any cell is built. When the baseline cannot be resolved,
/// the run itself says so.
pub(super) async fn check_matrix_packages(
    builder: &Builder,
    config: &Config,
) -> anyhow::Result<()> {
    // A package the baseline file names is installed: nothing to resolve
    // (and, offline, nothing fetched) for the common case.
    let baseline_file = builder.baseline();
    let named = |listed: &&crate::input::config::Listed| {
        baseline_file.pinned_version(&listed.package).is_some()
            || baseline_file
                .requirements
                .iter()
                .any(|declared| declared.package() == listed.package)
    };
    if config.matrix.listed.iter().all(|listed| named(&listed)) {
        return Ok(());
    }
    let resolving = builder.clone();
    let Ok(Ok(baseline)) = tokio::task::spawn_blocking(move || resolving.resolve_baseline()).await
    else {
        return Ok(());
    };
    let Some(stranger) = config
        .matrix
        .listed
        .iter()
        .find(|listed| !baseline.set.packages.contains_key(&listed.package))
    else {
        return Ok(());
    };
    Err(source::InputError {
        path: config.path.clone(),
        line: stranger.line,
        column: 1,
        key: format!("matrix.packages.{}", stranger.package),
        message: format!(
            "{} is not installed by the service: its baseline ({}) resolves no such package, so a cell pinning it would change nothing; list a package the service depends on",
            stranger.package,
            crate::sys::state::relative(&builder.baseline().path, config.base_dir())
        ),
    }
    .into())
}

/// Outside a pull request, every version the baseline pins must be one the
/// index offers: a lock (or requirements file) pinning a version the index
/// no longer has, or has yanked, is bad input at its line, refused before
/// anything is built rather than failing every cell. In a pull request the
/// base's pins are what the change moves away from (a bump off a yanked
/// version is the fix), so they are not refused. One look-up for all pins,
/// remembered for an hour.
pub(super) async fn check_baseline_pins(builder: &Builder, dirs: &StateDirs) -> anyhow::Result<()> {
    let baseline = builder.baseline();
    let mut pins: Vec<String> = baseline
        .pins
        .iter()
        .map(|pin| format!("{}=={}", pin.package, pin.version))
        .collect();
    pins.sort();
    let digest = env::hash(&["baseline-pins", &pins.join("\n")]);
    let marker = dirs
        .index_dir()
        .join("exists")
        .join(format!("baseline-{}", &digest[..16]));
    if pins.is_empty() || found_lately(&marker) {
        return Ok(());
    }
    let checker = builder.clone();
    match tokio::task::spawn_blocking(move || checker.check_baseline_offered()).await? {
        Ok(()) => state::write_atomic(&marker, b"")?,
        Err(BuildError::Refused(why)) if !builder.says_nothing_of_the_version(&why) => {
            let said = why.to_lowercase();
            // The first pin uv names; when none can be told, the cells say it.
            let Some(declared) = baseline.pins.iter().find(|pin| {
                said.contains(&format!("{}=={}", pin.package, pin.version).to_lowercase())
            }) else {
                return Ok(());
            };
            let pin = crate::model::cell::Pin {
                package: declared.package.clone(),
                version: declared.version.clone(),
            };
            let place = (
                declared.path.as_path(),
                declared.line,
                declared.package.as_str(),
            );
            let hint = match crate::input::lock::LockKind::of(&baseline.path) {
                Some(_) => "; update the lock to a version it has",
                None => "; pin a version it has",
            };
            return Err(not_installable(builder, place, &pin, hint, &why).into());
        }
        // Unreachable, offline with a cold cache, or a refusal that names no
        // version: the baseline's resolution says what it is.
        Err(BuildError::Refused(_) | BuildError::Unavailable(_) | BuildError::NotHeld(_)) => {}
        Err(BuildError::Harness(err)) => return Err(err),
    }
    Ok(())
}

/// A look-up marker written within the index answers' time to live.
fn found_lately(marker: &Path) -> bool {
    std::fs::metadata(marker)
        .and_then(|meta| meta.modified())
        .ok()
        .and_then(|modified| modified.elapsed().ok())
        .is_some_and(|age| age < index::DEFAULT_TTL)
}

/// A pin the index (or registry) refuses, as bad input at its (file, line,
/// key), in the resolver's words.
pub(super) fn not_installable(
    builder: &Builder,
    (path, line, key): (&Path, usize, &str),
    pin: &crate::model::cell::Pin,
    hint: &str,
    refusal: &str,
) -> source::InputError {
    source::InputError {
        path: path.to_owned(),
        line,
        column: 1,
        key: key.to_owned(),
        message: format!(
            "{pin} cannot be installed from the {}{hint}:\n{}",
            builder.registry_name(),
            refusal
        ),
    }
}

/// A version a change asks for must exist on the index (registry), or the
/// change is bad input: exit 2 naming the line, before anything is built.
pub(super) async fn check_versions_exist(
    builder: &Builder,
    after: &BaselineFile,
    changes: &[pr::PinChange],
) -> anyhow::Result<()> {
    for change in changes {
        let Some(version) = change.after.clone() else {
            continue;
        };
        let pin = crate::model::cell::Pin {
            package: change.package.clone(),
            version,
        };
        let checker = builder.clone();
        let asked = pin.clone();
        match tokio::task::spawn_blocking(move || checker.check_exists(&asked)).await? {
            Ok(()) => {}
            Err(BuildError::Refused(why)) => {
                let (path, line) = after.origin_of(&pin).unwrap_or((after.path.as_path(), 1));
                let key = pin.package.to_string();
                return Err(not_installable(builder, (path, line, &key), &pin, "", &why).into());
            }
            Err(BuildError::Unavailable(_) | BuildError::NotHeld(_)) => {}
            Err(BuildError::Harness(err)) => return Err(err),
        }
    }
    Ok(())
}

/// Every profile a scenario names must exist in the config.
pub(super) fn check_scenario_profiles(
    config: &Config,
    scenarios: &[Scenario],
) -> Result<(), source::InputError> {
    for scenario in scenarios {
        for (index, profile) in scenario.profiles.iter().enumerate() {
            if config.profile(profile).is_none() {
                let known: Vec<_> = config
                    .profiles
                    .iter()
                    .map(|profile| profile.name.as_str())
                    .collect();
                return Err(source::InputError {
                    path: scenario.path.clone(),
                    line: scenario.profiles_line,
                    column: 1,
                    key: format!("profiles[{index}]"),
                    message: format!(
                        "no profile `{profile}` in {}; known: {}",
                        config.path.display(),
                        known.join(", ")
                    ),
                });
            }
        }
    }
    Ok(())
}

/// The requirements files that declare the baseline: the top file and its
/// includes. A `pyproject.toml` is not one: it may hold more than pins.
pub(super) fn pin_files(config: &Config, baseline: &BaselineFile) -> Vec<PathBuf> {
    if config.service.baseline.file_name() == Some(std::ffi::OsStr::new("pyproject.toml")) {
        return Vec::new();
    }
    std::iter::once(config.service.baseline.clone())
        .chain(
            baseline
                .requirements
                .iter()
                .map(|declared| declared.path.clone()),
        )
        .collect()
}

/// Connects to PostgreSQL, or starts the harness's own cluster in the
/// background, when any planned run's profile uses it; `jobs` databases
/// per template are made ahead on it.
pub(super) async fn start_postgres(
    config: &Config,
    scenarios: &[Scenario],
    plan: &Plan,
    database_url: Option<&str>,
    templates: &Path,
    jobs: usize,
    events: &Events,
) -> anyhow::Result<Option<Arc<DatabasesAhead>>> {
    let needed = plan.cells.iter().any(|cell| {
        crate::run::scenario_runs(scenarios, &cell.profile)
            .iter()
            .any(|run| {
                config
                    .profile(&run.profile)
                    .is_some_and(|profile| profile.database == config::DatabaseKind::Postgres)
            })
    });
    if !needed {
        return Ok(None);
    }
    let Some(url) = database_url else {
        // Missing programs are said at once; the rest of the start goes
        // on beside the first runs.
        db::find_tools()?;
        events(&RunEvent::StartingPostgres);
        let grace = config.timeouts.shutdown_grace;
        let templates = templates.to_owned();
        let events = events.clone();
        let starting = tokio::task::spawn_blocking(move || {
            let postgres = db::Postgres::start_cluster(grace, Some(&templates))?;
            events(&RunEvent::Postgres {
                description: postgres.describe(),
            });
            Ok(postgres)
        });
        return Ok(Some(DatabasesAhead::starting(starting, jobs)));
    };
    let url = url.to_owned();
    let postgres = tokio::task::spawn_blocking(move || db::Postgres::external(&url)).await??;
    events(&RunEvent::Postgres {
        description: postgres.describe(),
    });
    if postgres.password().is_empty() {
        check_no_empty_password(config)?;
    }
    Ok(Some(DatabasesAhead::new(Arc::new(postgres), jobs)))
}

/// A server named without a password fills `{db_password}` with nothing: a
/// service given an empty password would fail as if broken. Refused up front,
/// naming where the placeholder is used.
pub(super) fn check_no_empty_password(config: &Config) -> anyhow::Result<()> {
    const PLACEHOLDER: &str = "{db_password}";
    let in_command = config
        .service
        .command
        .iter()
        .chain(config.service.setup.iter().flatten())
        .any(|arg| arg.contains(PLACEHOLDER));
    let in_env = config
        .profiles
        .iter()
        .filter(|profile| profile.database == config::DatabaseKind::Postgres)
        .find_map(|profile| {
            profile
                .env
                .iter()
                .find(|(_, value)| value.contains(PLACEHOLDER))
                .map(|(name, _)| format!("profile `{}` sets {name} from it", profile.name))
        });
    let used = match (in_command, in_env) {
        (true, _) => Some("the service's command uses it".to_owned()),
        (false, found) => found,
    };
    if let Some(used) = used {
        return Err(SettingError::new(
            Setting::DatabaseUrl,
            format!(
                "the PostgreSQL server's URL names no password, so {PLACEHOLDER} would be empty ({used}); \
                 put the password in the URL: postgresql://USER:PASSWORD@HOST:PORT/DB"
            ),
        )
        .into());
    }
    Ok(())
}

/// `--offline` with a cache that lacks the baseline's packages can check
/// nothing: said once, with what to do, before any cell runs (exit 2).
pub(super) async fn check_offline_cache(builder: &Builder) -> anyhow::Result<()> {
    let resolving = builder.clone();
    match tokio::task::spawn_blocking(move || resolving.resolve_baseline()).await? {
        Err(BuildError::Unavailable(said)) => {
            let missing = said
                .split(" was not found in the cache")
                .next()
                .and_then(|before| before.split_whitespace().last())
                .filter(|_| said.contains(" was not found in the cache"))
                .map(|package| format!(" ({package} is not there)"))
                .unwrap_or_default();
            Err(SettingError::new(
                Setting::Offline,
                format!(
                    "offline, and the cache does not hold the baseline's packages{missing}: \
                     run once online to fill it"
                ),
            )
            .into())
        }
        _ => Ok(()),
    }
}
