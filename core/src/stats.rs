//! Counters for `oidc.stats()`: a fixed-size table of (counter, labels) → count that needs
//! no allocation, so that it can live in shared memory (plain `Copy` data, the same layout
//! in every process) or in one backend.
//!
//! A key is the counter, a database (0 for counters that are not per database), one text
//! label (an algorithm, a failed check, a rule name; empty for none) and one small variant
//! (`allow`/`deny`, a refresh's outcome). Text labels keep their first [`LABEL_BYTES`]
//! bytes (cut on a character boundary): two rule names that share so long a prefix share a
//! counter. When every slot is taken, further new keys are counted in `dropped` instead.

use std::fmt;

/// Bytes of a text label kept (see the module docs).
pub const LABEL_BYTES: usize = 63;

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Counter {
    /// Tokens whose signature and claims were verified, by algorithm (label).
    TokensVerified = 1,
    /// Tokens refused, by the check that failed (label).
    TokensRefused,
    /// Resolutions of a token found in the backend's cache of verified tokens.
    CacheHits,
    /// Resolutions that had to verify the token.
    CacheMisses,
    /// Row decisions of `oidc.allow()`, by database, deciding rule (label, empty for the
    /// default deny) and decision (variant).
    Decisions,
    /// Row decisions on which a rule's condition could not be evaluated, by database and rule.
    RuleErrors,
    /// Row decisions that the shadow rules would have changed, by database, shadow rule and
    /// the decision they would have made (variant).
    ShadowDifferences,
    /// Key-set refreshes of the keys worker, by database and outcome (variant).
    KeyRefreshes,
}

impl Counter {
    pub const ALL: [Counter; 8] = [
        Counter::TokensVerified,
        Counter::TokensRefused,
        Counter::CacheHits,
        Counter::CacheMisses,
        Counter::Decisions,
        Counter::RuleErrors,
        Counter::ShadowDifferences,
        Counter::KeyRefreshes,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Counter::TokensVerified => "tokens_verified",
            Counter::TokensRefused => "tokens_refused",
            Counter::CacheHits => "cache_hits",
            Counter::CacheMisses => "cache_misses",
            Counter::Decisions => "decisions",
            Counter::RuleErrors => "rule_errors",
            Counter::ShadowDifferences => "shadow_differences",
            Counter::KeyRefreshes => "key_refreshes",
        }
    }

    fn from_u8(v: u8) -> Option<Counter> {
        Counter::ALL.into_iter().find(|c| *c as u8 == v)
    }

    /// The name of the text label in `oidc.stats()`'s labels, if the counter has one.
    pub fn label_name(self) -> Option<&'static str> {
        match self {
            Counter::TokensVerified => Some("alg"),
            Counter::TokensRefused => Some("check"),
            Counter::Decisions | Counter::RuleErrors | Counter::ShadowDifferences => Some("rule"),
            Counter::CacheHits | Counter::CacheMisses | Counter::KeyRefreshes => None,
        }
    }

    /// The name and value of the variant label, if the counter has one.
    pub fn variant(self, v: u8) -> Option<(&'static str, &'static str)> {
        let decision = if v == 1 { "allow" } else { "deny" };
        match self {
            Counter::Decisions => Some(("decision", decision)),
            Counter::ShadowDifferences => Some(("would", decision)),
            Counter::KeyRefreshes => Some(("outcome", Refresh::from_u8(v).name())),
            _ => None,
        }
    }
}

/// What a refresh of a discovery issuer's keys ended with (the variant of `key_refreshes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Refresh {
    /// A new key set was stored.
    Changed = 1,
    /// The fetched key set was the one in force.
    Unchanged,
    /// The fetch or the validation failed (the keys in force stay).
    Failed,
}

impl Refresh {
    fn from_u8(v: u8) -> Refresh {
        match v {
            1 => Refresh::Changed,
            2 => Refresh::Unchanged,
            _ => Refresh::Failed,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Refresh::Changed => "changed",
            Refresh::Unchanged => "unchanged",
            Refresh::Failed => "failed",
        }
    }
}

/// A text label, cut to [`LABEL_BYTES`] on a character boundary.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Label {
    len: u8,
    bytes: [u8; LABEL_BYTES],
}

impl Label {
    pub const NONE: Label = Label {
        len: 0,
        bytes: [0; LABEL_BYTES],
    };

    pub fn new(s: &str) -> Label {
        let mut end = s.len().min(LABEL_BYTES);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let mut bytes = [0; LABEL_BYTES];
        bytes[..end].copy_from_slice(&s.as_bytes()[..end]);
        Label {
            len: end as u8,
            bytes,
        }
    }

    pub fn as_str(&self) -> &str {
        let bytes = &self.bytes[..usize::from(self.len).min(LABEL_BYTES)];
        // Always whole characters (see `new`); a torn read of shared memory is not possible
        // under the table's lock, but an invalid prefix would show as nothing, not garbage.
        std::str::from_utf8(bytes).unwrap_or("")
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// One counter's identity (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub counter: Counter,
    pub database: u32,
    pub label: Label,
    pub variant: u8,
}

impl Key {
    pub fn new(counter: Counter, database: u32, label: &str, variant: u8) -> Key {
        Key {
            counter,
            database,
            label: Label::new(label),
            variant,
        }
    }

