//! [`Scan`]: which keys an ordered iteration visits, in which direction, from where.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::engine::{CachedValue, Reader, RowsPage, ScanPage};
use crate::error::Result;

/// Rows a page of an iteration reads at a time.
pub const SCAN_PAGE: usize = 256;

/// Which keys an ordered read visits: all, a prefix or a range, ascending (the default) or
/// descending, at most `limit`, resuming after a key. Keys are ordered by their UTF-8 bytes
/// (SQLite's `BINARY` collation), which is Unicode code point order.
///
/// # Examples
///
/// ```
/// use nanasqlite_core::{NanaSQLite, Scan};
///
/// let db = NanaSQLite::open(":memory:")?;
/// db.batch_update([("user:1", 1), ("user:2", 2), ("user:3", 3), ("order:1", 4)])?;
/// let users: Vec<(String, i32)> = db.scan(Scan::prefix("user:"))?;
/// assert_eq!(users.len(), 3);
/// let page: Vec<(String, i32)> = db.scan(Scan::prefix("user:").after("user:1").limit(1))?;
/// assert_eq!(page, [("user:2".to_owned(), 2)]);
/// let last: Vec<(String, i32)> = db.scan(Scan::all().descending().limit(1))?;
/// assert_eq!(last[0].0, "user:3");
/// let early: Vec<(String, i32)> = db.scan(Scan::range("order:".."user:"))?;
/// assert_eq!(early, [("order:1".to_owned(), 4)]);
/// # Ok::<(), nanasqlite_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "a scan does nothing until a store runs it"]
pub struct Scan {
    pub(crate) lower: Bound<String>,
    pub(crate) upper: Bound<String>,
    pub(crate) after: Option<String>,
    pub(crate) descending: bool,
    pub(crate) limit: Option<usize>,
}

impl Scan {
    /// Every key.
    pub fn all() -> Self {
        Self { lower: Bound::Unbounded, upper: Bound::Unbounded, after: None, descending: false, limit: None }
    }

    /// The keys that start with `prefix`.
    pub fn prefix(prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        let upper = successor(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
        Self { lower: Bound::Included(prefix), upper, ..Self::all() }
    }

    /// The keys in `range` (`"a".."m"`, `"a"..="m"`, `"k"..`, …).
    pub fn range<'a>(range: impl RangeBounds<&'a str>) -> Self {
        let owned = |bound: Bound<&&str>| match bound {
            Bound::Included(key) => Bound::Included((*key).to_owned()),
            Bound::Excluded(key) => Bound::Excluded((*key).to_owned()),
            Bound::Unbounded => Bound::Unbounded,
        };
        Self { lower: owned(range.start_bound()), upper: owned(range.end_bound()), ..Self::all() }
    }

    /// Only the keys after `key` in the scan's direction: the cursor to resume a paged read
    /// (pass the last key of the previous page).
    pub fn after(mut self, key: impl Into<String>) -> Self {
        self.after = Some(key.into());
        self
    }

    /// At most `limit` keys.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Largest key first.
    pub fn descending(mut self) -> Self {
        self.descending = true;
        self
    }
}

/// One page of a [`Scan`], read with `scan_page` (on either store and on typed tables): its rows
/// and the cursor of the next page, `None` at the end. Pass the cursor to [`Scan::after`] for the
/// following page; keys sort by their UTF-8 bytes, so numeric ids sort as numbers only when
/// zero-padded (`user:000042`).
///
/// # Examples
///
/// ```
/// use nanasqlite_core::{NanaSQLite, Page, Scan};
///
/// let db = NanaSQLite::open(":memory:")?;
/// db.batch_update((0..5).map(|i| (format!("user:{i:03}"), i)))?;
/// let first: Page<i32> = db.scan_page(Scan::prefix("user:").limit(3))?;
/// assert_eq!(first.rows.len(), 3);
/// let cursor = first.next.expect("two rows are left");
/// let second: Page<i32> = db.scan_page(Scan::prefix("user:").after(cursor).limit(3))?;
/// assert_eq!(second.rows, [("user:003".to_owned(), 3), ("user:004".to_owned(), 4)]);
/// assert_eq!(second.next, None, "the end");
/// # Ok::<(), nanasqlite_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Page<T> {
    /// The rows, in the scan's order.
    pub rows: Vec<(String, T)>,
    /// The key to resume after ([`Scan::after`]), or `None` when no row is left.
    pub next: Option<String>,
}

