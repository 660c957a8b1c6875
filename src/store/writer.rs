//! Group commit: one thread owns the write connection and runs every queued write closure in
//! one transaction, each inside its own SAVEPOINT (a failing closure rolls back only itself),
//! COMMITs once (one fsync for the whole batch under `synchronous=FULL`), and only then answers
//! the callers. Nobody hears a result before the COMMIT that made it durable has returned.

use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, RecvError};

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

/// The writer loop; returns when every sender is dropped.
pub(crate) fn run(mut conn: Connection, jobs: Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    loop {
        match jobs.recv() {
            Ok(first) => batch.push(first),
            Err(RecvError) => return,
        }
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        run_batch(&mut conn, &mut batch);
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
    let completions: Vec<Completion> = batch.drain(..).map(|job| job.run(&txn)).collect();
    let commit = txn.commit().map_err(|e| e.to_string());
    for completion in completions {
        completion(commit.clone());
    }
}
