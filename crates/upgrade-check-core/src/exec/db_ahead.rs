//! PostgreSQL databases made ahead of the scenario runs that take them and
//! dropped behind them, so that neither `createdb` nor `dropdb` waits on a
//! run's way. The harness's own cluster starts in the background too: runs
//! on SQLite go ahead meanwhile, and the first run that needs a database
//! waits for it (or gets its error).
//!
//! A run takes a ready database copied from its template (or makes one
//! then, when none is ready) and sets another in the making; as its lease
//! ends, its database is dropped in the background. [`DatabasesAhead::settle`]
//! waits for that work and drops what no run took: on a server the harness
//! does not own (`--database-url`), nothing is left, whether the run
//! finished, was interrupted or stopped at an error.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::task::JoinSet;

use crate::exec::db::{Database, Postgres};

/// The server once started (or why it did not start).
type Started = tokio::sync::OnceCell<Result<Arc<Postgres>, String>>;

/// A server being started in the background.
type Starting = tokio::task::JoinHandle<anyhow::Result<Postgres>>;

/// Databases made ahead on one server, by the template they copy.
pub(crate) struct DatabasesAhead {
    server: Started,
    starting: Mutex<Option<Starting>>,
    /// How many databases to keep ready per template: the runs at once.
    depth: usize,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// Ready databases by template (`None`: the server's default).
    ready: BTreeMap<Option<String>, Vec<Database>>,
    /// Databases being made, by template.
    making: BTreeMap<Option<String>, usize>,
    /// Databases kept until the run ends (templates the setup ran into).
    kept: Vec<Database>,
    /// Creations and drops under way, waited for by `settle`.
    work: Option<JoinSet<()>>,
    /// No more is made ahead; what is made from now on is dropped.
    settled: bool,
}

/// A scenario run's PostgreSQL database for as long as the run needs it;
/// dropped in the background when the lease ends, however it ends (a
/// finished run, an early return, a cancelled task).
pub(crate) struct DatabaseLease {
    pub database: Database,
    /// It was ready when the run asked for it.
    pub made_ahead: bool,
    ahead: Arc<DatabasesAhead>,
}

impl Drop for DatabaseLease {
    fn drop(&mut self) {
        self.ahead.drop_behind(self.database.clone());
    }
}

impl DatabasesAhead {
    /// On a server that is up.
    pub(crate) fn new(server: Arc<Postgres>, depth: usize) -> Arc<DatabasesAhead> {
        DatabasesAhead::on(Started::new_with(Some(Ok(server))), None, depth)
    }

    /// On a server `starting` in the background.
    pub(crate) fn starting(starting: Starting, depth: usize) -> Arc<DatabasesAhead> {
        DatabasesAhead::on(Started::new(), Some(starting), depth)
    }

    fn on(server: Started, starting: Option<Starting>, depth: usize) -> Arc<DatabasesAhead> {
        Arc::new(DatabasesAhead {
            server,
            starting: Mutex::new(starting),
            depth: depth.max(1),
            state: Arc::default(),
        })
    }

    /// The server, once it has started.
    async fn server(&self) -> anyhow::Result<Arc<Postgres>> {
        let started = self
            .server
            .get_or_init(|| async {
                let starting = self
                    .starting
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
                match starting {
                    Some(starting) => match starting.await {
                        Ok(Ok(server)) => Ok(Arc::new(server)),
                        Ok(Err(err)) => Err(format!("{err:#}")),
                        Err(err) => Err(format!("starting PostgreSQL stopped: {err}")),
                    },
                    None => Err("PostgreSQL was not started".to_owned()),
                }
            })
            .await;
        started.clone().map_err(anyhow::Error::msg)
    }

    /// The server, when it is known to be up (a database was made on it).
    fn started(&self) -> Option<Arc<Postgres>> {
        self.server.get()?.as_ref().ok().cloned()
    }

