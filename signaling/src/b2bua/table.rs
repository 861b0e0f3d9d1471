//! A keyed table of state machines with a deadline index and a list of entries touched since
//! they were last looked at: what lets the core's cost per message stay independent of how many
//! transactions and calls are live (no scan of every entry on each event, each timer, or each
//! `poll_timeout`).
//!
//! Every mutable access through [`Table::get_mut`] or [`Table::insert`] marks the entry
//! touched; the owner drains [`Table::take_touched`], collects what each touched entry has to
//! say, and re-arms its deadline with [`Table::arm`]. Due entries come out of
//! [`Table::pop_due`] in deadline order.

use std::borrow::Borrow;
use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::time::Instant;

#[derive(Debug)]
struct Slot<V> {
    value: V,
    /// The deadline this entry has in the index, if any.
    armed: Option<Instant>,
    touched: bool,
}

/// Entries by key, with their deadlines in order and the keys touched since the last drain.
#[derive(Debug)]
pub(super) struct Table<K, V> {
    map: HashMap<K, Slot<V>>,
    deadlines: BTreeSet<(Instant, K)>,
    touched: Vec<K>,
}

impl<K, V> Default for Table<K, V> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            deadlines: BTreeSet::new(),
            touched: Vec::new(),
        }
    }
}

impl<K: Hash + Eq + Ord + Clone, V> Table<K, V> {
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    pub(super) fn contains_key(&self, k: &K) -> bool {
        self.map.contains_key(k)
    }

    pub(super) fn get<Q>(&self, k: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(k).map(|s| &s.value)
    }

    /// The entry, marked touched: its output and deadline are looked at in the next drain.
    pub(super) fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        let slot = self.map.get_mut(k)?;
        if !slot.touched {
            slot.touched = true;
            self.touched.push(k.clone());
        }
        Some(&mut slot.value)
    }

    /// The entry, not marked: for the owner's drain of touched entries.
    pub(super) fn peek_mut(&mut self, k: &K) -> Option<&mut V> {
        self.map.get_mut(k).map(|s| &mut s.value)
    }

    /// Adds (or replaces) an entry, marked touched.
    pub(super) fn insert(&mut self, k: K, value: V) {
        if let Some(old) = self.map.get(&k) {
            if let Some(at) = old.armed {
                self.deadlines.remove(&(at, k.clone()));
            }
        }
        self.touched.push(k.clone());
        self.map.insert(
            k,
            Slot {
                value,
                armed: None,
                touched: true,
            },
        );
    }

    pub(super) fn remove(&mut self, k: &K) -> Option<V> {
        let slot = self.map.remove(k)?;
        if let Some(at) = slot.armed {
            self.deadlines.remove(&(at, k.clone()));
        }
        // A key left in `touched` is skipped when drained: it is no longer in the map.
        Some(slot.value)
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &K> {
        self.map.keys()
    }

    /// The keys touched since the last call, each once, that are still in the table.
    pub(super) fn take_touched(&mut self) -> Vec<K> {
        let mut keys = std::mem::take(&mut self.touched);
        // Each key once (a key removed and inserted again may be listed twice), and only if
        // still in the table.
        keys.retain(|k| match self.map.get_mut(k) {
            Some(s) if s.touched => {
                s.touched = false;
                true
            }
            _ => false,
        });
        keys
    }

    /// Whether anything was touched since the last drain.
    pub(super) fn has_touched(&self) -> bool {
        !self.touched.is_empty()
    }

    /// Sets the entry's deadline in the index (`None`: no deadline).
    pub(super) fn arm(&mut self, k: &K, at: Option<Instant>) {
        let Some(slot) = self.map.get_mut(k) else {
            return;
        };
        if slot.armed == at {
            return;
        }
        if let Some(old) = slot.armed {
            self.deadlines.remove(&(old, k.clone()));
        }
        if let Some(new) = at {
            self.deadlines.insert((new, k.clone()));
        }
        slot.armed = at;
    }

    /// The earliest deadline.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// The key of an entry due at `now`, taken out of the index and marked touched (its new
    /// deadline is set when it is drained).
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<K> {
        let (at, _) = self.deadlines.first()?;
        if *at > now {
            return None;
        }
        let (_, k) = self.deadlines.pop_first()?;
        if let Some(slot) = self.map.get_mut(&k) {
            slot.armed = None;
            if !slot.touched {
                slot.touched = true;
                self.touched.push(k.clone());
            }
        }
        Some(k)
    }
}

impl<K: Hash + Eq + Ord + Clone, V> std::ops::Index<&K> for Table<K, V> {
    type Output = V;

    fn index(&self, k: &K) -> &V {
        self.get(k).expect("an entry the caller knows is there")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn deadlines_come_out_in_order_and_follow_rearming() {
        let t = testkit::VirtualClock::new().now();
        let mut tab: Table<u32, &str> = Table::default();
        tab.insert(1, "a");
        tab.insert(2, "b");
        tab.insert(3, "c");
        assert_eq!(tab.take_touched(), vec![1, 2, 3]);
        assert!(tab.take_touched().is_empty());
        tab.arm(&1, Some(t + Duration::from_secs(3)));
        tab.arm(&2, Some(t + Duration::from_secs(1)));
        tab.arm(&3, Some(t + Duration::from_secs(2)));
        tab.arm(&3, Some(t + Duration::from_secs(5)));
        assert_eq!(tab.next_deadline(), Some(t + Duration::from_secs(1)));
        assert_eq!(tab.pop_due(t + Duration::from_secs(3)), Some(2));
        assert_eq!(tab.pop_due(t + Duration::from_secs(3)), Some(1));
        assert_eq!(
            tab.pop_due(t + Duration::from_secs(3)),
            None,
            "3 moved to 5 s"
        );
        assert_eq!(tab.take_touched(), vec![2, 1]);
        tab.remove(&3);
        assert_eq!(tab.next_deadline(), None);
        tab.get_mut(&1);
        tab.get_mut(&1);
        tab.remove(&2);
        assert_eq!(tab.take_touched(), vec![1]);
    }
}
