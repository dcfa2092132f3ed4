//! `sr_restore`: one restore started from C, its options, and its update callback.

use std::ffi::{c_char, c_void, CString};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::Duration;

use restore_core::{Engine, OnError, RestoreEvents, RestoreOptions, RestoreRequest};

use crate::backups::unknown;
use crate::engine::sr_engine;
use crate::error::{run, sr_result, Failure};
use crate::ffi::{borrow, borrow_str, c_string, check_out, give, take};
use crate::panic::boundary_or;
use crate::status::{sr_status, sr_update, with_update, OwnedStatus};

/// What a failing statement or COPY block does.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sr_on_error {
    /// Fail the restore; the target is left untouched.
    SR_ON_ERROR_STOP = 0,
    /// Skip it, report it, and finish, as psql does.
    SR_ON_ERROR_CONTINUE = 1,
}

/// Options of one restore. Start from `sr_restore_options_default()`
/// and change what you need.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sr_restore_options {
    /// Check the backup's sha256 against its recorded checksum (see
    /// `sr_seal`) while streaming; a backup never sealed is refused.
    pub verify: bool,
    /// Replace an existing target (swapped in only after success).
    pub force: bool,
    /// Connections loading data and building indexes (1-64).
    pub parallel_workers: u32,
    /// Fail the restore when it runs longer; 0 means no limit.
    pub timeout_seconds: u64,
    /// One of `sr_on_error`.
    pub on_error: u32,
    /// Skip `OWNER TO` and session authorization, as `pg_restore -O`.
    pub no_owner: bool,
    /// Skip `GRANT` and `REVOKE`, as `pg_restore -x`.
    pub no_privileges: bool,
}

impl sr_restore_options {
    fn to_options(self) -> Result<RestoreOptions, Failure> {
        let on_error = match self.on_error {
            0 => OnError::Stop,
            1 => OnError::Continue,
            other => return Err(unknown("sr_on_error", other)),
        };
        Ok(RestoreOptions {
            verify: self.verify,
            force: self.force,
            parallel_workers: self.parallel_workers as usize,
            timeout_seconds: (self.timeout_seconds > 0).then_some(self.timeout_seconds),
            on_error,
            no_owner: self.no_owner,
            no_privileges: self.no_privileges,
        })
    }
}

/// The default options: no verification, no force, 2 workers, no
/// timeout, stop on the first error, owners and privileges restored.
#[no_mangle]
pub extern "C" fn sr_restore_options_default() -> sr_restore_options {
    let defaults = RestoreOptions::default();
    sr_restore_options {
        verify: defaults.verify,
        force: defaults.force,
        parallel_workers: u32::try_from(defaults.parallel_workers).unwrap_or(2),
        timeout_seconds: defaults.timeout_seconds.unwrap_or(0),
        on_error: sr_on_error::SR_ON_ERROR_STOP as u32,
        no_owner: defaults.no_owner,
        no_privileges: defaults.no_privileges,
    }
}

/// Receives the updates of a restore. See `sr_restore_set_callback`
/// for the thread it runs on and what it may not do.
pub type sr_update_callback =
    Option<unsafe extern "C" fn(update: *const sr_update, user_data: *mut c_void)>;

/// A restore started by `sr_restore_start`; free the handle with
/// `sr_restore_free`. Freeing the handle neither cancels nor waits for
/// the restore: it runs on in the engine.
pub struct sr_restore {
    engine: Engine,
    restore_id: String,
    restore_id_c: CString,
    watcher: Mutex<Option<Watcher>>,
}

/// The thread delivering one callback's updates.
struct Watcher {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Watcher {
    /// Stops the thread and waits for it, unless this is that thread (a callback letting go of
    /// its own restore): then it ends after the callback returns.
    fn stop(self) {
        self.stop.store(true, Ordering::Release);
        if self.thread.thread().id() != thread::current().id() {
            let _ = self.thread.join();
        }
    }