    /// FNV-1a over the key's bytes: where its slot search starts.
    fn hash(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |b: u8| {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        };
        eat(self.counter as u8);
        self.database.to_le_bytes().into_iter().for_each(&mut eat);
        self.label.as_str().bytes().for_each(&mut eat);
        eat(self.variant);
        h
    }
}

#[derive(Clone, Copy)]
struct Slot {
    /// 0: empty; else a `Counter`.
    counter: u8,
    variant: u8,
    database: u32,
    label: Label,
    value: u64,
}

impl Slot {
    const EMPTY: Slot = Slot {
        counter: 0,
        variant: 0,
        database: 0,
        label: Label::NONE,
        value: 0,
    };

    fn key(&self) -> Option<Key> {
        Some(Key {
            counter: Counter::from_u8(self.counter)?,
            database: self.database,
            label: self.label,
            variant: self.variant,
        })
    }
}

/// Counters by key in `N` slots (open addressing, linear probing; nothing is ever removed
/// but by [`Table::reset`]).
#[derive(Clone, Copy)]
pub struct Table<const N: usize> {
    slots: [Slot; N],
    used: usize,
    /// Counts of keys that found no free slot.
    pub dropped: u64,
}

impl<const N: usize> Default for Table<N> {
    fn default() -> Self {
        Table {
            slots: [Slot::EMPTY; N],
            used: 0,
            dropped: 0,
        }
    }
}

impl<const N: usize> Table<N> {
    /// Adds `n` to the counter `key` (saturating: a counter never wraps to small).
    pub fn add(&mut self, key: &Key, n: u64) {
        if N == 0 {
            self.dropped = self.dropped.saturating_add(n);
            return;
        }
        let start = (key.hash() % N as u64) as usize;
        for probe in 0..N {
            let slot = &mut self.slots[(start + probe) % N];
            if slot.counter == 0 {
                if self.used * 8 >= N * 7 {
                    break; // keep probes short: a full table counts new keys as dropped
                }
                *slot = Slot {
                    counter: key.counter as u8,
                    variant: key.variant,
                    database: key.database,
                    label: key.label,
                    value: n,
                };
                self.used += 1;
                return;
            }
            if slot.key().as_ref() == Some(key) {
                slot.value = slot.value.saturating_add(n);
                return;
            }
        }
        self.dropped = self.dropped.saturating_add(n);
    }

    /// Every counter with its value, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (Key, u64)> + '_ {
        self.slots
            .iter()
            .filter_map(|s| s.key().map(|k| (k, s.value)))
    }

    /// Adds every counter of `other` to this table.
    pub fn merge<const M: usize>(&mut self, other: &Table<M>) {
        for (key, n) in other.iter() {
            self.add(&key, n);
        }
        self.dropped = self.dropped.saturating_add(other.dropped);
    }

