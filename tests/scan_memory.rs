//! Iterating a large table holds one page, not the table: in a test binary of its own, so the
//! process's anonymous memory is the iteration's.

use nanasqlite::{NanaSQLite, Scan};

const ROWS: usize = 1_000_000;
/// What iterating may add to the anonymous memory of the process: a page of rows, the SQLite
/// page cache and the allocator's slack. The table itself is about 230 MB.
const BOUND: u64 = 64 << 20;

/// Anonymous resident memory (`RssAnon` of `/proc/self/status`, Linux): the heap, not the
/// memory-mapped database file.
fn anonymous_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let line = status.lines().find(|line| line.starts_with("RssAnon:")).expect("RssAnon");
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[test]
fn iterating_a_million_rows_holds_one_page() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("million.db");
    let db = NanaSQLite::open(&path).unwrap();
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut insert = tx.prepare("INSERT INTO data (key, value) VALUES (?1, ?2)").unwrap();
        let value = format!("\"{}\"", "v".repeat(200));
        for i in 0..ROWS {
            insert.execute(rusqlite::params![format!("key{i:07}"), value]).unwrap();
        }
    }
    tx.commit().unwrap();
    drop(conn);

    let before = anonymous_bytes();
    let (mut rows, mut peak) = (0usize, before);
    for row in db.iter::<String>(Scan::all()).unwrap() {
        let (key, value) = row.unwrap();
        assert_eq!(value.len(), 200, "{key}");
        rows += 1;
        if rows.is_multiple_of(10_000) {
            peak = peak.max(anonymous_bytes());
        }
    }
    assert_eq!(rows, ROWS);
    let grown = peak.saturating_sub(before);
    println!("iterating {ROWS} rows (~230 MB) grew anonymous memory by {} KiB at most", grown >> 10);
    assert!(grown < BOUND, "iterating grew anonymous memory by {grown} bytes");
    let cached = (0..ROWS).step_by(997).chain([ROWS - 1]).filter(|i| db.is_cached(&format!("key{i:07}"))).count();
    assert_eq!(cached, 0, "and nothing was cached");
    assert!(
        db.get::<String>("key0000000").unwrap().is_some() && db.is_cached("key0000000"),
        "the control: a get caches"
    );

    // The measure can see a table held whole: collecting every row grows it past the bound.
    let all = db.scan::<String>(Scan::all()).unwrap();
    let held = anonymous_bytes().saturating_sub(before);
    println!("holding all {} rows: {} MiB", all.len(), held >> 20);
    assert!(held > BOUND, "the control: {held} bytes");
}
