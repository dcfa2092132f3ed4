//! The rows of a COPY block waiting for the worker that loads it.
//!
//! A plain dump is one stream: to reach the tables after a large one, the loader must read past
//! its rows while a worker still loads them. Those rows wait in the block's spool, in memory up
//! to a budget the restore's spools share, then in a temporary file of the block's own, which
//! goes when the spool does. The worker takes them in order. Past a second budget, for what the
//! files hold together, the loader waits for the workers to catch up, as it would with no spool.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::Notify;

/// What the spools of one restore may hold together, in memory and in their files.
#[derive(Debug)]
pub(crate) struct SpoolBudget {
    memory: u64,
    disk: u64,
    in_memory: AtomicU64,
    on_disk: AtomicU64,
    /// Woken whenever a spool gives rows up.
    freed: Notify,
}

impl SpoolBudget {
    pub(crate) fn new(memory: u64, disk: u64) -> Arc<Self> {
        Arc::new(SpoolBudget {
            memory,
            disk,
            in_memory: AtomicU64::new(0),
            on_disk: AtomicU64::new(0),
            freed: Notify::new(),
        })
    }

    /// True while the files hold more than their budget.
    pub(crate) fn is_full(&self) -> bool {
        self.on_disk.load(Ordering::Acquire) > self.disk
    }

    /// Waits until some spool gives rows up.
    pub(crate) async fn freed(&self) {
        self.freed.notified().await;
    }
}

enum Entry {
    Memory(Bytes),
    /// This many bytes, next in the file.
    Disk(usize),
}

#[derive(Default)]
struct State {
    entries: VecDeque<Entry>,
    file: Option<File>,
    written: u64,
    read: u64,
    ended: bool,
}

/// One block's rows, in the order the dump holds them.
pub(crate) struct Spool {
    budget: Arc<SpoolBudget>,
    state: Mutex<State>,
    /// Woken when rows arrive or the block ends.
    arrived: Notify,
}