    /// A database no run has used, copied from `template`: one made ahead
    /// when one is ready, else made now. Another is set in the making.
    pub(crate) async fn take(
        self: &Arc<Self>,
        template: Option<&str>,
    ) -> anyhow::Result<DatabaseLease> {
        let key = template.map(str::to_owned);
        let ready = self.lock().ready.get_mut(&key).and_then(Vec::pop);
        let made_ahead = ready.is_some();
        let database = match ready {
            Some(database) => database,
            None => self.make_now(key.clone(), false).await?,
        };
        self.make_ahead(key);
        Ok(DatabaseLease {
            database,
            made_ahead,
            ahead: self.clone(),
        })
    }

    /// A database made now and kept until [`DatabasesAhead::settle`]: a
    /// template for the setup commands to run into.
    pub(crate) async fn keep(&self) -> anyhow::Result<Database> {
        self.make_now(None, true).await
    }

    /// Makes a database from `template` as a job `settle` waits for: a run
    /// cancelled while it is made (Ctrl-C) does not lose it, the job drops
    /// it (or `settle` does, when `kept`).
    async fn make_now(&self, template: Option<String>, kept: bool) -> anyhow::Result<Database> {
        let server = self.server().await?;
        let (made, receive) = tokio::sync::oneshot::channel();
        let shared = self.state.clone();
        spawn(&mut self.lock(), move || {
            let database = server.create_database(template.as_deref());
            if let (Ok(database), true) = (&database, kept) {
                let mut state = shared.lock().unwrap_or_else(|e| e.into_inner());
                state.kept.push(database.clone());
            }
            if let Err(Ok(unwanted)) = made.send(database)
                && !kept
            {
                server.drop_database(&unwanted);
            }
        });
        receive
            .await
            .map_err(|_| anyhow::anyhow!("the database was not made: the run is ending"))?
    }

    /// Sets databases copied from `template` in the making until `depth`
    /// are ready or being made.
    fn make_ahead(&self, template: Option<String>) {
        let Some(server) = self.started() else {
            return;
        };
        let mut state = self.lock();
        if state.settled {
            return;
        }
        let ready = state.ready.get(&template).map_or(0, Vec::len);
        let making = state.making.get(&template).copied().unwrap_or(0);
        for _ in ready + making..self.depth {
            *state.making.entry(template.clone()).or_default() += 1;
            let server = server.clone();
            let shared = self.state.clone();
            let template = template.clone();
            spawn(&mut state, move || {
                let made = server.create_database(template.as_deref());
                let mut state = shared.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(making) = state.making.get_mut(&template) {
                    *making -= 1;
                }
                match made {
                    Ok(database) if state.settled => {
                        drop(state);
                        server.drop_database(&database);
                    }
                    Ok(database) => state.ready.entry(template).or_default().push(database),
                    // The run that needs it makes its own and says why it cannot.
                    Err(_) => {}
                }
            });
        }
    }

    /// Drops `database` in the background.
    fn drop_behind(&self, database: Database) {
        let Some(server) = self.started() else {
            return;
        };
        let mut state = self.lock();
        match tokio::runtime::Handle::try_current() {
            Ok(_) => spawn(&mut state, move || server.drop_database(&database)),
            Err(_) => server.drop_database(&database),
        }
    }

    /// Waits for every creation and drop under way, then drops the
    /// databases no run took and those kept. Nothing is made ahead after
    /// this; leases still held drop theirs as they end.
    pub(crate) async fn settle(&self) {
        self.lock().settled = true;
        // A cluster still starting is let finish, so that it stops whole.
        let _ = self.server().await;
        self.finish_work().await;
        let unused: Vec<Database> = {
            let mut state = self.lock();
            let ready = std::mem::take(&mut state.ready).into_values().flatten();
            ready.chain(std::mem::take(&mut state.kept)).collect()
        };
        for database in unused {
            self.drop_behind(database);
        }
        self.finish_work().await;
    }

    async fn finish_work(&self) {
        loop {
            let Some(mut work) = self.lock().work.take() else {
                break;
            };
            while work.join_next().await.is_some() {}
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs `job` on the blocking threads, where `settle` waits for it.
fn spawn(state: &mut State, job: impl FnOnce() + Send + 'static) {
    state
        .work
        .get_or_insert_with(JoinSet::new)
        .spawn_blocking(job);
}
