//! Store: key file, wrong key, migrations, group commit isolation, async writes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Barrier};

use keygate::store::{SqliteStore, StoreError, StoreKey, TokenStore};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn key_file_is_created_0600_and_reloads_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = StoreKey::default_path(dir.path());
    let key = StoreKey::load_or_create(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 32);
    // No temp files left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("store.key")]);
    let again = StoreKey::load_or_create(&path).unwrap();
    let blob = key.seal(b"secret", b"aad").unwrap();
    assert_eq!(
        again
            .open_sealed(&blob, b"aad", "x")
            .unwrap()
            .expose_secret(),
        b"secret"
    );
}

#[test]
fn racing_key_creators_agree_on_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = StoreKey::default_path(dir.path());
    let barrier = Arc::new(Barrier::new(8));
    let keys: Vec<StoreKey> = (0..8)
        .map(|_| {
            let (path, barrier) = (path.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                StoreKey::load_or_create(&path).unwrap()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    let blob = keys[0].seal(b"x", b"").unwrap();
    for key in &keys {
        assert!(key.open_sealed(&blob, b"", "x").is_ok());
    }
}

#[test]
fn key_file_readable_by_others_or_of_wrong_length_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    std::fs::write(&path, [1u8; 32]).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = StoreKey::load_or_create(&path).unwrap_err();
    assert!(matches!(err, StoreError::KeyFile { .. }), "{err}");
    assert!(err.to_string().contains("0644"), "{err}");

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&path, [1u8; 31]).unwrap();
    let err = StoreKey::load(&path).unwrap_err();
    assert!(err.to_string().contains("31 bytes"), "{err}");
}

#[test]
fn wrong_key_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path(), StoreKey::from_bytes(&[1; 32])).unwrap());
    let err = SqliteStore::open(dir.path(), StoreKey::from_bytes(&[2; 32])).unwrap_err();
    assert!(matches!(err, StoreError::WrongKey), "{err}");
    assert!(err.to_string().contains("wrong"), "{err}");
    // The right key still opens it.
    SqliteStore::open(dir.path(), StoreKey::from_bytes(&[1; 32])).unwrap();
}

fn versions(store: &SqliteStore) -> Vec<i64> {
    store
        .read(|conn| {
            let mut stmt = conn.prepare("SELECT version FROM schema_version ORDER BY version")?;
            let rows = stmt.query_map([], |row| row.get(0))?;
            Ok(rows.collect::<Result<Vec<i64>, _>>()?)
        })
        .unwrap()
}

#[test]
fn migrations_are_idempotent_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_state_dir(dir.path()).unwrap();
    assert_eq!(store.schema_version().unwrap(), 3);
    assert_eq!(versions(&store), vec![1, 2, 3]);
    let journal: String = store
        .read(|c| Ok(c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(journal, "wal");
    drop(store);
    for _ in 0..3 {
        let store = SqliteStore::open_state_dir(dir.path()).unwrap();
        assert_eq!(versions(&store), vec![1, 2, 3]);
        assert!(store.list_tokens(None).unwrap().is_empty());
    }
    assert_eq!(mode(&dir.path().join("store.key")), 0o600);
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_state_dir(dir.path()).unwrap();
    store
        .write(|tx| {
            tx.execute("INSERT INTO schema_version VALUES (99, 0)", [])?;
            Ok(())
        })
        .unwrap();
    drop(store);
    let err = SqliteStore::open_state_dir(dir.path()).unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
}

#[test]
fn a_failing_or_panicking_closure_rolls_back_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open_state_dir(dir.path()).unwrap());
    store
        .write(|tx| {
            tx.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY)")?;
            Ok(())
        })
        .unwrap();
    let barrier = Arc::new(Barrier::new(60));
    let handles: Vec<_> = (0..60i64)
        .map(|n| {
            let (store, barrier) = (store.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                store.write(move |tx| {
                    tx.execute("INSERT INTO t (n) VALUES (?1)", [n])?;
                    match n % 3 {
                        0 => Ok(n),
                        1 => Err(StoreError::Conflict),
                        _ => panic!("closure {n} panics after writing"),
                    }
                })
            })
        })
        .collect();
    for (n, handle) in handles.into_iter().enumerate() {
        let result = handle.join().unwrap();
        match n % 3 {
            0 => assert_eq!(result.unwrap(), n as i64),
            1 => assert!(matches!(result, Err(StoreError::Conflict))),
            _ => assert!(matches!(result, Err(StoreError::Panicked))),
        }
    }
    let stored: Vec<i64> = store
        .read(|c| {
            let mut stmt = c.prepare("SELECT n FROM t ORDER BY n")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<Vec<i64>, _>>()?)
        })
        .unwrap();
    assert_eq!(stored, (0..60).filter(|n| n % 3 == 0).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_async_is_durable_and_visible() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open_state_dir(dir.path()).unwrap());
    store
        .write_async(|tx| {
            tx.execute_batch("CREATE TABLE a (n INTEGER)")?;
            Ok(())
        })
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for n in 0..32i64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .write_async(move |tx| Ok(tx.execute("INSERT INTO a VALUES (?1)", [n])?))
                .await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), 1);
    }
    let count: i64 = store
        .read(|c| Ok(c.query_row("SELECT COUNT(*) FROM a", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(count, 32);
}

/// A closure that ends the batch transaction itself (like SQLite does on I/O errors) must not
/// make any caller hear `Ok` for a change that is not stored, nor an error for one that is.
#[test]
fn ok_always_means_stored_even_when_the_batch_transaction_dies() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open_state_dir(dir.path()).unwrap());
    store
        .write(|tx| {
            tx.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY)")?;
            Ok(())
        })
        .unwrap();
    for round in 0..5i64 {
        // A slow write holds the writer so that the 40 below queue up and share one batch.
        let blocker = {
            let store = store.clone();
            std::thread::spawn(move || {
                store.write(|_| {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    Ok(())
                })
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        let barrier = Arc::new(Barrier::new(40));
        let handles: Vec<_> = (0..40i64)
            .map(|i| {
                let n = round * 100 + i;
                let (store, barrier) = (store.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let result = store.write(move |tx| {
                        tx.execute("INSERT INTO t (n) VALUES (?1)", [n])?;
                        if i == 17 {
                            tx.execute_batch("ROLLBACK")?;
                        }
                        Ok(())
                    });
                    (n, result.is_ok())
                })
            })
            .collect();
        let outcomes: Vec<(i64, bool)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        // The blocker shared a batch with none of them, or failed with them: either way no Ok lie.
        let _ = blocker.join().unwrap();
        let stored: Vec<i64> = store
            .read(|c| {
                let mut stmt = c.prepare("SELECT n FROM t")?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<Result<Vec<i64>, _>>()?)
            })
            .unwrap();
        for (n, ok) in outcomes {
            if ok {
                assert!(
                    stored.contains(&n),
                    "round {round}: {n} answered Ok but not stored"
                );
            }
        }
        assert!(!stored.contains(&(round * 100 + 17)));
    }
    // The writer keeps working afterwards.
    store
        .write(|tx| Ok(tx.execute("INSERT INTO t (n) VALUES (100000)", [])?))
        .unwrap();
}
