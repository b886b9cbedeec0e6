//! Cache strategies: FIFO and LRU eviction, TTL expiry and reload, TTL that deletes rows.

//!
//! Expiry runs on a [`ManualClock`]: the tests move time on and assert what expired, whatever
//! the machine's speed.

use std::time::Duration;

use nanasqlite::{AsyncNanaSQLite, CacheStrategy, Error, ManualClock, NanaSQLite};

mod common;

/// A TTL the tests move past by hand.
const TTL: Duration = Duration::from_secs(60);

fn open(strategy: CacheStrategy) -> (tempfile::TempDir, NanaSQLite) {
    open_on(strategy, &ManualClock::new())
}

fn open_on(strategy: CacheStrategy, clock: &ManualClock) -> (tempfile::TempDir, NanaSQLite) {
    let dir = tempfile::tempdir().unwrap();
    let db = NanaSQLite::builder(dir.path().join("c.db")).cache(strategy).clock(clock.clone()).open().unwrap();
    (dir, db)
}

#[test]
fn invalid_strategies_are_rejected() {
    let _watchdog = common::Watchdog::new("invalid_strategies_are_rejected", common::TEST_LIMIT);
    for strategy in [
        CacheStrategy::Lru { size: 0 },
        CacheStrategy::Fifo { size: 0 },
        CacheStrategy::Ttl { ttl: Duration::ZERO, size: None, delete_expired: false },
        CacheStrategy::Ttl { ttl: Duration::from_secs(1), size: Some(0), delete_expired: false },
    ] {
        let opened = NanaSQLite::builder(":memory:").cache(strategy).open();
        assert!(matches!(opened, Err(Error::Validation { .. })), "{strategy:?}");
    }
}

#[test]
fn lru_evicts_the_least_recently_used() -> nanasqlite::Result<()> {
    let _watchdog = common::Watchdog::new("lru_evicts_the_least_recently_used", common::TEST_LIMIT);
    let (_dir, db) = open(CacheStrategy::Lru { size: 3 });
    for key in ["a", "b", "c"] {
        db.set(key, &key)?;
    }
    db.get::<String>("a")?; // a is now the most recent: b is the least
    db.set("d", &"d")?;
    assert!(!db.is_cached("b"), "b was least recently used");
    assert!(db.is_cached("a") && db.is_cached("c") && db.is_cached("d"));
    assert_eq!(db.get::<String>("b")?.as_deref(), Some("b"), "an evicted key is read again from the file");
    assert!(db.is_cached("b"), "and cached again");
    assert!(!db.is_cached("c"), "which evicted the next least recent");
    db.get::<String>("missing")?;
    assert!(db.is_cached("missing"), "absent keys count too");
    assert_eq!(db.values::<String>()?.len(), 4, "values() sees the whole table, not just the cache");
    Ok(())
}

#[test]
fn fifo_evicts_the_first_cached_even_when_rewritten() -> nanasqlite::Result<()> {
    let _watchdog = common::Watchdog::new("fifo_evicts_the_first_cached_even_when_rewritten", common::TEST_LIMIT);
    let (_dir, db) = open(CacheStrategy::Fifo { size: 2 });
    db.set("a", &1)?;
    db.set("b", &2)?;
    db.set("a", &3)?; // rewriting keeps a's place
    db.get::<i32>("a")?;
    db.set("c", &4)?;
    assert!(!db.is_cached("a") && db.is_cached("b") && db.is_cached("c"));
    assert_eq!(db.get::<i32>("a")?, Some(3));
    Ok(())
}

#[test]
fn ttl_entries_expire_and_are_read_again() -> nanasqlite::Result<()> {
    let _watchdog = common::Watchdog::new("ttl_entries_expire_and_are_read_again", common::TEST_LIMIT);
    let clock = ManualClock::new();
    let (dir, db) = open_on(CacheStrategy::Ttl { ttl: TTL, size: None, delete_expired: false }, &clock);
    db.set("k", &1)?;
    assert!(db.is_cached("k"));
    // Another connection changes the row; the cache shows the old value until it expires.
    let other = NanaSQLite::open(dir.path().join("c.db"))?;
    other.set("k", &2)?;
    clock.advance(TTL - Duration::from_millis(1));
    assert_eq!(db.get::<i32>("k")?, Some(1), "cached until it expires");
    clock.advance(Duration::from_millis(1));
    assert!(!db.is_cached("k"), "expired");
    assert_eq!(db.get::<i32>("k")?, Some(2), "reloaded from the file");
    assert!(db.is_cached("k"));
    assert_eq!(other.get_fresh::<i32>("k")?, Some(2), "plain TTL never deletes data");
    Ok(())
}

