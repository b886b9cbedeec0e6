//! Ordered iteration: prefixes, ranges, both directions, limits and cursors, many pages,
//! checked against a `BTreeMap` of the same rows, on both stores.

use std::collections::BTreeMap;
use std::ops::Bound;

use futures::StreamExt;
use nanasqlite::{NanaSQLite, SCAN_PAGE, Scan};
use serde_json::Value;

mod common;

use common::Setup;

/// Keys around the edges of byte order: a shared prefix, empty-ish suffixes, non-ASCII and the
/// largest code points, more than three pages of them.
fn keys() -> Vec<String> {
    let mut keys: Vec<String> = (0..900).map(|i| format!("user:{i:04}")).collect();
    keys.extend(["user:", "user;", "usen", "a", "é", "日本", "\u{10FFFF}", "user:\u{10FFFF}", "z"].map(String::from));
    keys
}

fn model() -> BTreeMap<String, i64> {
    keys().into_iter().enumerate().map(|(i, key)| (key, i as i64)).collect()
}

/// What `scan` should yield, from the model (byte order is `String`'s order).
fn expected(
    scan_prefix: Option<&str>,
    range: (Bound<&str>, Bound<&str>),
    descending: bool,
    after: Option<&str>,
    limit: Option<usize>,
) -> Vec<(String, i64)> {
    let model = model();
    let mut rows: Vec<(String, i64)> = model
        .range::<str, _>(range)
        .filter(|(key, _)| scan_prefix.is_none_or(|prefix| key.starts_with(prefix)))
        .map(|(key, value)| (key.clone(), *value))
        .collect();
    if descending {
        rows.reverse();
    }
    if let Some(after) = after {
        rows.retain(|(key, _)| if descending { key.as_str() < after } else { key.as_str() > after });
    }
    rows.truncate(limit.unwrap_or(usize::MAX));
    rows
}

/// Each scan with the rows it must yield.
fn cases() -> Vec<(Scan, Vec<(String, i64)>)> {
    let all = (Bound::Unbounded, Bound::Unbounded);
    vec![
        (Scan::all(), expected(None, all, false, None, None)),
        (Scan::all().descending(), expected(None, all, true, None, None)),
        (Scan::prefix("user:"), expected(Some("user:"), all, false, None, None)),
        (Scan::prefix("user:").descending().limit(300), expected(Some("user:"), all, true, None, Some(300))),
        (Scan::prefix("user:").after("user:0500"), expected(Some("user:"), all, false, Some("user:0500"), None)),
        (
            Scan::prefix("user:").after("user:0500").descending(),
            expected(Some("user:"), all, true, Some("user:0500"), None),
        ),
        (Scan::prefix("\u{10FFFF}"), expected(Some("\u{10FFFF}"), all, false, None, None)),
        (Scan::prefix("nothing"), Vec::new()),
        // Hostile text is a bound value, never SQL: it matches nothing and breaks nothing.
        (Scan::prefix("' OR 1=1; DROP TABLE data; --"), Vec::new()),
        (Scan::range("%"..="_\0\u{0}"), Vec::new()),
        (
            Scan::range("a".."user:0100"),
            expected(None, (Bound::Included("a"), Bound::Excluded("user:0100")), false, None, None),
        ),
        (
            Scan::range("usen"..="user:"),
            expected(None, (Bound::Included("usen"), Bound::Included("user:")), false, None, None),
        ),
        (
            Scan::range("user:0899"..),
            expected(None, (Bound::Included("user:0899"), Bound::Unbounded), false, None, None),
        ),
        (Scan::all().limit(0), Vec::new()),
        (Scan::all().limit(SCAN_PAGE), expected(None, all, false, None, Some(SCAN_PAGE))),
        (Scan::all().limit(SCAN_PAGE + 1), expected(None, all, false, None, Some(SCAN_PAGE + 1))),
    ]
}

fn filled(path: &std::path::Path) -> NanaSQLite {
    let db = NanaSQLite::open(path).unwrap();
    db.batch_update(model()).unwrap();
    // Rows another tool stored with keys that are not text: never yielded, never a failure.
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("INSERT INTO data VALUES (x'00ff', '2'), (x'7a7a', '3')").unwrap();
    db
}

#[test]
fn the_sync_store_scans_like_an_ordered_map() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let db = filled(&dir.path().join("scan.db"));
    for (scan, expected) in cases() {
        assert_eq!(db.scan::<i64>(scan.clone())?, expected, "{scan:?}");
        let iterated: Vec<(String, i64)> = db.iter::<i64>(scan.clone())?.collect::<nanasqlite::Result<_>>()?;
        assert_eq!(iterated, expected, "iter {scan:?}");
    }
    Ok(())
}