impl Scan {
    /// The read of one page of this scan: [`SCAN_PAGE`] rows unless its limit says fewer (or
    /// more), and one more, to learn whether another page follows.
    pub(crate) fn one_page(self) -> ScanPage {
        let size = self.limit.unwrap_or(SCAN_PAGE);
        ScanPage::first(Arc::new(self), size.saturating_add(1))
    }

    /// The page of `read` rows (as [`one_page`](Self::one_page) read them), decoded.
    pub(crate) fn page_of<T: DeserializeOwned>(&self, reader: &Reader, read: RowsPage) -> Result<Page<T>> {
        let size = self.limit.unwrap_or(SCAN_PAGE);
        // One row more than the page was asked for: when it came, another page follows.
        let (mut rows, more) = (read.rows, read.next.is_some());
        rows.truncate(size);
        let next = more.then(|| rows.last().map(|(key, _)| key.clone())).flatten();
        Ok(Page { rows: reader.decode_rows(rows)?, next })
    }
}

/// What an iteration over a [`Scan`] has left to do, whoever runs its pages: the rows of the
/// current page, the next page to read, and how many rows the scan may still yield. Both
/// stores' iterators are this plus a way to run a `ScanPage`. `Debug` prints how many rows
/// are buffered, never their values.
pub struct Paging<T> {
    reader: Reader,
    rows: VecDeque<(String, Arc<CachedValue>)>,
    next: Option<ScanPage>,
    remaining: Option<usize>,
    decoded: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Paging<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Paging")
            .field("buffered", &self.rows.len())
            .field("more", &self.next.is_some())
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned> Paging<T> {
    /// The iteration of `scan`, before its first page; its rows go through `reader` (the
    /// table's hooks).
    pub fn new(scan: Scan, reader: Reader) -> Self {
        let remaining = scan.limit;
        let page = remaining.map_or(SCAN_PAGE, |limit| limit.min(SCAN_PAGE));
        let next = (remaining != Some(0)).then(|| ScanPage::first(Arc::new(scan), page));
        Self { reader, rows: VecDeque::new(), next, remaining, decoded: PhantomData }
    }

    /// The next row if the current page has one (`None`: run [`next_page`](Self::next_page)
    /// if there is one, else the iteration is over).
    pub fn next_row(&mut self) -> Option<Result<(String, T)>> {
        if self.remaining == Some(0) {
            return None;
        }
        let (key, value) = self.rows.pop_front()?;
        if let Some(remaining) = &mut self.remaining {
            *remaining -= 1;
        }
        Some(self.reader.decode(&key, &value).map(|value| (key, value)))
    }

    /// The page to read next, if any (sized to what the limit leaves).
    pub fn next_page(&mut self) -> Option<ScanPage> {
        if self.remaining == Some(0) {
            return None;
        }
        let page = self.next.take()?;
        Some(match self.remaining {
            Some(remaining) => page.limited(remaining.min(SCAN_PAGE)),
            None => page,
        })
    }

    /// Takes in the rows of a page read.
    pub fn take_page(&mut self, page: RowsPage) {
        self.rows.extend(page.rows);
        self.next = page.next;
    }

    /// Ends the iteration (after an error).
    pub fn end(&mut self) {
        self.rows.clear();
        self.next = None;
    }
}

/// The smallest string greater than every string starting with `prefix`, if any: its last
/// character that can grow, grown by one code point, with what followed it dropped.
fn successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_successor_bounds_every_key_with_the_prefix() {
        assert_eq!(successor("user:").as_deref(), Some("user;"));
        assert_eq!(successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(successor("\u{D7FF}").as_deref(), Some("\u{E000}"), "surrogates are skipped");
        assert_eq!(successor("\u{10FFFF}"), None);
        assert_eq!(successor(""), None);
        for key in ["user:", "user:zzz", "user:\u{10FFFF}\u{10FFFF}"] {
            assert!(key.as_bytes() < successor("user:").unwrap().as_bytes(), "{key:?}");
        }
    }

    #[test]
    fn builders_set_what_they_say() {
        let scan = Scan::range("a"..="m").after("c").limit(5).descending();
        assert_eq!(scan.lower, Bound::Included("a".to_owned()));
        assert_eq!(scan.upper, Bound::Included("m".to_owned()));
        assert_eq!((scan.after.as_deref(), scan.limit, scan.descending), (Some("c"), Some(5), true));
        assert_eq!(Scan::range(.."k").lower, Bound::Unbounded);
    }
}