#[test]
fn ttl_with_delete_expired_removes_rows() -> nanasqlite::Result<()> {
    let _watchdog = common::Watchdog::new("ttl_with_delete_expired_removes_rows", common::TEST_LIMIT);
    let strategy = CacheStrategy::Ttl { ttl: TTL, size: Some(100), delete_expired: true };
    let clock = ManualClock::new();
    let (dir, db) = open_on(strategy, &clock);
    db.set("session", &"token")?;
    db.set("other", &"x")?;
    clock.advance(TTL);
    db.set("fresh", &"y")?; // a write sweeps expired entries
    db.len()?; // the next operation deletes them from the file
    let file = NanaSQLite::open(dir.path().join("c.db"))?;
    assert_eq!(file.keys()?, ["fresh"], "expired keys were deleted from the file");
    assert_eq!(db.get::<String>("session")?, None);
    Ok(())
}

#[test]
fn async_store_uses_the_same_strategies() {
    let _watchdog = common::Watchdog::new("async_store_uses_the_same_strategies", common::TEST_LIMIT);
    futures::executor::block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let db = AsyncNanaSQLite::builder(&path).cache(CacheStrategy::Lru { size: 2 }).open().await.unwrap();
        for key in ["a", "b", "c"] {
            db.set(key, &key).await.unwrap();
        }
        assert!(!db.is_cached("a") && db.is_cached("c"));
        assert_eq!(db.get::<String>("a").await.unwrap().as_deref(), Some("a"));
        db.close().await.unwrap();

        let strategy = CacheStrategy::Ttl { ttl: TTL, size: None, delete_expired: true };
        let clock = ManualClock::new();
        let db = AsyncNanaSQLite::builder(&path).cache(strategy).clock(clock.clone()).open().await.unwrap();
        db.set("session", &1).await.unwrap();
        db.set("trigger", &0).await.unwrap();
        assert_eq!(db.get_fresh::<i32>("session").await.unwrap(), Some(1), "not expired yet");
        clock.advance(TTL);
        db.set("trigger", &1).await.unwrap(); // sweeps, and the next write deletes
        db.set("trigger", &2).await.unwrap();
        assert_eq!(db.get_fresh::<i32>("session").await.unwrap(), None, "deleted from the file");
        assert!(AsyncNanaSQLite::builder(&path).cache(CacheStrategy::Lru { size: 0 }).open().await.is_err());
        db.close().await.unwrap();
    });
}

/// With `delete_expired`, an expired key is absent from every read, listings included, before
/// any write has deleted its row: what `get` calls absent, `keys`, `len`, `items`, `to_dict`,
/// `values`, scans, `batch_get` and `get_fresh` do not list.
#[test]
fn an_expired_key_is_absent_from_every_read_on_both_stores() -> nanasqlite::Result<()> {
    let _watchdog =
        common::Watchdog::new("an_expired_key_is_absent_from_every_read_on_both_stores", common::TEST_LIMIT);
    use serde_json::Value;
    let clock = ManualClock::new();
    let strategy = CacheStrategy::Ttl { ttl: TTL, size: None, delete_expired: true };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ttl.db");
    NanaSQLite::open(&path)?.set("kept", &"not cached here, so it never expires")?;
    let db = NanaSQLite::builder(&path).cache(strategy).clock(clock.clone()).open()?;
    db.set("session", &"token")?;
    assert_eq!(db.keys()?, ["kept", "session"], "listed until it expires");
    clock.advance(TTL);
    assert_eq!(db.get::<String>("session")?, None);
    assert!(!db.contains("session")?);
    assert_eq!(db.keys()?, ["kept"]);
    assert_eq!(db.len()?, 1);
    assert_eq!(db.items::<Value>()?.len(), 1);
    assert_eq!(db.values::<Value>()?.len(), 1);
    assert_eq!(db.to_dict::<Value>()?.len(), 1);
    assert_eq!(db.scan::<Value>(nanasqlite::Scan::all())?.len(), 1);
    assert!(db.batch_get::<Value>(["session"])?.is_empty());
    assert_eq!(db.get_fresh::<String>("session")?, None);
    assert_eq!(NanaSQLite::open(&path)?.keys()?, ["kept"], "the listing deleted the expired row first");

    futures::executor::block_on(async {
        let db = AsyncNanaSQLite::builder(&path).cache(strategy).clock(clock.clone()).open().await?;
        db.set("session", &"token").await?;
        assert_eq!(db.len().await?, 2, "counted until it expires");
        clock.advance(TTL);
        assert_eq!(db.get::<String>("session").await?, None);
        assert!(!db.contains("session").await?);
        assert_eq!(db.keys().await?, ["kept"]);
        assert_eq!(db.len().await?, 1);
        assert_eq!(db.items::<Value>().await?.len(), 1);
        assert_eq!(db.to_dict::<Value>().await?.len(), 1);
        assert_eq!(db.scan::<Value>(nanasqlite::Scan::all()).await?.len(), 1);
        assert!(db.batch_get::<Value>(["session"]).await?.is_empty());
        assert_eq!(db.get_fresh::<String>("session").await?, None);
        db.close().await
    })?;
    assert_eq!(NanaSQLite::open(&path)?.keys()?, ["kept"]);
    Ok(())
}
