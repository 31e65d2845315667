//! Bounded parallelism: a permit per HTTP request in flight, and a scoped parallel map.
//!
//! Requests are blocking (`ureq`), so parallelism is threads. Two levels overlap: many cases at
//! once (`resolve_many`) and, inside a case, every candidate URL of a wave at once. Threads are
//! cheap to block; what must stay bounded is the number of requests hitting the server, so each
//! request takes a [`Permit`] from one [`Semaphore`] shared by the whole resolver. std has no
//! counting semaphore, and a pool crate would not bound the nested fan-out any better than this.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::thread;

/// A counting semaphore bounding requests in flight.
#[derive(Debug)]
pub(crate) struct Semaphore {
    free: Mutex<usize>,
    cv: Condvar,
}

/// One unit of the semaphore, given back on drop.
pub(crate) struct Permit<'a>(&'a Semaphore);

impl Semaphore {
    /// A semaphore with `n` permits (at least 1).
    pub(crate) fn new(n: usize) -> Self {
        Semaphore {
            free: Mutex::new(n.max(1)),
            cv: Condvar::new(),
        }
    }

    /// Waits for a free permit.
    pub(crate) fn acquire(&self) -> Permit<'_> {
        // A poisoned lock only means another thread panicked while holding the count; the
        // count itself is still consistent (it is changed in one statement).
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.cv.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut free = self.0.free.lock().unwrap_or_else(|e| e.into_inner());
        *free += 1;
        self.0.cv.notify_one();
    }
}

/// `f` over `items` on at most `workers` scoped threads; results in input order. A panic in `f`
/// is propagated to the caller.
pub(crate) fn par_map<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let workers = workers.min(items.len()).max(1);
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, R)> = thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        out.push((i, f(item)));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}
