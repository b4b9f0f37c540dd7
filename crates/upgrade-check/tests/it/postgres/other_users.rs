//! Another local user against the harness's own PostgreSQL cluster, as the
//! CI runs the harness (root) with `nobody` as the attacker.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use upgrade_check_core::internals::db::Postgres;

/// Runs `program args` as `nobody`.
fn as_nobody(program: &str, args: &[&str]) -> Output {
    Command::new("runuser")
        .args(["-u", "nobody", "--", program])
        .args(args)
        .current_dir("/")
        .output()
        .expect("runuser runs")
}

/// The folder holding the cluster's socket, and the cluster's own folder.
fn folders(cluster: &Postgres) -> (PathBuf, PathBuf) {
    let url = reqwest::Url::parse(&cluster.url()).unwrap();
    let socket = url
        .query_pairs()
        .find(|(key, _)| key == "host")
        .map(|(_, host)| PathBuf::from(host.into_owned()))
        .unwrap();
    let dir = socket.parent().unwrap().to_owned();
    (socket, dir)
}

fn mode_and_owner(path: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).unwrap();
    (meta.mode() & 0o7777, meta.uid())
}

#[test]
fn another_local_user_can_neither_plant_files_in_the_cluster_nor_connect_to_it() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: the attack needs a root harness and a second user (CI runs as root)");
        return;
    }
    let cluster = Postgres::start_cluster(std::time::Duration::from_secs(5), None).unwrap();
    let (socket, dir) = folders(&cluster);
    let port = reqwest::Url::parse(&cluster.url())
        .unwrap()
        .query_pairs()
        .find(|(key, _)| key == "port")
        .unwrap()
        .1
        .into_owned();

    // The folder where the harness writes the server's log is its own: no
    // one else may put a symlink there for root to follow.
    let (mode, owner) = mode_and_owner(&dir);
    assert_eq!(owner, 0, "{} belongs to the harness's user", dir.display());
    assert_eq!(
        mode & 0o022,
        0,
        "{} is writable by others: {mode:o}",
        dir.display()
    );
    let planted = dir.join("planted");
    let plant = as_nobody("ln", &["-s", "/etc/passwd", &planted.to_string_lossy()]);
    assert!(
        !plant.status.success(),
        "nobody planted a symlink in the cluster's folder"
    );
    assert!(!planted.exists());
    let log = dir.join("server.log");
    let (_, log_owner) = mode_and_owner(&log);
    assert_eq!(
        log_owner, 0,
        "the log is the harness's own file, not a link"
    );
    assert!(!std::fs::symlink_metadata(&log).unwrap().is_symlink());

    // The server runs as a system account, not as `nobody`.
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    for folder in [&socket, &dir.join("data")] {
        let (mode, owner) = mode_and_owner(folder);
        assert_eq!(mode, 0o700, "{}", folder.display());
        assert_ne!(
            owner,
            nobody.uid.as_raw(),
            "{} belongs to nobody",
            folder.display()
        );
    }

    // No connection: not as the superuser, not to list the databases.
    let psql = upgrade_check_core::internals::db::find_tools()
        .unwrap()
        .join("psql");
    let connect = as_nobody(
        &psql.to_string_lossy(),
        &[
            "--host",
            &socket.to_string_lossy(),
            "--port",
            &port,
            "--username",
            "postgres",
            "--no-password",
            "--dbname",
            "postgres",
            "--command",
            "SELECT datname FROM pg_database",
        ],
    );
    assert!(
        !connect.status.success(),
        "nobody connected to the cluster:\n{}",
        String::from_utf8_lossy(&connect.stdout)
    );
    // The harness itself still does.
    assert_eq!(cluster.leftover_databases().unwrap(), Vec::<String>::new());
}
