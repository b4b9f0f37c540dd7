//! A fresh database per scenario run: a SQLite file in its scratch folder,
//! or a PostgreSQL database leased from those made ahead, copied from a
//! template where the setup commands ran once per environment and profile.

use std::path::{Path, PathBuf};

use super::RunContext;
use super::start::{Launched, launch, placeholders};
use crate::env::Environment;
use crate::exec::db::Database;
use crate::exec::db_ahead::DatabaseLease;
use crate::exec::service::{self};
use crate::input::config::DatabaseKind;
use crate::model::cell::Cell;

/// With PostgreSQL, the setup commands run once per environment and profile,
/// into a template database; each scenario run's database is a copy of it
/// (`createdb --template`). Their output goes to `setup@PROFILE.log` beside
/// the runs' logs. The template's name, or why the setup failed.
pub(super) async fn template_database(
    ctx: &RunContext,
    cell: &Cell,
    environment: &Environment,
    service_dir: &Path,
    profile: &crate::input::config::Profile,
) -> Result<(String, PathBuf), (String, PathBuf)> {
    let log = ctx
        .settings
        .dirs
        .logs_dir()
        .join(&cell.id)
        .join(format!("setup@{}.log", profile.name));
    let once = ctx
        .state
        .templates
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(format!("{}@{}", environment.id, profile.name))
        .or_default()
        .clone();
    let made = once
        .get_or_init(|| async {
            let databases = ctx
                .services
                .databases
                .clone()
                .ok_or_else(|| "no PostgreSQL server was started for this run".to_owned())?;
            let database = databases
                .keep()
                .await
                .map_err(|err| format!("cannot make the template database: {err:#}"))?;
            if let Some(dir) = log.parent() {
                fs_err::create_dir_all(dir).map_err(|err| err.to_string())?;
            }
            let launched = Launched {
                cell: &cell.name,
                environment,
                service_dir,
                env: &profile.env,
                database: &database,
                preloader: None,
                log: &log,
                template_note: None,
            };
            let port = service::free_port().map_err(|err| err.to_string())?;
            let placeholders = placeholders(ctx, &launched, port);
            let launch = launch(ctx, &launched, &placeholders, port);
            tokio::task::block_in_place(|| {
                service::run_setup(&launch, &ctx.settings.config.service.setup, None)
            })?;
            match database {
                Database::Postgres { name, .. } => Ok(name),
                Database::Sqlite { .. } => Err("a template needs PostgreSQL".to_owned()),
            }
        })
        .await
        .clone();
    match made {
        Ok(name) => Ok((name, log)),
        Err(reason) => Err((reason, log)),
    }
}

/// Waits for the databases being made and dropped, then drops those no
/// run took and the template databases (on a server the harness did not
/// start, nothing may be left behind).
pub(crate) async fn settle_databases(ctx: &RunContext) {
    if let Some(databases) = &ctx.services.databases {
        databases.settle().await;
    }
}

/// A scenario run's database: a SQLite file in its scratch folder, or a
/// PostgreSQL database leased until the run ends.
pub(super) enum FreshDatabase {
    Sqlite(Database),
    Postgres(DatabaseLease),
}

/// A database nobody has used, of the profile's kind.
pub(super) async fn fresh_database(
    ctx: &RunContext,
    kind: DatabaseKind,
    cell: &str,
    key: &str,
    template: Option<&str>,
) -> anyhow::Result<FreshDatabase> {
    match kind {
        DatabaseKind::Sqlite => {
            let dir = ctx.settings.scratch.join(cell);
            crate::sys::state::unless_quitting(|| Ok(fs_err::create_dir_all(&dir)?))?;
            Ok(FreshDatabase::Sqlite(Database::fresh_sqlite(&dir, key)))
        }
        DatabaseKind::Postgres => {
            let databases =
                ctx.services.databases.as_ref().ok_or_else(|| {
                    anyhow::anyhow!("no PostgreSQL server was started for this run")
                })?;
            Ok(FreshDatabase::Postgres(databases.take(template).await?))
        }
    }
}

impl FreshDatabase {
    /// The database itself, of either kind.
    pub(super) fn database(&self) -> &Database {
        match self {
            FreshDatabase::Sqlite(database) => database,
            FreshDatabase::Postgres(lease) => &lease.database,
        }
    }
}
