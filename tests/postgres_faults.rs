//! The PostgreSQL server under faults (feature `postgres`): restarted under load (nothing
//! acknowledged is lost, writes during the restart fail with a clear error, the stores
//! reconnect by themselves, and every cache is emptied, since notices sent meanwhile were
//! lost); and a network that silently drops a store's packets (noticed within
//! [`SILENT_CUT`], every cache emptied).
//!
//! A binary of its own, so that restarting the server disturbs no other test (cargo runs test
//! binaries one after another). Needs the server `bash .ci/postgres start` starts (and
//! restarts through the same script); `bash .ci/test` runs it. The silent cut needs root and
//! nftables (`bash .ci/test` installs it): it drops packets of a second server the test
//! starts on a port of its own, so no other test's connections are touched.
#![cfg(feature = "postgres")]

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nanasqlite::storage::{SILENT_CUT, STALENESS};
use nanasqlite::{AsyncNanaSQLite, Error, NanaSQLite};

mod common;

use common::{Watchdog, wait_until};

fn server() -> String {
    std::env::var("NANASQLITE_POSTGRES_URL").unwrap_or_else(|_| {
        panic!("this test needs a PostgreSQL server: run `bash .ci/postgres start` and export NANASQLITE_POSTGRES_URL")
    })
}

fn restart_the_server() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/postgres");
    let status = std::process::Command::new("bash").arg(script).arg("restart").status().expect("bash runs");
    assert!(status.success(), "the server restarts");
}

