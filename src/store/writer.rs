//! Group commit: one thread owns the write connection and runs every queued write closure in
//! one transaction, each inside its own SAVEPOINT (a failing closure rolls back only itself),
//! COMMITs once (one fsync for the whole batch under `synchronous=FULL`), and only then answers
//! the callers. Nobody hears a result before the COMMIT that made it durable has returned.

use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvError, RecvTimeoutError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::error::StoreError;

/// Called once the batch's COMMIT has finished: `Ok` when durable, `Err(message)` otherwise.
pub(crate) type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;

/// A queued write.
pub(crate) trait Work: Send {
    /// Runs inside the batch transaction (in its own savepoint) and returns the completion.
    fn run(self: Box<Self>, txn: &Transaction<'_>) -> Completion;
    /// The batch could not start: answer the caller with this error, nothing ran.
    fn abort(self: Box<Self>, message: String);
}

/// A queued write (boxed).
pub(crate) type Job = Box<dyn Work>;

/// Largest number of closures in one COMMIT (bounds the latency of the first caller).
pub(crate) const MAX_BATCH: usize = 512;

struct Pending<T, F, R> {
    work: F,
    reply: R,
    _result: PhantomData<fn() -> T>,
}

impl<T, F, R> Work for Pending<T, F, R>
where
    T: Send + 'static,
    F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    R: FnOnce(Result<T, StoreError>) + Send + 'static,
{
    fn run(self: Box<Self>, txn: &Transaction<'_>) -> Completion {
        let Pending { work, reply, .. } = *self;
        let outcome = run_in_savepoint(txn, work);
        Box::new(move |commit: Result<(), String>| {
            let result = match (outcome, commit) {
                (Err(e), _) => Err(e),
                (Ok(_), Err(message)) => Err(StoreError::Commit(message)),
                (Ok(value), Ok(())) => Ok(value),
            };
            reply(result);
        })
    }

    fn abort(self: Box<Self>, message: String) {
        (self.reply)(Err(StoreError::Commit(message)));
    }
}

/// Wraps a caller's closure and reply into a [`Job`].
pub(crate) fn job<T, F, R>(work: F, reply: R) -> Job
where
    T: Send + 'static,
    F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    R: FnOnce(Result<T, StoreError>) + Send + 'static,
{
    Box::new(Pending {
        work,
        reply,
        _result: PhantomData,
    })
}

fn run_in_savepoint<T, F>(txn: &Transaction<'_>, work: F) -> Result<T, StoreError>
where
    F: FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
{
    txn.execute_batch("SAVEPOINT kg_job")?;
    let result = match catch_unwind(AssertUnwindSafe(|| work(txn))) {
        Ok(result) => result,
        Err(_) => Err(StoreError::Panicked),
    };
    match result {
        Ok(value) => {
            txn.execute_batch("RELEASE kg_job")?;
            Ok(value)
        }
        Err(e) => {
            // Undo only this closure's changes; the batch goes on.
            txn.execute_batch("ROLLBACK TO kg_job; RELEASE kg_job")?;
            Err(e)
        }
    }
}

/// Counters of the writer: COMMITs and the write closures they carried.
#[derive(Debug, Default)]
pub(crate) struct WriterStats {
    pub(crate) commits: AtomicU64,
    pub(crate) writes: AtomicU64,
}

/// Longest a batch waits for callers expected back (see [`run`]).
const MAX_GATHER: Duration = Duration::from_millis(1);

/// The writer loop; returns when every sender is dropped.
///
/// Batching: the writer takes every queued job. Callers answered by the previous COMMIT are
/// expected back soon (a busy caller submits its next check right away), so when fewer jobs
/// are queued than `previous batch + jobs queued when this batch started`, the writer waits for
/// them up to half the previous commit's duration (at most 1 ms): the commit is shared by more
/// callers instead of alternating between two half-size groups. A single caller never waits.
pub(crate) fn run(mut conn: Connection, jobs: Receiver<Job>, stats: Arc<WriterStats>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut previous = 0usize;
    let mut last_commit = Duration::ZERO;
    loop {
        match jobs.recv() {
            Ok(first) => batch.push(first),
            Err(RecvError) => return,
        }
        drain(&jobs, &mut batch);
        let expected = (previous + batch.len() - 1).min(MAX_BATCH);
        if batch.len() < expected {
            let deadline = Instant::now() + (last_commit / 2).min(MAX_GATHER);
            while batch.len() < expected {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                match jobs.recv_timeout(deadline - now) {
                    Ok(next) => {
                        batch.push(next);
                        drain(&jobs, &mut batch);
                    }
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
        }
        previous = batch.len();
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats
            .writes
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        let started = Instant::now();
        run_batch(&mut conn, &mut batch);
        last_commit = started.elapsed();
    }
}

fn drain(jobs: &Receiver<Job>, batch: &mut Vec<Job>) {
    while batch.len() < MAX_BATCH {
        match jobs.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => break,
        }
    }
}

fn run_batch(conn: &mut Connection, batch: &mut Vec<Job>) {
    let txn = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(txn) => txn,
        Err(e) => {
            let message = format!("cannot begin a transaction: {e}");
            for job in batch.drain(..) {
                job.abort(message.clone());
            }
            return;
        }
    };
    let mut completions: Vec<Completion> = Vec::with_capacity(batch.len());
    for job in batch.drain(..) {
        // Some errors (I/O, disk full) make SQLite roll back the whole transaction. Running
        // further jobs would then autocommit them one by one outside the batch, so they are
        // answered with an error instead; the COMMIT below fails for the earlier ones.
        if txn.is_autocommit() {
            job.abort("the batch transaction was rolled back by an earlier error".into());
            continue;
        }
        completions.push(job.run(&txn));
    }
    let commit = txn.commit().map_err(|e| e.to_string());
    for completion in completions {
        completion(commit.clone());
    }
}