    /// Empties the table in place (a shared table is too large for a temporary copy).
    pub fn reset(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = Slot::EMPTY);
        self.used = 0;
        self.dropped = 0;
    }

    /// Zeroes the counters of database `db` (the counts of the others, those without a
    /// database and `dropped` stay). Their keys keep their slots: they count on from zero.
    pub fn reset_database(&mut self, db: u32) {
        self.slots
            .iter_mut()
            .filter(|s| s.counter != 0 && s.database == db)
            .for_each(|s| s.value = 0);
    }

    /// Removes the counters of database `db` (a dropped database): their slots are free
    /// for new keys. The others keep their counts; `dropped` stays. `scratch` holds the
    /// others meanwhile (give it a capacity of `N` and nothing is allocated here: a shared
    /// table is changed under a lock).
    pub fn remove_database(&mut self, db: u32, scratch: &mut Vec<(Key, u64)>) {
        if !self
            .slots
            .iter()
            .any(|s| s.counter != 0 && s.database == db)
        {
            return;
        }
        // Open addressing: the rest are placed again, as if added afresh (all fit: fewer
        // than were there).
        scratch.clear();
        scratch.extend(self.iter().filter(|(k, _)| k.database != db));
        let dropped = self.dropped;
        self.reset();
        for (key, n) in scratch.iter() {
            self.add(key, *n);
        }
        self.dropped = dropped;
        scratch.clear();
    }

    /// Whether new keys would soon be dropped: time to move the counts on.
    pub fn nearly_full(&self) -> bool {
        self.used * 4 >= N * 3
    }

    pub fn is_empty(&self) -> bool {
        self.used == 0 && self.dropped == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn a_database_reset_zeroes_only_that_databases_counters() {
        let mut table = Table::<64>::default();
        let a = Key::new(Counter::Decisions, 7, "owner", 1);
        let b = Key::new(Counter::Decisions, 8, "owner", 1);
        let none = Key::new(Counter::CacheHits, 0, "", 0);
        for key in [&a, &b, &none] {
            table.add(key, 5);
        }
        table.dropped = 2;
        table.reset_database(7);
        let values: HashMap<Key, u64> = table.iter().collect();
        assert_eq!((values[&a], values[&b], values[&none]), (0, 5, 5));
        assert_eq!(table.dropped, 2);
        table.add(&a, 1);
        assert_eq!(table.iter().find(|(k, _)| *k == a).map(|(_, n)| n), Some(1));
        assert_eq!(table.iter().count(), 3, "the key kept its slot");
    }

    #[test]
    fn a_dropped_databases_counters_free_their_slots() {
        let mut table = Table::<64>::default();
        // Full for new keys (7/8 of the slots): 28 of database 7, 28 of others.
        for i in 0..56u32 {
            let db = if i % 2 == 0 { 7 } else { 100 + i };
            table.add(
                &Key::new(Counter::Decisions, db, &format!("r{i}"), 0),
                u64::from(i) + 1,
            );
        }
        let late = Key::new(Counter::Decisions, 9, "late", 0);
        table.add(&late, 3);
        assert_eq!(table.dropped, 3, "full");
        let before: HashMap<Key, u64> = table.iter().collect();
        table.remove_database(7, &mut Vec::new());
        let after: HashMap<Key, u64> = table.iter().collect();
        let expected: HashMap<Key, u64> = before
            .into_iter()
            .filter(|(k, _)| k.database != 7)
            .collect();
        assert_eq!(after, expected, "the others keep their counts");
        assert_eq!((after.len(), table.dropped), (28, 3));
        for i in 0..20 {
            table.add(&Key::new(Counter::Decisions, 9, &format!("new{i}"), 0), 1);
        }
        assert_eq!(table.iter().count(), 48, "the freed slots take new keys");
        assert_eq!(table.dropped, 3);
        table.add(&Key::new(Counter::Decisions, 101, "r1", 0), 1);
        assert_eq!(
            table
                .iter()
                .find(|(k, _)| k.database == 101)
                .map(|(_, n)| n),
            Some(3),
            "a kept key is found where it was placed again"
        );
    }

    #[test]
    fn counts_add_up_per_key_as_a_map_would() {
        // 120 distinct keys (8 counters, 3 databases, 5 labels, 2 variants, by the CRT)
        let mut table = Table::<256>::default();
        let mut reference: HashMap<Key, u64> = HashMap::new();
        let labels = ["", "RS256", "owner-read", "ünïcödé", "a"];
        for i in 0..2000u64 {
            let counter = Counter::ALL[(i % 8) as usize];
            let key = Key::new(
                counter,
                (i % 3) as u32,
                labels[(i % 5) as usize],
                (i % 2) as u8,
            );
            table.add(&key, i % 7);
            *reference.entry(key).or_default() += i % 7;
        }
        let got: HashMap<Key, u64> = table.iter().collect();
        assert_eq!(got, reference);
        assert_eq!(table.dropped, 0);
    }

    #[test]
    fn a_full_table_drops_new_keys_and_keeps_counting_old_ones() {
        let mut table = Table::<8>::default();
        for i in 0..20u32 {
            table.add(&Key::new(Counter::Decisions, i, "r", 1), 1);
        }
        assert_eq!(table.iter().count(), 7);
        assert_eq!(table.dropped, 13);
        let kept = table.iter().next().unwrap().0;
        table.add(&kept, 5);
        assert_eq!(table.iter().find(|(k, _)| *k == kept).unwrap().1, 6);
        table.reset();
        assert!(table.is_empty());
    }

    #[test]
    fn labels_are_cut_on_a_character_boundary() {
        let long = "é".repeat(40); // 80 bytes
        let label = Label::new(&long);
        assert_eq!(label.as_str(), "é".repeat(31));
        assert_eq!(Label::new("owner").as_str(), "owner");
        let mut table = Table::<4>::default();
        table.add(&Key::new(Counter::Decisions, 1, &long, 0), u64::MAX);
        table.add(
            &Key::new(Counter::Decisions, 1, &(long.clone() + "x"), 0),
            1,
        );
        assert_eq!(table.iter().map(|(_, n)| n).collect::<Vec<_>>(), [u64::MAX]);
    }

    #[test]
    fn merge_adds_tables() {
        let (mut a, mut b) = (Table::<16>::default(), Table::<4>::default());
        let k = Key::new(Counter::CacheHits, 0, "", 0);
        a.add(&k, 2);
        b.add(&k, 3);
        b.add(&Key::new(Counter::CacheMisses, 0, "", 0), 1);
        a.merge(&b);
        assert_eq!(a.iter().find(|(key, _)| *key == k).unwrap().1, 5);
        assert_eq!(a.iter().count(), 2);
    }

    #[test]
    fn variants_name_their_values() {
        assert_eq!(Counter::Decisions.variant(1), Some(("decision", "allow")));
        assert_eq!(
            Counter::ShadowDifferences.variant(0),
            Some(("would", "deny"))
        );
        assert_eq!(
            Counter::KeyRefreshes.variant(Refresh::Unchanged as u8),
            Some(("outcome", "unchanged"))
        );
        assert_eq!(Counter::CacheHits.variant(0), None);
    }
}