/// Writes keys `prefix0`, `prefix1`, … with `write` until told to stop, recording which were
/// acknowledged and checking that every failure is a clear backend error.
fn keep_writing(
    prefix: &'static str,
    stop: Arc<AtomicBool>,
    write: impl Fn(&str, i64) -> nanasqlite::Result<()> + Send + 'static,
) -> std::thread::JoinHandle<(Vec<i64>, usize)> {
    std::thread::spawn(move || {
        let (mut acknowledged, mut failed) = (Vec::new(), 0);
        let mut i = 0;
        while !stop.load(Ordering::Acquire) {
            match write(&format!("{prefix}{i}"), i) {
                Ok(()) => acknowledged.push(i),
                Err(error) => {
                    assert!(
                        matches!(error, Error::Backend { backend: "postgres", .. }),
                        "a write during the restart fails with the server's error, not {error:?}"
                    );
                    failed += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            i += 1;
        }
        (acknowledged, failed)
    })
}

#[test]
#[ignore = "needs a PostgreSQL server: bash .ci/postgres start; bash .ci/test runs it"]
fn postgres_server_restarted_mid_load_loses_nothing_acknowledged() {
    let _watchdog = Watchdog::new("the restart test", Duration::from_secs(240));
    let url = server();
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin.batch_execute("DROP SCHEMA IF EXISTS restart CASCADE; CREATE SCHEMA restart").unwrap();
    drop(admin);
    let url = format!("{url}?options=-csearch_path%3Drestart");

    let sync_store = NanaSQLite::postgres(&url).open().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let async_store = runtime.block_on(AsyncNanaSQLite::postgres(&url).open()).unwrap();
    let watcher = NanaSQLite::postgres(&url).open().unwrap();
    sync_store.set("watched", &0).unwrap();
    wait_until("the watcher to cache a key", STALENESS * 5, || {
        watcher.get::<i64>("watched").is_ok() && watcher.is_cached("watched")
    });

    let stop = Arc::new(AtomicBool::new(false));
    let sync_writes = {
        let db = sync_store.clone();
        keep_writing("s", Arc::clone(&stop), move |key, value| db.set(key, &value))
    };
    let handle = runtime.handle().clone();
    let async_acks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let async_writes = {
        let (db, acks) = (async_store.clone(), Arc::clone(&async_acks));
        keep_writing("a", Arc::clone(&stop), move |key, value| {
            handle.block_on(db.set(key, &value)).inspect(|()| {
                acks.fetch_add(1, Ordering::AcqRel);
            })
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    restart_the_server();
    let async_before = async_acks.load(Ordering::Acquire);
    wait_until("the watcher's cache to be emptied", Duration::from_secs(10), || !watcher.is_cached("watched"));
    let after = Mutex::new(sync_store.len().ok());
    wait_until("writes to succeed again", Duration::from_secs(30), || {
        let len = sync_store.len().ok();
        let mut last = after.lock().unwrap();
        let grew = matches!((*last, len), (Some(before), Some(now)) if now > before + 20);
        if last.is_none() {
            *last = len;
        }
        grew
    });
    wait_until("the async store's writes to succeed again", Duration::from_secs(30), || {
        async_acks.load(Ordering::Acquire) > async_before + 20
    });
    stop.store(true, Ordering::Release);
    let (sync_acknowledged, sync_failed) = sync_writes.join().unwrap();
    let (async_acknowledged, async_failed) = async_writes.join().unwrap();
    eprintln!(
        "acknowledged {} sync and {} async writes; {} and {} failed during the restart",
        sync_acknowledged.len(),
        async_acknowledged.len(),
        sync_failed,
        async_failed
    );

    let check = NanaSQLite::postgres(&url).open().unwrap();
    for (prefix, acknowledged) in [("s", &sync_acknowledged), ("a", &async_acknowledged)] {
        assert!(acknowledged.len() > 20, "{prefix}: writes went on after the restart");
        for i in acknowledged {
            assert_eq!(
                check.get::<i64>(&format!("{prefix}{i}")).unwrap(),
                Some(*i),
                "acknowledged {prefix}{i} is kept"
            );
        }
    }
    sync_store.set("watched", &1).unwrap();
    wait_until("the reconnected listener to hear writes again", Duration::from_secs(30), || {
        watcher.get::<i64>("watched").unwrap() == Some(1)
    });
    runtime.block_on(async_store.close()).unwrap();
}

/// A second server of the test's own, on a port of its own, in a folder of its own: started
/// here, stopped when dropped.
struct SecondServer {
    folder: tempfile::TempDir,
    url: String,
    port: u16,
}

impl SecondServer {
    fn start() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let folder = tempfile::tempdir().unwrap();
        // The server runs as another user, who must reach its folder.
        std::fs::set_permissions(folder.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let output = Self::script(folder.path(), "start").output().expect("bash runs");
        assert!(output.status.success(), "the second server starts: {}", String::from_utf8_lossy(&output.stderr));
        let url = String::from_utf8(output.stdout).unwrap().trim().to_owned();
        let port = url.rsplit(':').next().and_then(|rest| rest.split('/').next()).unwrap().parse().unwrap();
        Self { folder, url, port }
    }

    fn script(folder: &Path, action: &str) -> std::process::Command {
        let mut command = std::process::Command::new("bash");
        command.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/postgres")).arg(action);
        command.env("NANASQLITE_PG_DIR", folder.join("pg"));
        command
    }

    /// The same server through its Unix socket, which a rule on its TCP port leaves alone.
    fn socket_url(&self) -> String {
        format!("host={} port={} user=nanasqlite dbname=postgres", self.folder.path().join("pg").display(), self.port)
    }
}

impl Drop for SecondServer {
    fn drop(&mut self) {
        let _ = Self::script(self.folder.path(), "stop").status();
    }
}

/// Drops, without any reset, every packet to or from a TCP port on this machine while it
/// lives (an nftables table of its own, deleted when dropped): a network partition, or a NAT
/// that forgot the connection, as a client sees them.
struct SilentCut {
    table: String,
}

impl SilentCut {
    fn of_port(port: u16) -> Self {
        let table = format!("nanasqlite_cut_{}", std::process::id());
        let script = format!(
            "add table inet {table}
             add chain inet {table} input {{ type filter hook input priority -10; policy accept; }}
             add rule inet {table} input tcp dport {port} drop
             add rule inet {table} input tcp sport {port} drop"
        );
        let mut nft = std::process::Command::new("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("this test needs nftables and root: `apt-get install nftables` (bash .ci/test does)");
        std::io::Write::write_all(nft.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
        drop(nft.stdin.take());
        assert!(common::wait_for_exit(&mut nft, Duration::from_secs(30)).success(), "the drop rule is in place");
        Self { table }
    }
}

impl Drop for SilentCut {
    fn drop(&mut self) {
        let _ = std::process::Command::new("nft").args(["delete", "table", "inet", &self.table]).status();
    }
}

/// A network that silently drops the packets of a store's connections (no reset: the store's
/// sockets stay open, as they do through a partition) is noticed within `SILENT_CUT`: the
/// store empties its caches, so another client's write, which it can no longer hear of, stops
/// being served from its cache. Once the network is back, the store reconnects and reads the
/// new value.
#[test]
#[ignore = "needs PostgreSQL and nftables as root: bash .ci/test runs it"]
fn postgres_a_silently_cut_listener_is_noticed_within_the_bound() {
    let _watchdog = Watchdog::new("the silent cut test", Duration::from_secs(240));
    let server = SecondServer::start();
    let cut_off = NanaSQLite::postgres(&server.url).open().unwrap();
    let other = NanaSQLite::postgres(server.socket_url()).open().unwrap();
    cut_off.set("k", &1).unwrap();
    assert!(cut_off.is_cached("k"));
    let cut = SilentCut::of_port(server.port);
    std::thread::sleep(Duration::from_millis(200)); // the listener is idle, as a cut finds it
    other.set("k", &2).unwrap();
    let started = std::time::Instant::now();
    wait_until("the cut to be noticed and the cache emptied", SILENT_CUT * 2, || !cut_off.is_cached("k"));
    eprintln!("the silent cut was noticed after {:?} (bound {SILENT_CUT:?})", started.elapsed());
    drop(cut);
    wait_until("the store to read the other client's value once the network is back", Duration::from_secs(60), || {
        cut_off.get::<i64>("k").ok() == Some(Some(2))
    });
}
