//! The service started once on its baseline, outside a check: `init`
//! proves a config with it, `record` puts its proxy in front of it,
//! `explore` asks it for its OpenAPI document. The baseline is built (or
//! reused) as a cell's would be, the service runs from a private copy of
//! its source with a fresh database of its profile's kind (SQLite, or
//! PostgreSQL on a throwaway cluster or `--database-url`'s server), its
//! setup commands run first, and everything it made goes when it stops.

use super::{Options, prepare};
use crate::env::BuildError;
use crate::exec::{db, replay, service};
use crate::input::baseline::BaselineFile;
use crate::input::config::{Config, DatabaseKind};
use crate::model::event::{Events, RunEvent};
use crate::sys::{log, state};

/// A service started on the baseline, healthy.
pub(super) struct Started {
    pub running: service::RunningService,
    /// The copy it runs from, its database and its log; removed on drop.
    scratch: state::TempDir,
    /// Its PostgreSQL database and the server it is on, when its profile
    /// asks for one.
    postgres: Option<(db::Postgres, db::Database)>,
    /// The environment it runs from, held so that `gc` leaves it alone.
    _environment: crate::env::Environment,
}

impl Started {
    /// Stops the service; its copy and database go with it.
    pub(super) async fn stop(self) {
        self.running.stop().await;
        drop(self.scratch);
        release(self.postgres).await;
    }
}

/// A throwaway cluster goes whole; a server of the user's keeps nothing
/// of the start.
async fn release(postgres: Option<(db::Postgres, db::Database)>) {
    if let Some((postgres, database)) = postgres {
        let _ = tokio::task::spawn_blocking(move || {
            postgres.drop_database(&database);
            drop(postgres);
        })
        .await;
    }
}

/// Builds the baseline of `config` and starts the service, healthy once one
/// of `health_paths` answers 2xx; `Ok(Err(why))` when the baseline does not
/// build or the service does not start (with its log's tail).
pub(super) async fn start(
    config: &Config,
    options: &Options,
    events: &Events,
    health_paths: &[String],
) -> anyhow::Result<Result<Started, String>> {
    let config_dir = config.path.parent().unwrap_or(std::path::Path::new(""));
    let dirs = super::state_dirs(options, config_dir)?;
    let baseline = match BaselineFile::load_with(&config.service.baseline, &config.service.groups) {
        Ok(baseline) => baseline,
        Err(err) => return Ok(Err(err.to_string())),
    };
    let builder = prepare::builder(config, options, &dirs, events, baseline, None).await?;
    let building = builder.clone();
    let built = tokio::task::spawn_blocking(move || {
        let resolution = building.resolve_baseline()?;
        building.materialise(&resolution.set)
    })
    .await?;
    let environment = match built {
        Ok(environment) => environment,
        Err(BuildError::Refused(why) | BuildError::Unavailable(why) | BuildError::NotHeld(why)) => {
            return Ok(Err(format!("the baseline does not build:\n{why}")));
        }
        Err(BuildError::Harness(err)) => return Err(err),
    };
    let scratch = state::temp_dir()?;
    let service_dir = scratch.path().join("service");
    state::copy_tree(&config.service.root, &service_dir)?;
    environment.lay_into(&service_dir)?;
    let log_path = scratch.path().join("service.log");
    let port = service::free_port()?;
    let kind = config
        .profile(&config.service.profile)
        .map_or(DatabaseKind::Sqlite, |profile| profile.database);
    let postgres = match kind {
        DatabaseKind::Sqlite => None,
        DatabaseKind::Postgres => {
            let url = options.check.database_url.clone();
            let grace = config.timeouts.shutdown_grace;
            let templates = dirs.cache.join("postgres");
            let made = tokio::task::spawn_blocking(move || {
                let postgres = match url {
                    Some(url) => db::Postgres::external(&url)?,
                    None => db::Postgres::start_cluster(grace, Some(&templates))?,
                };
                let database = postgres.create_database(None)?;
                anyhow::Ok((postgres, database))
            });
            let (postgres, database) = made.await??;
            events(&RunEvent::Postgres {
                description: postgres.describe(),
            });
            Some((postgres, database))
        }
    };
    let database = match &postgres {
        Some((_, database)) => database.clone(),
        None => db::Database::Sqlite {
            path: scratch.path().join("db.sqlite3"),
        },
    };
    let secret = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let placeholders = service::Placeholders::for_start(
        &environment,
        port,
        &secret,
        &service_dir,
        database.placeholders(),
    );
    let env = config
        .profile(&config.service.profile)
        .map(|profile| profile.env.clone())
        .unwrap_or_default();
    let this = service::StartIn {
        cwd: &service_dir,
        log: &log_path,
        port,
        env: &env,
        placeholders: &placeholders,
    };
    let launch = service::Launch {
        health_paths,
        ..service::Launch::of(config, &environment, this)
    };
    // The setup commands first (migrations, seeds), as a check's runs have them.
    if !config.service.setup.is_empty()
        && let Err(why) = service::run_setup(&launch, &config.service.setup, None)
    {
        let tail = log::log_tail(&log_path, 20);
        drop(scratch);
        release(postgres).await;
        return Ok(Err(format!(
            "the setup commands failed: {why}; the log ends:\n{tail}"
        )));
    }
    Ok(match service::start(launch, &replay::client()).await {
        Ok(running) => Ok(Started {
            running,
            scratch,
            postgres,
            _environment: environment,
        }),
        Err(failure) => {
            let tail = log::log_tail(&failure.log, 20);
            drop(scratch);
            release(postgres).await;
            Err(format!(
                "{}; the service's log ends:\n{tail}",
                failure.reason
            ))
        }
    })
}
