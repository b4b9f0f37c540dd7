//! A fresh database for every scenario run, so no run sees another's data.
//!
//! SQLite: a new file in the run's private folder. PostgreSQL: a throwaway
//! cluster the harness starts for the run (initdb into a folder in shared
//! memory where it has room, else the temp folder; Unix socket only, fsync
//! off), or a server the user names with
//! `--database-url`. Either way each scenario run gets its own database,
//! created before and dropped after. The cluster dies with the harness.
//!
//! No other local user reaches the harness's cluster. Its folder belongs to
//! the harness's user and only that user writes in it (the server's log is
//! there); the data and the socket are in folders of their own, mode 0700,
//! so only the server's account (and root) may connect. initdb refuses
//! root, so a root harness runs the server as a system account of its own
//! (`postgres`, which PostgreSQL's packages make, else one it makes), never
//! as `nobody`, which any process may run as.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::model::setting::{Setting, SettingError};
use crate::sys::process::{self, GroupChild};

/// Connection settings a service gets through placeholders.
#[derive(Debug, Clone)]
pub enum Database {
    Sqlite {
        path: PathBuf,
    },
    Postgres {
        /// A host name, or the folder holding the server's Unix socket.
        host: String,
        port: u16,
        user: String,
        password: String,
        name: String,
    },
}

impl Database {
    /// A database file that does not exist yet, inside `dir` (the run's private folder).
    pub fn fresh_sqlite(dir: &Path, name: &str) -> Database {
        Database::Sqlite {
            path: dir.join(format!("{name}.sqlite3")),
        }
    }

    /// Values for the `{sqlite_path}`, `{db_*}` and `{database_url}` placeholders.
    pub fn placeholders(&self) -> Vec<(&'static str, String)> {
        match self {
            Database::Sqlite { path } => vec![
                ("sqlite_path", path.display().to_string()),
                ("database_url", format!("sqlite:///{}", path.display())),
            ],
            Database::Postgres {
                host,
                port,
                user,
                password,
                name,
            } => {
                let url = if host.starts_with('/') {
                    format!("postgresql://{user}:{password}@/{name}?host={host}&port={port}")
                } else {
                    format!("postgresql://{user}:{password}@{host}:{port}/{name}")
                };
                vec![
                    ("db_host", host.clone()),
                    ("db_port", port.to_string()),
                    ("db_user", user.clone()),
                    ("db_password", password.clone()),
                    ("db_name", name.clone()),
                    ("database_url", url),
                ]
            }
        }
    }
}

/// A PostgreSQL server the harness may create and drop databases on.
pub struct Postgres {
    tools: PathBuf,
    host: String,
    port: u16,
    user: String,
    password: String,
    /// Set when the harness started the server; dropping it stops the server.
    owned: Option<OwnedCluster>,
}

struct OwnedCluster {
    server: GroupChild,
    /// Data and socket; removed after the server has stopped.
    dir: crate::sys::state::TempDir,
    /// PostgreSQL 15 or later: a database is made by copying its template's
    /// files (`STRATEGY FILE_COPY`), not block by block through the WAL,
    /// which costs the server three times the CPU. Its checkpoints cost
    /// nothing on a cluster without fsync.
    file_copy: bool,
}

static NEXT_DATABASE: AtomicU64 = AtomicU64::new(1);

