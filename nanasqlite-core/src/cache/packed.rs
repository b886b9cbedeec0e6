//! Rows loaded in bulk and not read since, packed: every key and JSON text in a few large
//! pages, found through a hash table of their places.
//!
//! A row cached one allocation per part (its key, its text, the shared entry, the map's node)
//! costs about 3.8× its JSON in memory, mostly allocator headers and rounding. Packed, a row
//! costs its key and text bytes plus 16 bytes in the table: about 1.5× its JSON. The cache
//! keeps rows packed until they are written, or read by a read that keeps its decoded form
//! (which then serves the next hits); other reads decode a copy of the text.

use std::hash::BuildHasher;
use std::sync::Arc;

use foldhash::fast::RandomState;
use hashbrown::HashTable;

use super::CachedValue;

/// Bytes of one page.
const PAGE: usize = 64 * 1024;
/// Rows longer than this get a page of their own, so that small rows keep filling the current
/// page instead of leaving its tail empty.
const OWN_PAGE: usize = PAGE / 4;

/// Where one row's key and text are: `key_len` bytes of key at `offset` of page `page`, then
/// `text_len` bytes of JSON text.
#[derive(Clone, Copy, Debug)]
struct Place {
    page: u32,
    offset: u32,
    key_len: u32,
    text_len: u32,
}

impl Place {
    fn len(self) -> usize {
        self.key_len as usize + self.text_len as usize
    }
}

/// Packed rows, each key at most once.
#[derive(Default)]
pub(crate) struct Packed {
    pages: Vec<Vec<u8>>,
    /// The page small rows go to.
    current: usize,
    places: HashTable<Place>,
    hasher: RandomState,
    /// Bytes of the rows held.
    held: usize,
    /// Bytes of rows taken out, still in the pages until they are repacked.
    taken: usize,
}

impl std::fmt::Debug for Packed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packed").field("rows", &self.len()).field("taken", &self.taken).finish_non_exhaustive()
    }
}

impl Packed {
    /// Adds a row whose key is not packed yet (a bulk load visits each key once). `false`,
    /// and nothing added, for a row too large to place (over 4 GiB), which the caller keeps
    /// as an ordinary entry.
    pub(crate) fn push(&mut self, key: &str, text: &str) -> bool {
        let (Ok(key_len), Ok(text_len)) = (u32::try_from(key.len()), u32::try_from(text.len())) else {
            return false;
        };
        let len = key.len() + text.len();
        let index = if len > OWN_PAGE {
            self.pages.push(Vec::with_capacity(len));
            self.pages.len() - 1
        } else {
            let room = self.pages.get(self.current).is_some_and(|page| page.capacity() - page.len() >= len);
            if !room {
                self.pages.push(Vec::with_capacity(PAGE));
                self.current = self.pages.len() - 1;
            }
            self.current
        };
        let Ok(page) = u32::try_from(index) else { return false };
        let target = &mut self.pages[index];
        let Ok(offset) = u32::try_from(target.len()) else { return false };
        target.extend_from_slice(key.as_bytes());
        target.extend_from_slice(text.as_bytes());
        let place = Place { page, offset, key_len, text_len };
        let hash = self.hasher.hash_one(key);
        let (pages, hasher) = (&self.pages, &self.hasher);
        self.places.insert_unique(hash, place, |place| hasher.hash_one(key_at(pages, *place)));
        self.held += len;
        true
    }

    /// The rows held.
    pub(crate) fn len(&self) -> usize {
        self.places.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.places.is_empty()
    }