    fn is_current(&self, current: ThreadId) -> bool {
        self.thread.thread().id() == current
    }
}

/// The C caller's `user_data`, carried to the callback's thread.
struct UserData(*mut c_void);

// SAFETY: `sr_restore_set_callback` documents that `user_data` is used on another thread; the
// caller promises it may be.
unsafe impl Send for UserData {}

/// How long the callback thread waits for an update before it looks whether it was stopped.
const STOP_POLL: Duration = Duration::from_millis(50);

fn deliver_updates(
    mut events: RestoreEvents,
    callback: unsafe extern "C" fn(*const sr_update, *mut c_void),
    user_data: UserData,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Acquire) {
        match events.next_status_blocking(STOP_POLL) {
            Ok(Some(status)) => with_update(&status.update(), |update| {
                // SAFETY: the callback and `user_data` were given together by the caller, who
                // promises the callback may be called on this thread with them; `update` lives
                // for the call.
                unsafe { callback(update, user_data.0) }
            }),
            Ok(None) => break,
            Err(()) => continue,
        }
    }
}

/// Starts restoring `backup_name` into the database `target_db` and
/// stores a handle to the restore in `*out`, to be freed with
/// `sr_restore_free`. `options` may be NULL for the defaults.
///
/// Returns at once, the restore pending or running. Refused before
/// anything is written: `SR_INVALID_REQUEST` (a bad name or option),
/// `SR_BACKUP_NOT_FOUND`, `SR_DATABASE_EXISTS` (the target exists
/// without force, or another restore writes it),
/// `SR_RATE_LIMIT_EXCEEDED` (too many restores at once). A restore that
/// fails later reports it in its status (`SR_STATE_FAILED`,
/// `error_code`), e.g. `SR_RESTORE_FAILED` or `SR_INSUFFICIENT_SPACE`.
///
/// # Safety
///
/// `engine` must be NULL or live; the strings NULL or NUL-terminated;
/// `options` NULL or valid; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn sr_restore_start(
    engine: *const sr_engine,
    backup_name: *const c_char,
    target_db: *const c_char,
    options: *const sr_restore_options,
    out: *mut *mut sr_restore,
) -> sr_result {
    run(|| {
        // SAFETY: `engine` is NULL or live (the caller's promise).
        let engine = unsafe { borrow(engine, "engine") }?;
        // SAFETY: NULL or NUL-terminated (the caller's promise).
        let backup_name = unsafe { borrow_str(backup_name, "backup_name") }?;
        // SAFETY: NULL or NUL-terminated (the caller's promise).
        let target_db = unsafe { borrow_str(target_db, "target_db") }?;
        // SAFETY: `options` is NULL or valid (the caller's promise).
        let options = match unsafe { options.as_ref() } {
            Some(options) => options.to_options()?,
            None => RestoreOptions::default(),
        };
        check_out(out, "out")?;

        let status = engine.engine.create_restore(RestoreRequest {
            backup_name: backup_name.to_owned(),
            target_database: target_db.to_owned(),
            options,
        })?;

        let restore = sr_restore {
            engine: engine.engine.clone(),
            restore_id_c: c_string(&status.restore_id),
            restore_id: status.restore_id,
            watcher: Mutex::new(None),
        };
        // SAFETY: `out` is writable (the caller's promise).
        unsafe { give(out, restore, "out") }
    })
}

/// The restore's id, `rst_...`, borrowed from the handle (valid until
/// `sr_restore_free`); NULL for NULL.
///
/// # Safety
///
/// `restore` must be NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn sr_restore_id(restore: *const sr_restore) -> *const c_char {
    boundary_or(ptr::null(), || {
        // SAFETY: `restore` is NULL or live (the caller's promise).
        unsafe { borrow(restore, "restore") }.map_or(ptr::null(), |r| r.restore_id_c.as_ptr())
    })
}

/// Stores a snapshot of the restore's status in `*out`, to be freed
/// with `sr_status_free`.
///
/// # Safety
///
/// `restore` must be NULL or a live handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn sr_restore_status(
    restore: *const sr_restore,
    out: *mut *mut sr_status,
) -> sr_result {
    run(|| {
        // SAFETY: `restore` is NULL or live (the caller's promise).
        let restore = unsafe { borrow(restore, "restore") }?;
        check_out(out, "out")?;

        let status = restore.engine.restore_status(&restore.restore_id)?;

        // SAFETY: `out` is not NULL and writable (the caller's promise).
        unsafe { out.write(OwnedStatus::into_raw(OwnedStatus::new(&status))) };
        Ok(())
    })
}

/// Asks the restore to stop. It ends `SR_STATE_CANCELLED` soon after,
/// its staging database dropped; wait for that with `sr_restore_wait`.
/// Cancelling an ended restore changes nothing and succeeds.
///
/// # Safety
///
/// `restore` must be NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn sr_restore_cancel(restore: *const sr_restore) -> sr_result {
    run(|| {
        // SAFETY: `restore` is NULL or live (the caller's promise).
        let restore = unsafe { borrow(restore, "restore") }?;
        restore.engine.cancel_restore(&restore.restore_id)?;
        Ok(())
    })
}