impl Postgres {
    /// Starts a throwaway cluster on a Unix socket in a private folder.
    ///
    /// With `templates` (a cache folder), the data folder is a copy of one
    /// initdb made earlier for the same PostgreSQL and owner: initdb takes
    /// about a second, a copy a few tens of milliseconds.
    pub fn start_cluster(grace: Duration, templates: Option<&Path>) -> anyhow::Result<Postgres> {
        let tools = find_tools()?;
        let dir = crate::sys::state::TempDir::registered(
            tempfile::Builder::new()
                .prefix(crate::sys::sweep::CLUSTER_PREFIX)
                .tempdir_in(crate::sys::sweep::cluster_parent())
                .context("cannot create a folder for the PostgreSQL cluster")?,
        );
        crate::sys::sweep::claim(dir.path())?;
        let data = dir.path().join("data");
        let socket = dir.path().join("socket");
        let owner = cluster_account()?;
        private_folder(&socket, owner)?;
        if owner.is_some() {
            // The server's account passes through to its two folders and
            // can write nothing here: the log stays the harness's own.
            fs_err::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))?;
        }
        let as_owner = move |expression: duct::Expression| match owner {
            Some((uid, gid)) => expression.before_spawn(move |command| {
                use std::os::unix::process::CommandExt;
                command.uid(uid.as_raw()).gid(gid.as_raw());
                Ok(())
            }),
            None => expression,
        };
        let password = format!("{:016x}", fastrand::u64(..));
        crate::sys::redact::register(&crate::sys::redact::Secrets::new([(
            "db_password",
            password.as_str(),
        )]));
        let template = match templates {
            Some(templates) => Some(templates.join(template_key(&tools, owner)?)),
            None => None,
        };
        match &template {
            Some(template) if template.join(TEMPLATE_COMPLETE).exists() => {
                copy_preserving(&template.join("data"), &data)?;
            }
            _ => {
                private_folder(&data, owner)?;
                initdb(&tools, dir.path(), &data, as_owner)?;
                if let Some(template) = &template {
                    // A cache that cannot be written only costs the next run a second.
                    let _ = save_template(&data, template);
                }
            }
        }
        let port = crate::exec::service::free_port()?;
        let log = dir.path().join("server.log");
        let server = process::spawn(
            as_owner(duct::cmd(
                tools.join("postgres"),
                [
                    "-D",
                    &data.to_string_lossy(),
                    "-k",
                    &socket.to_string_lossy(),
                    "-p",
                    &port.to_string(),
                    "-c",
                    "listen_addresses=",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    // Its shared memory segments as files in the data
                    // folder, which goes with the cluster, rather than in
                    // /dev/shm, where a SIGKILLed server leaves them.
                    "-c",
                    "dynamic_shared_memory_type=mmap",
                ],
            ))
            .dir(dir.path())
            .stdin_null()
            .stderr_to_stdout()
            .stdout_path(&log),
            grace,
        )?;
        let cluster = Postgres {
            tools,
            host: socket.display().to_string(),
            port,
            user: "postgres".to_owned(),
            password,
            owned: Some(OwnedCluster {
                server,
                dir,
                file_copy: major_version(&data).is_some_and(|major| major >= 15),
            }),
        };
        cluster.wait_ready(&log)?;
        Ok(cluster)
    }

    /// A server the user runs, from `postgresql://user:password@host:port/db`.
    pub fn external(url: &str) -> anyhow::Result<Postgres> {
        let blame = |message: String| SettingError::new(Setting::DatabaseUrl, message);
        let parsed = url::Url::parse(url)
            .map_err(|err| blame(format!("the PostgreSQL server's URL `{url}`: {err}")))?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(blame(
                "a PostgreSQL server's URL must start with postgresql://".to_owned(),
            )
            .into());
        }
        let decode = |text: &str| {
            percent_encoding::percent_decode_str(text)
                .decode_utf8()
                .map(|text| text.into_owned())
                .unwrap_or_else(|_| text.to_owned())
        };
        // libpq's form for a socket folder: postgresql://user@localhost/db?host=/run/postgresql
        let query = |key: &str| {
            parsed
                .query_pairs()
                .find(|(name, _)| name == key)
                .map(|(_, value)| value.into_owned())
        };
        let host = query("host")
            .or_else(|| {
                parsed
                    .host_str()
                    .filter(|host| !host.is_empty())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "localhost".to_owned());
        let port = match query("port") {
            Some(port) => port.parse().map_err(|_| {
                blame(format!(
                    "the PostgreSQL server's URL: `{port}` is not a port"
                ))
            })?,
            None => parsed.port().unwrap_or(5432),
        };
        let postgres = Postgres {
            tools: find_client_tools()?,
            host,
            port,
            user: match parsed.username() {
                "" => "postgres".to_owned(),
                user => decode(user),
            },
            password: parsed.password().map(decode).unwrap_or_default(),
            owned: None,
        };
        crate::sys::redact::register(&crate::sys::redact::Secrets::new([(
            "db_password",
            postgres.password.as_str(),
        )]));
        let probe = process::run_captured(
            postgres.client(
                "psql",
                &["--dbname", "postgres", "--command", "SELECT 1", "--quiet"],
            ),
            Duration::from_secs(30),
        )?
        .ok_or_else(|| {
            SettingError::new(
                Setting::DatabaseUrl,
                "the PostgreSQL server given did not answer within 30s",
            )
        })?;
        if !probe.status.success() {
            return Err(SettingError::new(
                Setting::DatabaseUrl,
                format!(
                    "cannot use the PostgreSQL server given at {}:{}:\n{}",
                    postgres.host,
                    postgres.port,
                    String::from_utf8_lossy(&probe.stderr).trim()
                ),
            )
            .into());
        }
        Ok(postgres)
    }

    /// The settings of the server's own `postgres` database, from which
    /// others create and drop databases.
    pub fn admin(&self) -> Database {
        Database::Postgres {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            password: self.password.clone(),
            name: "postgres".to_owned(),
        }
    }

    /// A URL for this server that [`Postgres::external`] accepts.
    pub fn url(&self) -> String {
        let encode = |text: &str| {
            percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
        };
        format!(
            "postgresql://{}:{}@localhost/postgres?host={}&port={}",
            encode(&self.user),
            encode(&self.password),
            encode(&self.host),
            self.port
        )
    }

    /// Names of the databases the harness made and has not dropped (for leak checks).
    pub fn leftover_databases(&self) -> anyhow::Result<Vec<String>> {
        let query = "SELECT datname FROM pg_database WHERE datname LIKE 'upgrade_check_%'";
        let output = process::run_captured(
            self.client(
                "psql",
                &[
                    "--dbname",
                    "postgres",
                    "--tuples-only",
                    "--no-align",
                    "--command",
                    query,
                ],
            ),
            Duration::from_secs(30),
        )?
        .context("psql did not answer within 30s")?;
        if !output.status.success() {
            bail!(
                "psql failed:\n{}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .filter(|line| !line.is_empty())
            .collect())
    }

    fn client(&self, program: &str, args: &[&str]) -> duct::Expression {
        let port = self.port.to_string();
        let mut all = vec![
            "--host",
            &self.host,
            "--port",
            &port,
            "--username",
            &self.user,
            "--no-password",
        ];
        all.extend_from_slice(args);
        duct::cmd(self.tools.join(program), all)
            .env("PGPASSWORD", &self.password)
            .env("PGCONNECT_TIMEOUT", "5")
    }

    fn wait_ready(&self, log: &Path) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(owned) = &self.owned
                && let Ok(Some(status)) = owned.server.try_exit()
            {
                bail!(
                    "the PostgreSQL server exited during startup ({status}):\n{}",
                    crate::sys::log::log_tail(log, 20)
                );
            }
            let ready = process::run_captured(
                self.client(
                    "psql",
                    &["--dbname", "postgres", "--command", "SELECT 1", "--quiet"],
                ),
                Duration::from_secs(10),
            )?;
            if ready.is_some_and(|output| output.status.success()) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "the PostgreSQL server did not accept connections within 30s:\n{}",
                    crate::sys::log::log_tail(log, 20)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Creates a database no one has used, for one scenario run.
    pub fn create_database(&self, template: Option<&str>) -> anyhow::Result<Database> {
        let name = format!(
            "upgrade_check_{}_{}",
            std::process::id(),
            NEXT_DATABASE.fetch_add(1, Ordering::Relaxed)
        );
        let mut args = vec![name.as_str()];
        if let Some(template) = template {
            args.extend(["--template", template]);
        }
        if self.owned.as_ref().is_some_and(|owned| owned.file_copy) {
            args.extend(["--strategy", "file_copy"]);
        }
        let created = process::run_checked_uninterrupted(
            self.client("createdb", &args),
            Duration::from_secs(60),
            &format!("createdb {name}"),
        );
        if let Err(err) = created {
            // Timed out, it may still have made it: nothing may be left behind.
            self.drop_database_named(&name);
            return Err(err);
        }
        Ok(Database::Postgres {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            password: self.password.clone(),
            name,
        })
    }

    /// Drops a database made by [`Postgres::create_database`], closing its connections.
    pub fn drop_database(&self, database: &Database) {
        if let Database::Postgres { name, .. } = database {
            self.drop_database_named(name);
        }
    }

    /// Drops the database `name`, closing its connections.
    pub fn drop_database_named(&self, name: &str) {
        let _ = process::run_captured_uninterrupted(
            self.client("dropdb", &["--if-exists", "--force", name]),
            Duration::from_secs(60),
        );
    }

    /// The password the databases are reached with; empty when the server
    /// named by `--database-url` takes none.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Where the server is, for progress lines: `cluster /tmp/… (server pid N)`.
    pub fn describe(&self) -> String {
        match &self.owned {
            Some(owned) => format!(
                "cluster {} (server pid {}, socket in {})",
                owned.dir.path().display(),
                owned.server.pid(),
                self.host
            ),
            None => format!("server {}:{} as {}", self.host, self.port, self.user),
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(owned) = self.owned.take() {
            // The server first, then its files.
            drop(owned.server);
            drop(owned.dir);
        }
    }
}

/// Marks a template folder whose copy of the data folder is whole.
const TEMPLATE_COMPLETE: &str = "complete";

/// A fresh data folder, as the harness's clusters are made.
fn initdb(
    tools: &Path,
    dir: &Path,
    data: &Path,
    as_owner: impl Fn(duct::Expression) -> duct::Expression,
) -> anyhow::Result<()> {
    process::run_checked(
        as_owner(duct::cmd(
            tools.join("initdb"),
            [
                "--pgdata",
                &data.to_string_lossy(),
                "--auth",
                "trust",
                "--username",
                "postgres",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
            ],
        ))
        .dir(dir),
        Duration::from_secs(120),
        "initdb",
    )?;
    Ok(())
}

/// The major version of the cluster in `data`, from its `PG_VERSION`.
fn major_version(data: &Path) -> Option<u32> {
    std::fs::read_to_string(data.join("PG_VERSION"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Names the template of a PostgreSQL build and data folder owner.
fn template_key(
    tools: &Path,
    owner: Option<(nix::unistd::Uid, nix::unistd::Gid)>,
) -> anyhow::Result<String> {
    let version = process::run_checked(
        duct::cmd(tools.join("initdb"), ["--version"]),
        Duration::from_secs(30),
        "initdb --version",
    )?;
    let owner = owner.map_or_else(|| nix::unistd::geteuid().as_raw(), |(uid, _)| uid.as_raw());
    let mut hasher = Sha256::new();
    hasher.update(tools.as_os_str().as_encoded_bytes());
    hasher.update(&version.stdout);
    hasher.update(owner.to_le_bytes());
    Ok(format!(
        "template-{}",
        &hex::encode(hasher.finalize())[..16]
    ))
}

/// Keeps a copy of a freshly made data folder, whole or not at all: it is
/// copied beside the template's place and renamed into it.
fn save_template(data: &Path, template: &Path) -> anyhow::Result<()> {
    let parent = template
        .parent()
        .context("a template has a parent folder")?;
    fs_err::create_dir_all(parent)?;
    let staging = tempfile::Builder::new()
        .prefix(".template-")
        .tempdir_in(parent)?;
    copy_preserving(data, &staging.path().join("data"))?;
    fs_err::write(staging.path().join(TEMPLATE_COMPLETE), b"")?;
    // Another run may have saved the same template meanwhile; theirs is as good.
    if std::fs::rename(staging.path(), template).is_ok() {
        let _ = staging.keep();
    }
    Ok(())
}

/// Copies a data folder with its owner and modes (PostgreSQL insists on
/// both), as `cp -a` does.
fn copy_preserving(from: &Path, to: &Path) -> anyhow::Result<()> {
    process::run_checked(
        duct::cmd("cp", [OsStr::new("-a"), from.as_os_str(), to.as_os_str()]),
        Duration::from_secs(120),
        &format!("copying {} to {}", from.display(), to.display()),
    )?;
    Ok(())
}

/// The system account a root harness runs its cluster as, made when missing.
const CLUSTER_ACCOUNT: &str = "upgrade-check-db";

/// Who runs the cluster: nobody else when the harness is not root (None);
/// as root (initdb refuses root), the `postgres` account PostgreSQL's
/// packages make, else a system account of the harness's own, made now.
/// Never `nobody`: every process that dropped its privileges is `nobody`.
fn cluster_account() -> anyhow::Result<Option<(nix::unistd::Uid, nix::unistd::Gid)>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let account = || -> anyhow::Result<Option<nix::unistd::User>> {
        for name in ["postgres", CLUSTER_ACCOUNT] {
            if let Some(user) = nix::unistd::User::from_name(name)? {
                return Ok(Some(user));
            }
        }
        Ok(None)
    };
    let user = match account()? {
        Some(user) => user,
        None => {
            process::run_checked(
                duct::cmd(
                    "useradd",
                    [
                        "--system",
                        "--user-group",
                        "--no-create-home",
                        "--home-dir",
                        "/nonexistent",
                        "--shell",
                        "/usr/sbin/nologin",
                        CLUSTER_ACCOUNT,
                    ],
                ),
                Duration::from_secs(30),
                &format!(
                    "useradd {CLUSTER_ACCOUNT} (the account a root harness runs PostgreSQL as)"
                ),
            )?;
            account()?.with_context(|| format!("`useradd {CLUSTER_ACCOUNT}` made no account"))?
        }
    };
    Ok(Some((user.uid, user.gid)))
}

/// A folder only the cluster's account (or the harness's user) may enter.
fn private_folder(
    path: &Path,
    owner: Option<(nix::unistd::Uid, nix::unistd::Gid)>,
) -> anyhow::Result<()> {
    fs_err::create_dir(path)?;
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    if let Some((uid, gid)) = owner {
        nix::unistd::chown(path, Some(uid), Some(gid))
            .with_context(|| format!("cannot hand {} to the cluster's account", path.display()))?;
    }
    Ok(())
}

/// The folder with initdb and postgres: PATH first, then Debian's layout.
pub fn find_tools() -> anyhow::Result<PathBuf> {
    find_folder_with(&["initdb", "postgres", "createdb", "psql"]).ok_or_else(|| {
        SettingError::new(
            Setting::DatabaseUrl,
            "PostgreSQL's initdb and postgres were not found on PATH or in /usr/lib/postgresql/*/bin; \
             install PostgreSQL (Debian: apt-get install postgresql) or name a server of your own, \
             postgresql://user:password@host:port/db",
        )
        .into()
    })
}

fn find_client_tools() -> anyhow::Result<PathBuf> {
    find_folder_with(&["createdb", "dropdb", "psql"])
        .context("PostgreSQL's client tools (createdb, dropdb, psql) were not found; install postgresql-client")
}

fn find_folder_with(programs: &[&str]) -> Option<PathBuf> {
    let mut folders: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect())
        .unwrap_or_default();
    let mut debian: Vec<PathBuf> = fs_err::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    // Newest major version first.
    debian.sort_by_key(|path| {
        std::cmp::Reverse(
            path.parent()
                .and_then(|version| version.file_name())
                .and_then(|version| version.to_str())
                .and_then(|version| version.parse::<u32>().ok())
                .unwrap_or(0),
        )
    });
    folders.extend(debian);
    folders.into_iter().find(|folder| {
        programs
            .iter()
            .all(|program| folder.join(program).is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_s_major_version_is_read_from_its_data_folder() {
        let data = tempfile::tempdir().unwrap();
        assert_eq!(major_version(data.path()), None);
        fs_err::write(data.path().join("PG_VERSION"), "15\n").unwrap();
        assert_eq!(major_version(data.path()), Some(15));
    }
}