    /// The JSON text of `key`, if it is packed.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.place(key).map(|place| text_at(&self.pages, place))
    }

    pub(crate) fn contains(&self, key: &str) -> bool {
        self.place(key).is_some()
    }

    /// Where `key` is; nothing is hashed while no row is packed (every cache miss asks).
    fn place(&self, key: &str) -> Option<Place> {
        if self.is_empty() {
            return None;
        }
        let hash = self.hasher.hash_one(key);
        self.places.find(hash, |place| key_bytes(&self.pages, *place) == key.as_bytes()).copied()
    }

    /// Takes `key` out (it was read); returns its text.
    pub(crate) fn take(&mut self, key: &str) -> Option<String> {
        self.take_with(key, str::to_owned)
    }

    /// Drops `key` (it was written or forgotten); whether it was packed.
    pub(crate) fn remove(&mut self, key: &str) -> bool {
        self.take_with(key, |_| ()).is_some()
    }

    /// Takes `key` out, handing its text to `read` first. The pages are repacked once most of
    /// their bytes belong to rows taken out, and freed with the last row.
    fn take_with<R>(&mut self, key: &str, read: impl FnOnce(&str) -> R) -> Option<R> {
        if self.is_empty() {
            return None;
        }
        let hash = self.hasher.hash_one(key);
        let entry = self.places.find_entry(hash, |place| key_bytes(&self.pages, *place) == key.as_bytes()).ok()?;
        let (place, _) = entry.remove();
        let output = read(text_at(&self.pages, place));
        self.taken += place.len();
        self.held -= place.len();
        if self.places.is_empty() {
            *self = Self::default();
        } else if self.taken > PAGE && self.taken > self.held {
            self.repack();
        }
        Some(output)
    }

    /// Every packed row, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.places.iter().map(|place| (key_at(&self.pages, *place), text_at(&self.pages, *place)))
    }

    /// Every packed row as an entry of its own, holding a copy of its text (for listings).
    pub(crate) fn copies(&self) -> impl Iterator<Item = (String, Arc<CachedValue>)> {
        self.iter().map(|(key, text)| (key.to_owned(), CachedValue::new(text)))
    }

    /// Copies the rows still held into fresh pages, dropping the bytes of rows taken out.
    fn repack(&mut self) {
        let mut fresh = Self { hasher: self.hasher.clone(), ..Self::default() };
        for (key, text) in self.iter() {
            let pushed = fresh.push(key, text);
            debug_assert!(pushed, "a row that was placed once fits again");
        }
        *self = fresh;
    }
}

fn bytes_at(pages: &[Vec<u8>], page: u32, from: usize, len: usize) -> &[u8] {
    &pages[page as usize][from..from + len]
}

/// Bytes a `&str` was copied into whole, as text again.
fn as_str(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}

fn key_bytes(pages: &[Vec<u8>], place: Place) -> &[u8] {
    bytes_at(pages, place.page, place.offset as usize, place.key_len as usize)
}

fn key_at(pages: &[Vec<u8>], place: Place) -> &str {
    as_str(key_bytes(pages, place))
}

fn text_at(pages: &[Vec<u8>], place: Place) -> &str {
    as_str(bytes_at(pages, place.page, place.offset as usize + place.key_len as usize, place.text_len as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_row_by_its_key_and_forgets_rows_taken_out() {
        let mut packed = Packed::default();
        assert!(packed.push("a", "1") && packed.push("ab", "[2]") && packed.push("", "\"empty key\""));
        assert_eq!(
            (packed.get("a"), packed.get("ab"), packed.get("")),
            (Some("1"), Some("[2]"), Some("\"empty key\""))
        );
        assert_eq!(packed.get("b"), None);
        assert_eq!(packed.take("ab").as_deref(), Some("[2]"));
        assert_eq!(packed.take("ab"), None);
        assert!(!packed.contains("ab") && packed.contains("a"));
        let mut rows: Vec<_> = packed.iter().collect();
        rows.sort_unstable();
        assert_eq!(rows, [("", "\"empty key\""), ("a", "1")]);
    }

    #[test]
    fn a_long_row_gets_a_page_of_its_own_and_small_rows_keep_filling_theirs() {
        let mut packed = Packed::default();
        let (long, longer) = ("x".repeat(OWN_PAGE + 1), "z".repeat(PAGE * 2));
        packed.push("small", "1");
        packed.push("long", &long);
        packed.push("longer", &longer);
        packed.push("after", "2");
        assert_eq!((packed.get("long"), packed.get("longer")), (Some(long.as_str()), Some(longer.as_str())));
        assert_eq!((packed.get("small"), packed.get("after")), (Some("1"), Some("2")));
        assert_eq!(packed.pages.len(), 3, "the small rows share the first page");
        assert_eq!(packed.pages[1].capacity(), long.len() + 4, "a long row's page is its own size");
    }

    #[test]
    fn rows_taken_out_are_repacked_away_and_the_last_frees_the_pages() {
        let mut packed = Packed::default();
        let text = "y".repeat(100);
        for i in 0..5000 {
            packed.push(&format!("key_{i}"), &text);
        }
        let pages = packed.pages.len();
        for i in 0..4000 {
            assert_eq!(packed.take(&format!("key_{i}")).as_deref(), Some(text.as_str()));
        }
        assert!(packed.pages.len() < pages, "{} pages of {pages} kept", packed.pages.len());
        assert!(packed.taken <= packed.held + PAGE);
        assert_eq!(packed.held, 1000 * ("key_4000".len() + text.len()));
        assert!((4000..5000).all(|i| packed.get(&format!("key_{i}")) == Some(text.as_str())));
        for i in 4000..5000 {
            packed.take(&format!("key_{i}"));
        }
        assert!(packed.is_empty() && packed.pages.is_empty());
    }
}