#[test]
fn pages_resume_by_key_and_a_bad_value_fails_alone() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let db = filled(&dir.path().join("pages.db"));
    // Paging by hand with `after`, as a web API would: the pages join up to the whole.
    let (mut seen, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let scan = cursor.iter().fold(Scan::prefix("user:").limit(100), |scan, key| scan.after(key.clone()));
        let page = db.scan::<i64>(scan)?;
        let Some((last, _)) = page.last() else { break };
        cursor = Some(last.clone());
        seen.extend(page);
    }
    assert_eq!(seen, expected(Some("user:"), (Bound::Unbounded, Bound::Unbounded), false, None, None));

    // Writes between pages: keys present throughout are yielded exactly once, in order.
    let mut iter = db.iter::<Value>(Scan::prefix("user:"))?;
    let first = iter.next().unwrap()?;
    db.set("user:0000a", &"written during the iteration")?;
    db.delete("user:0899")?;
    let rest: Vec<String> = iter.map(|row| row.map(|(key, _)| key)).collect::<nanasqlite::Result<_>>()?;
    assert_eq!(first.0, "user:");
    assert!(rest.windows(2).all(|pair| pair[0] < pair[1]), "in order, no repeats");
    assert!(rest.contains(&"user:0898".to_owned()));

    db.set("user:0450", &"not a number")?;
    let rows: Vec<_> = db.iter::<i64>(Scan::prefix("user:04"))?.collect();
    let failed: Vec<_> = rows.iter().filter(|row| row.is_err()).collect();
    assert!(matches!(failed[..], [Err(nanasqlite::Error::Decode { key, .. })] if key == "user:0450"), "{failed:?}");
    assert_eq!(rows.len(), 100, "the iteration goes on past a bad value: it fails for its key alone");
    Ok(())
}

on_every_runtime!(the_async_store_streams_like_an_ordered_map);

async fn the_async_store_streams_like_an_ordered_map(setup: Setup) {
    filled(&setup.path).close().unwrap();
    let db = setup.open().await;
    for (scan, expected) in cases() {
        assert_eq!(db.scan::<i64>(scan.clone()).await.unwrap(), expected, "{scan:?}");
        let streamed: Vec<(String, i64)> = db.stream::<i64>(scan.clone()).map(Result::unwrap).collect().await;
        assert_eq!(streamed, expected, "stream {scan:?}");
    }
    let mut stream = db.stream::<i64>(Scan::all());
    assert!(stream.next().await.is_some());
    drop(stream); // mid-way: nothing to clean up
    db.close().await.unwrap();
}

/// Pages with a cursor: every key once, in order, and `next` is `None` exactly at the end (also
/// when the last page is full), in both directions, typed and not, on both stores.
#[test]
fn pages_with_a_cursor_end_with_none() -> nanasqlite::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let db = NanaSQLite::open(dir.path().join("pages.db"))?;
    db.batch_update((0..100).map(|i| (format!("k{i:03}"), i)))?;
    for (size, descending) in [(25, false), (30, false), (25, true), (7, true), (1000, false)] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut scan = Scan::prefix("k").limit(size);
            if descending {
                scan = scan.descending();
            }
            if let Some(key) = cursor.take() {
                scan = scan.after(key);
            }
            let page: nanasqlite::Page<i64> = db.scan_page(scan)?;
            pages += 1;
            assert!(page.rows.len() <= size);
            seen.extend(page.rows.iter().map(|(_, value)| *value));
            match page.next {
                Some(next) => {
                    assert_eq!(Some(&next), page.rows.last().map(|(key, _)| key), "the cursor is the last key");
                    cursor = Some(next);
                }
                None => break,
            }
        }
        let mut expected: Vec<i64> = (0..100).collect();
        if descending {
            expected.reverse();
        }
        assert_eq!(seen, expected, "page size {size}, descending {descending}");
        assert_eq!(pages, 100usize.div_ceil(size), "no empty page after a full last one (size {size})");
    }
    let empty: nanasqlite::Page<i64> = db.scan_page(Scan::prefix("none"))?;
    assert_eq!((empty.rows.len(), empty.next), (0, None));
    // Sizes from outside (a query string): the largest reads every row without overflowing,
    // and a page of none is empty and ends the paging.
    let whole: nanasqlite::Page<i64> = db.scan_page(Scan::all().limit(usize::MAX))?;
    assert_eq!((whole.rows.len(), whole.next), (100, None));
    let none: nanasqlite::Page<i64> = db.scan_page(Scan::all().limit(0))?;
    assert_eq!((none.rows.len(), none.next), (0, None));
    let after_all: nanasqlite::Page<i64> = db.scan_page(Scan::all().after("\u{10FFFF}").limit(5))?;
    assert_eq!((after_all.rows.len(), after_all.next), (0, None), "a cursor past every key");
    let typed = db.typed::<i64>("data")?;
    let page = typed.scan_page(Scan::all().limit(2))?;
    assert_eq!((page.rows.len(), page.next.as_deref()), (2, Some("k001")));
    Ok(())
}

on_every_runtime!(the_async_store_pages_with_a_cursor);

async fn the_async_store_pages_with_a_cursor(setup: Setup) {
    let db = setup.open().await;
    db.batch_update((0..10).map(|i| (format!("k{i}"), i))).await.unwrap();
    let first = db.scan_page::<i64>(Scan::all().limit(5)).await.unwrap();
    assert_eq!(first.next.as_deref(), Some("k4"));
    let second = db.scan_page::<i64>(Scan::all().after("k4").limit(5)).await.unwrap();
    assert_eq!((second.rows.len(), second.next), (5, None), "a full last page ends the paging");
    let typed = db.typed::<i64>("data").await.unwrap();
    let page = typed.scan_page(Scan::all().descending().limit(3)).await.unwrap();
    assert_eq!(page.rows.iter().map(|(_, value)| *value).collect::<Vec<_>>(), [9, 8, 7]);
    assert_eq!(page.next.as_deref(), Some("k7"));
    db.close().await.unwrap();
}