impl Spool {
    pub(crate) fn new(budget: Arc<SpoolBudget>) -> Self {
        Spool {
            budget,
            state: Mutex::new(State::default()),
            arrived: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds rows after those already held.
    pub(crate) fn push(&self, rows: Bytes) -> io::Result<()> {
        let len = rows.len() as u64;
        let mut state = self.state();
        let spilled = matches!(state.entries.back(), Some(Entry::Disk(_)));
        let fits = self.budget.in_memory.load(Ordering::Acquire) + len <= self.budget.memory;
        // Rows go to the file once earlier ones have, so that they leave in order.
        if fits && !spilled {
            self.budget.in_memory.fetch_add(len, Ordering::AcqRel);
            state.entries.push_back(Entry::Memory(rows));
        } else {
            if state.file.is_none() {
                state.file = Some(tempfile::tempfile()?);
            }
            let file = state.file.as_mut().expect("a spool file");
            file.write_all(&rows)?;
            state.written += len;
            self.budget.on_disk.fetch_add(len, Ordering::AcqRel);
            state.entries.push_back(Entry::Disk(rows.len()));
        }
        drop(state);
        self.arrived.notify_one();
        Ok(())
    }

    /// Marks the end of the block: once the rows held are taken, there are no more.
    pub(crate) fn finish(&self) {
        self.state().ended = true;
        self.arrived.notify_one();
    }

    /// The next rows, waiting for them; `None` after the last.
    pub(crate) async fn next(&self) -> Option<io::Result<Bytes>> {
        loop {
            let notified = self.arrived.notified();
            {
                let mut state = self.state();
                match state.entries.pop_front() {
                    Some(Entry::Memory(rows)) => {
                        self.budget
                            .in_memory
                            .fetch_sub(rows.len() as u64, Ordering::AcqRel);
                        drop(state);
                        self.budget.freed.notify_waiters();
                        return Some(Ok(rows));
                    }
                    Some(Entry::Disk(len)) => {
                        let at = state.read;
                        state.read += len as u64;
                        let mut rows = vec![0; len];
                        let file = state.file.as_ref().expect("a spool file");
                        let read = file.read_exact_at(&mut rows, at);
                        if state.read == state.written {
                            // Everything written was read: the file starts over.
                            let reset = file.set_len(0);
                            state.read = 0;
                            state.written = 0;
                            if let (Ok(()), Err(err)) = (&read, reset) {
                                return Some(Err(err));
                            }
                            if let Some(file) = state.file.as_mut() {
                                if let Err(err) = io::Seek::rewind(file) {
                                    return Some(Err(err));
                                }
                            }
                        }
                        drop(state);
                        self.budget.on_disk.fetch_sub(len as u64, Ordering::AcqRel);
                        self.budget.freed.notify_waiters();
                        return Some(read.map(|()| Bytes::from(rows)));
                    }
                    None if state.ended => return None,
                    None => {}
                }
            }
            notified.await;
        }
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let state = self.state();
        let mut memory = 0;
        let mut disk = 0;
        for entry in &state.entries {
            match entry {
                Entry::Memory(rows) => memory += rows.len() as u64,
                Entry::Disk(len) => disk += *len as u64,
            }
        }
        drop(state);
        self.budget.in_memory.fetch_sub(memory, Ordering::AcqRel);
        self.budget.on_disk.fetch_sub(disk, Ordering::AcqRel);
        self.budget.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Bytes {
        Bytes::copy_from_slice(text.as_bytes())
    }

    #[tokio::test]
    async fn rows_leave_in_order_from_memory_and_file() {
        let budget = SpoolBudget::new(8, 1 << 20);
        let spool = Spool::new(budget.clone());
        for text in ["1\n2\n", "3\n4\n", "5\n", "6\n7\n"] {
            spool.push(rows(text)).expect("push");
        }
        assert!(
            budget.on_disk.load(Ordering::Acquire) > 0,
            "some rows spilled"
        );
        let first = spool.next().await.expect("rows").expect("read");
        assert_eq!(first, rows("1\n2\n"));
        // Memory freed, but rows after spilled ones still go to the file behind them.
        spool.push(rows("8\n")).expect("push");
        spool.finish();
        let mut rest = Vec::new();
        while let Some(next) = spool.next().await {
            rest.extend_from_slice(&next.expect("read"));
        }
        assert_eq!(rest, b"3\n4\n5\n6\n7\n8\n");
        assert_eq!(budget.in_memory.load(Ordering::Acquire), 0);
        assert_eq!(budget.on_disk.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_reader_waits_for_rows_and_the_end() {
        let budget = SpoolBudget::new(1 << 20, 1 << 20);
        let spool = Arc::new(Spool::new(budget));
        let reader = {
            let spool = spool.clone();
            tokio::spawn(async move {
                let mut all = Vec::new();
                while let Some(next) = spool.next().await {
                    all.extend_from_slice(&next.expect("read"));
                }
                all
            })
        };
        tokio::task::yield_now().await;
        spool.push(rows("a\n")).expect("push");
        tokio::task::yield_now().await;
        spool.push(rows("b\n")).expect("push");
        spool.finish();
        assert_eq!(reader.await.expect("reader"), b"a\nb\n");
    }

    #[test]
    fn a_dropped_spool_gives_its_budget_back() {
        let budget = SpoolBudget::new(4, 1 << 20);
        let spool = Spool::new(budget.clone());
        spool.push(rows("1\n2\n")).expect("push");
        spool.push(rows("3\n4\n")).expect("push");
        assert!(budget.on_disk.load(Ordering::Acquire) > 0);
        drop(spool);
        assert_eq!(budget.in_memory.load(Ordering::Acquire), 0);
        assert_eq!(budget.on_disk.load(Ordering::Acquire), 0);
    }
}