/// Waits until the restore ends or `timeout_ms` milliseconds pass
/// (negative: no limit; 0: do not wait), then stores a snapshot of its
/// status, ended or not, in `*out`, to be freed with `sr_status_free`.
/// A failed restore is `SR_OK` here: read `status` and `error_code`.
///
/// # Safety
///
/// `restore` must be NULL or a live handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn sr_restore_wait(
    restore: *const sr_restore,
    timeout_ms: i64,
    out: *mut *mut sr_status,
) -> sr_result {
    run(|| {
        // SAFETY: `restore` is NULL or live (the caller's promise).
        let restore = unsafe { borrow(restore, "restore") }?;
        check_out(out, "out")?;
        let timeout = u64::try_from(timeout_ms).ok().map(Duration::from_millis);

        let status = restore.engine.wait_restore(&restore.restore_id, timeout)?;

        // SAFETY: `out` is not NULL and writable (the caller's promise).
        unsafe { out.write(OwnedStatus::into_raw(OwnedStatus::new(&status))) };
        Ok(())
    })
}

/// Calls `callback(update, user_data)` for the restore's updates: first
/// its current state, then each change, the final state last. Updates
/// may be skipped when the callback is slower than the restore; the
/// final one never is. Replaces any earlier callback (waiting for it to
/// return); a NULL `callback` removes it.
///
/// The callback runs on a thread of the library's own, one per restore
/// with a callback, never on the caller's thread. It must return
/// quickly (it holds up this restore's later updates, not the restore),
/// must not unwind (throw) into the library, and must not call
/// `sr_engine_free`. It may call the other functions, including
/// `sr_restore_free` on its own restore. `user_data` is passed through
/// untouched and must be usable from that thread.
///
/// # Safety
///
/// `restore` must be NULL or a live handle; `callback` NULL or a
/// function safe to call with `user_data` from another thread until the
/// callback is replaced, removed or the handle freed.
#[no_mangle]
pub unsafe extern "C" fn sr_restore_set_callback(
    restore: *const sr_restore,
    callback: sr_update_callback,
    user_data: *mut c_void,
) -> sr_result {
    run(|| {
        // SAFETY: `restore` is NULL or live (the caller's promise).
        let restore = unsafe { borrow(restore, "restore") }?;
        let events = match callback {
            Some(_) => Some(restore.engine.subscribe(&restore.restore_id)?),
            None => None,
        };

        let previous = restore.lock_watcher().take();
        if let Some(previous) = previous {
            if previous.is_current(thread::current().id()) {
                // A callback replacing itself: its thread stops after this update.
                previous.stop.store(true, Ordering::Release);
            } else {
                previous.stop();
            }
        }
        let (Some(callback), Some(events)) = (callback, events) else {
            return Ok(());
        };

        let stop = Arc::new(AtomicBool::new(false));
        let user_data = UserData(user_data);
        let thread_stop = stop.clone();
        let thread = thread::Builder::new()
            .name("sr-callback".to_owned())
            .spawn(move || deliver_updates(events, callback, user_data, thread_stop))
            .map_err(|err| {
                Failure::abi(
                    sr_result::SR_PANIC,
                    format!("cannot start the callback thread: {err}"),
                )
            })?;
        *restore.lock_watcher() = Some(Watcher { stop, thread });
        Ok(())
    })
}

impl sr_restore {
    fn lock_watcher(&self) -> std::sync::MutexGuard<'_, Option<Watcher>> {
        self.watcher
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Frees a restore handle; the restore itself runs on. A callback set
/// on it is removed first, waiting for a running call to return. NULL
/// is ignored.
///
/// # Safety
///
/// `restore` must be NULL or a handle from `sr_restore_start` not yet
/// freed, and no other thread may be using it.
#[no_mangle]
pub unsafe extern "C" fn sr_restore_free(restore: *mut sr_restore) {
    boundary_or((), || {
        // SAFETY: `restore` is NULL or came from `sr_restore_start` (the caller's promise).
        let Some(restore) = (unsafe { take(restore) }) else {
            return;
        };
        let watcher = restore.lock_watcher().take();
        if let Some(watcher) = watcher {
            watcher.stop();
        }
    })
}
