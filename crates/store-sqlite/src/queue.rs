//! The job queue between async callers and the connection threads: a deque under a
//! mutex, and a condition variable the idle threads sleep on.
//!
//! Why not a channel: the readers share one queue, and a channel receiver shared behind
//! a mutex wakes two threads per job (the one waiting on the channel, then the next one
//! waiting for the mutex). Here a push wakes at most one sleeping thread, and none when
//! every thread is busy. The writer takes everything waiting in one lock, which is what
//! group commit wants.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};

pub(crate) struct Queue<T> {
    state: Mutex<State<T>>,
    /// Signalled when an item arrives or the queue closes.
    ready: Condvar,
}

struct State<T> {
    items: VecDeque<T>,
    /// No more items are accepted; the threads end once the queue is empty.
    closed: bool,
    /// Threads waiting on `ready`, so that a push to busy threads skips the wake-up.
    sleeping: usize,
}

impl<T> Queue<T> {
    pub(crate) fn new() -> Self {
        Queue {
            state: Mutex::new(State {
                items: VecDeque::new(),
                closed: false,
                sleeping: 0,
            }),
            ready: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing that runs under this lock can leave the state half-changed.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an item for the threads; hands it back if the queue is closed.
    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        let mut state = self.lock();
        if state.closed {
            return Err(item);
        }
        state.items.push_back(item);
        let wake = state.sleeping > 0;
        drop(state);
        if wake {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Moves up to `max` waiting items to `into`, first waiting for one if there is
    /// none. False once the queue is closed and empty: the thread should end.
    pub(crate) fn take(&self, max: usize, into: &mut VecDeque<T>) -> bool {
        let mut state = self.lock();
        while state.items.is_empty() {
            if state.closed {
                return false;
            }
            state.sleeping += 1;
            state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner());
            state.sleeping -= 1;
        }
        let count = state.items.len().min(max);
        into.extend(state.items.drain(..count));
        true
    }

    /// Refuses further items and wakes every thread, so that each finishes what is
    /// queued and ends.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}
