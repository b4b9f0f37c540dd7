//! Finds what a dead run left behind — processes, PostgreSQL clusters, temp
//! folders — and removes it.
//!
//! A run that is SIGKILLed cannot clean up. Every folder a run makes holds an
//! `owner` file (pid and start time of the harness), and every child carries
//! the run's marker in its environment; the next run kills the processes
//! whose run is dead and removes the folders whose owner is dead. Nothing
//! that belongs to a live run, this one or another, is touched.

use std::path::{Path, PathBuf};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use crate::sys::process::RUN_MARKER;

const OWNER_FILE: &str = "owner";
/// Prefix of the PostgreSQL cluster folders, in [`cluster_parent`].
pub(crate) const CLUSTER_PREFIX: &str = "upgrade-check-pg-";

/// Shared memory, where it has room: a cluster's files are made and removed
/// with every database, which on a disk's file system costs more CPU than
/// the services under test.
const SHARED_MEMORY: &str = "/dev/shm";
/// The room shared memory must have left for a cluster to go there.
const SHARED_MEMORY_ROOM: u64 = 2 << 30;

/// Where the harness's own PostgreSQL clusters go: shared memory (a tmpfs)
/// where it has 2 GiB free, the system temp folder otherwise.
pub(crate) fn cluster_parent() -> PathBuf {
    let room = nix::sys::statvfs::statvfs(SHARED_MEMORY).map(|stats| {
        stats
            .blocks_available()
            .saturating_mul(stats.fragment_size())
    });
    let writable = nix::unistd::access(SHARED_MEMORY, nix::unistd::AccessFlags::W_OK).is_ok();
    match room {
        Ok(room) if writable && room >= SHARED_MEMORY_ROOM => PathBuf::from(SHARED_MEMORY),
        _ => std::env::temp_dir(),
    }
}

/// What a sweep removed.
#[derive(Debug, Default)]
pub(crate) struct Swept {
    pub processes: usize,
    pub folders: Vec<PathBuf>,
}

/// Marks `dir` as this process's: a later sweep leaves it alone while we live.
pub(crate) fn claim(dir: &Path) -> std::io::Result<()> {
    let me = std::process::id();
    let started = start_time(me).unwrap_or_default();
    std::fs::write(dir.join(OWNER_FILE), format!("{me} {started}\n"))
}

/// Removes what dead runs left: their processes, their run folders under
/// `runs` (except `current`), and their clusters in shared memory or the
/// system temp folder.
pub(crate) fn sweep(runs: &Path, current: &Path) -> Swept {
    let mut dead: Vec<PathBuf> = Vec::new();
    let parents = [
        runs.to_owned(),
        std::env::temp_dir(),
        PathBuf::from(SHARED_MEMORY),
    ];
    for parent in parents {
        let Ok(entries) = std::fs::read_dir(&parent) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours =
                (parent == runs && name.starts_with("run-")) || name.starts_with(CLUSTER_PREFIX);
            if ours && path != current && owned_by_me(&path) && !owner_alive(&path) {
                dead.push(path);
            }
        }
    }
    let mut swept = Swept::default();
    for (pid, run) in marked_processes() {
        let run = PathBuf::from(run);
        let run_is_dead = run != current && (dead.contains(&run) || !run.exists());
        if run_is_dead {
            kill_with_group(pid);
            swept.processes += 1;
        }
    }
    for dir in dead {
        if std::fs::remove_dir_all(&dir).is_ok() {
            swept.folders.push(dir);
        }
    }
    swept
}

/// Whether this process's user owns `path` (not a link): a folder another
/// user made under a name of ours, in a shared temp folder, is not ours to remove.
fn owned_by_me(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .is_ok_and(|meta| meta.is_dir() && meta.uid() == nix::unistd::geteuid().as_raw())
}

/// Whether the harness that claimed `dir` still runs. A folder without an
/// owner file is being set up right now, unless it is old.
fn owner_alive(dir: &Path) -> bool {
    let Ok(owner) = std::fs::read_to_string(dir.join(OWNER_FILE)) else {
        let age = std::fs::metadata(dir)
            .and_then(|meta| meta.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok());
        return age.is_none_or(|age| age.as_secs() < 60);
    };
    let mut words = owner.split_whitespace();
    let (Some(Ok(pid)), Some(Ok(started))) = (
        words.next().map(str::parse::<u32>),
        words.next().map(str::parse::<u64>),
    ) else {
        return false;
    };
    // The same pid with another start time is another process.
    start_time(pid) == Some(started)
}

/// Processes (by pid) that carry a run marker, with its value.
fn marked_processes() -> Vec<(i32, String)> {
    processes_with(RUN_MARKER)
}

/// Processes (by pid) whose environment sets `variable`, with its value.
pub(crate) fn processes_with(variable: &str) -> Vec<(i32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let prefix = format!("{variable}=");
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != std::process::id() as i32)
        .filter_map(|pid| {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            let run = environ
                .split(|byte| *byte == 0)
                .find_map(|var| var.strip_prefix(prefix.as_bytes()))?;
            Some((pid, String::from_utf8_lossy(run).into_owned()))
        })
        .collect()
}

