//! Which post-data build starts next.
//!
//! A run of builds (indexes, key and check constraints, foreign keys) is handed to the workers
//! as they free up, in file order except where a build must wait for a table. Builds on one
//! table run one at a time, except `CREATE INDEX`es, which share it as pg_restore lets them. A
//! foreign key also waits for every build before it in the file on either of its tables, so it
//! starts as soon as the keys and indexes it depends on exist rather than after the whole run:
//! its check then overlaps the last index builds instead of following them. (Starting the
//! build on the most data first, as pg_restore orders its items, was measured slower on the
//! benchmark's sample: 3.6 s of post-data against 3.0 s in file order.)
//!
//! A build that will run alone, with nothing else the workers could start beside it, may use
//! the server's own parallel workers; the others are built by one process each, since the
//! engine already keeps every worker busy and a parallel build spills its sorted runs to
//! temporary files for the leader to merge.

use std::collections::{HashMap, HashSet};

use crate::plan::Build;

/// The tables running builds hold: by how many shared builds, or by one that holds it alone.
#[derive(Default)]
pub(super) struct TableLocks(HashMap<String, usize>);

impl TableLocks {
    /// Marks a table held by a build that does not share it.
    const ALONE: usize = usize::MAX;

    fn admits(&self, build: &Build) -> bool {
        build.tables().iter().all(|table| match self.0.get(*table) {
            None => true,
            Some(&holders) => build.is_shared() && holders != Self::ALONE,
        })
    }

    pub(super) fn take(&mut self, build: &Build) {
        for table in build.tables() {
            let holders = self.0.entry(table.to_owned()).or_insert(0);
            *holders = if build.is_shared() {
                *holders + 1
            } else {
                Self::ALONE
            };
        }
    }

    pub(super) fn release(&mut self, build: &Build) {
        for table in build.tables() {
            if let Some(holders) = self.0.get_mut(table) {
                if build.is_shared() && *holders > 1 {
                    *holders -= 1;
                } else {
                    self.0.remove(table);
                }
            }
        }
    }

    /// True when no build holds a table.
    #[cfg(test)]
    fn is_free(&self) -> bool {
        self.0.is_empty()
    }
}

/// The position of the first pending build that may start now, given what `locks` holds.
pub(super) fn next_startable<'a>(
    pending: impl IntoIterator<Item = &'a Build>,
    locks: &TableLocks,
) -> Option<usize> {
    // The tables of the builds passed over so far: a set, since a long run of builds held up on
    // one table is scanned again each time a worker frees up.
    let mut waiting: HashSet<&str> = HashSet::new();
    for (at, build) in pending.into_iter().enumerate() {
        let tables = build.tables();
        let behind = matches!(build, Build::ForeignKey { .. })
            && tables.iter().any(|table| waiting.contains(table));
        if !behind && locks.admits(build) {
            return Some(at);
        }
        waiting.extend(tables);
    }
    None
}

/// True when a build just started (and taken into `locks`) runs with nothing beside it: no
/// other build runs, and no worker is left idle (`idle_workers`) or none of the pending builds
/// could start until it ends.
pub(super) fn runs_alone<'a>(
    pending: impl IntoIterator<Item = &'a Build>,
    locks: &TableLocks,
    others_running: usize,
    idle_workers: usize,
) -> bool {
    others_running == 0 && (idle_workers == 0 || next_startable(pending, locks).is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(table: &str) -> Build {
        Build::Index {
            table: table.into(),
            shared: true,
            btree: true,
        }
    }

    fn key(table: &str) -> Build {
        Build::Index {
            table: table.into(),
            shared: false,
            btree: true,
        }
    }

    fn fk(table: &str, references: &str) -> Build {
        Build::ForeignKey {
            table: table.into(),
            references: references.into(),
        }
    }

    #[test]
    fn create_index_shares_a_table_and_constraints_hold_it_alone() {
        let mut locks = TableLocks::default();
        locks.take(&index("events"));
        assert!(
            locks.admits(&index("events")),
            "two CREATE INDEX on one table"
        );
        assert!(!locks.admits(&key("events")) && !locks.admits(&fk("items", "events")));
        locks.take(&index("events"));
        locks.release(&index("events"));
        assert!(!locks.admits(&key("events")), "one CREATE INDEX still runs");
        locks.release(&index("events"));
        assert!(locks.admits(&key("events")));

        locks.take(&key("events"));
        assert!(!locks.admits(&index("events")) && !locks.admits(&fk("items", "events")));
        assert!(locks.admits(&index("items")));
        locks.release(&key("events"));
        assert!(locks.admits(&fk("items", "events")));
        assert!(locks.is_free());
    }

    #[test]
    fn a_foreign_key_starts_once_the_builds_on_its_tables_are_done() {
        let pending = [key("orders"), index("events"), fk("items", "orders")];
        let mut locks = TableLocks::default();
        assert_eq!(next_startable(&pending, &locks), Some(0));
        locks.take(&pending[0]);
        assert_eq!(next_startable(&pending[1..], &locks), Some(0));
        locks.take(&pending[1]);
        assert_eq!(
            next_startable(&pending[2..], &locks),
            None,
            "the key of orders runs"
        );
        locks.release(&pending[0]);
        assert_eq!(
            next_startable(&pending[2..], &locks),
            Some(0),
            "the index of events still runs, on another table"
        );
    }

    #[test]
    fn foreign_keys_sharing_a_table_start_in_file_order() {
        let mut locks = TableLocks::default();
        locks.take(&key("customers"));
        let pending = [
            fk("orders", "customers"),
            fk("items", "orders"),
            fk("a", "b"),
        ];
        assert_eq!(
            next_startable(&pending, &locks),
            Some(2),
            "items -> orders waits behind orders -> customers"
        );
    }

    #[test]
    fn index_builds_pass_a_build_waiting_for_its_table() {
        let mut locks = TableLocks::default();
        locks.take(&key("events"));
        let pending = [index("events"), index("orders")];
        assert_eq!(next_startable(&pending, &locks), Some(1));
    }

    #[test]
    fn a_build_runs_alone_only_when_nothing_could_start_beside_it() {
        let mut locks = TableLocks::default();
        locks.take(&key("events"));
        let pending = [index("events"), fk("orders", "events")];
        assert!(runs_alone(&pending, &locks, 0, 1));
        assert!(
            !runs_alone(&pending, &locks, 1, 1),
            "another build is running"
        );
        assert!(!runs_alone(&[index("orders")], &locks, 0, 1));
        assert!(
            runs_alone(&[index("orders")], &locks, 0, 0),
            "a single worker has nothing to run beside it"
        );
        assert!(runs_alone(&[], &locks, 0, 1));
    }
}