/// Fields of `/proc/<pid>/stat` after the command name (which may hold spaces).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// Start time in clock ticks since boot (field 22 of stat).
fn start_time(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Running, as opposed to gone or a zombie waiting for its reaper.
pub fn is_running(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|fields| fields.first().is_some_and(|state| state != "Z"))
}

/// Kills a process and its process group.
pub(crate) fn kill_with_group(pid: i32) {
    // Group 0 (unreadable) would be the caller's own; 1 is init's.
    if let Some(group) = process_group(pid).filter(|group| *group > 1) {
        let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
    }
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
}

/// The command name of a process, for messages.
pub(crate) fn command_name(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map_or_else(|_| "?".to_owned(), |name| name.trim().to_owned())
}

/// Process group (field 5 of stat).
pub(crate) fn process_group(pid: i32) -> Option<i32> {
    stat_fields(u32::try_from(pid).ok()?)?.get(2)?.parse().ok()
}

/// A process's pid, parent and group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcessEntry {
    pub pid: i32,
    pub parent: i32,
    pub group: i32,
}

/// Every process's parent and group, read in one pass over `/proc`: a
/// service's stop asks which processes descend from it, and following each
/// process's parents up read the same `stat` files many times over.
pub(crate) struct ProcessTable {
    entries: Vec<ProcessEntry>,
}

impl ProcessTable {
    pub(crate) fn read() -> ProcessTable {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return ProcessTable {
                entries: Vec::new(),
            };
        };
        let entries = dir
            .filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
            .filter_map(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                // After the command name (which may hold spaces): state, parent, group.
                let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(1);
                let parent = fields.next()?.parse().ok()?;
                let group = fields.next()?.parse().ok()?;
                Some(ProcessEntry { pid, parent, group })
            })
            .collect();
        ProcessTable { entries }
    }

    /// The processes descending from `ancestor` (not itself).
    pub(crate) fn descendants(&self, ancestor: i32) -> Vec<ProcessEntry> {
        let mut found: Vec<ProcessEntry> = Vec::new();
        let mut parents = vec![ancestor];
        while let Some(parent) = parents.pop() {
            for child in self.entries.iter().filter(|entry| entry.parent == parent) {
                // A pid reused while the table was read could close a loop.
                if child.pid != ancestor && !found.iter().any(|seen| seen.pid == child.pid) {
                    found.push(*child);
                    parents.push(child.pid);
                }
            }
        }
        found
    }

    /// Every process's pid.
    pub(crate) fn pids(&self) -> impl Iterator<Item = i32> + '_ {
        self.entries.iter().map(|entry| entry.pid)
    }

    /// The pids of group `group`'s processes.
    pub(crate) fn in_group(&self, group: i32) -> impl Iterator<Item = i32> + '_ {
        self.entries
            .iter()
            .filter(move |entry| entry.group == group)
            .map(|entry| entry.pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_table_finds_a_child_that_left_its_group() {
        // sh (a group of its own) starts a child that leaves it with setsid.
        let mut parent = std::process::Command::new("sh");
        std::os::unix::process::CommandExt::process_group(&mut parent, 0);
        let mut parent = parent
            .args(["-c", "setsid sleep 30 & echo $!; wait"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(parent.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        let leader = parent.id() as i32;
        let sleeper: i32 = line.trim().parse().unwrap();
        // Until setsid has run, the sleeper is still in the shell's group.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while process_group(sleeper) != Some(sleeper) {
            assert!(std::time::Instant::now() < deadline, "setsid never ran");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let table = ProcessTable::read();
        let descendants = table.descendants(leader);
        let found = descendants.iter().find(|entry| entry.pid == sleeper);
        assert!(
            found.is_some_and(|entry| entry.group != leader && entry.parent == leader),
            "{descendants:?}"
        );
        assert!(table.in_group(leader).any(|pid| pid == leader));
        assert!(
            !table
                .descendants(sleeper)
                .iter()
                .any(|entry| entry.pid == leader)
        );
        kill_with_group(sleeper);
        let _ = kill(Pid::from_raw(leader), Signal::SIGKILL);
        let _ = parent.wait();
    }

    #[test]
    fn a_folder_claimed_by_this_process_is_alive_and_one_by_a_dead_process_is_not() {
        let dir = tempfile::tempdir().unwrap();
        claim(dir.path()).unwrap();
        assert!(owner_alive(dir.path()));
        // A pid that exists with another start time, or not at all, is dead.
        std::fs::write(
            dir.path().join(OWNER_FILE),
            format!("{} 1\n", std::process::id()),
        )
        .unwrap();
        assert!(!owner_alive(dir.path()));
    }

    #[test]
    fn sweep_removes_dead_runs_and_keeps_live_ones() {
        let runs = tempfile::tempdir().unwrap();
        let current = runs.path().join("run-current");
        let dead = runs.path().join("run-dead");
        let live = runs.path().join("run-live");
        for dir in [&current, &dead, &live] {
            std::fs::create_dir(dir).unwrap();
        }
        claim(&live).unwrap();
        std::fs::write(dead.join(OWNER_FILE), "4194304 1\n").unwrap();
        let swept = sweep(runs.path(), &current);
        assert_eq!(swept.folders, std::slice::from_ref(&dead));
        assert!(current.exists() && live.exists() && !dead.exists());
    }
}
