//! `sr_engine`: the engine a C program opens over a backup directory and a server.

use std::ffi::{c_char, CStr};
use std::path::Path;

use restore_core::codec::{self, Format};
use restore_core::{Engine, EngineConfig};

use crate::error::{run, sr_result, Failure};
use crate::ffi::{borrow, borrow_str, c_string, copy_to_buffer, give, optional_str, take};
use crate::panic::boundary_or;

/// How to open an engine. Zero numbers and NULL strings mean the
/// default, so `sr_config config = {0};` plus a `backup_dir` is a
/// complete configuration. The strings are copied by `sr_engine_new`.
#[repr(C)]
pub struct sr_config {
    /// The directory holding the backups. Required.
    pub backup_dir: *const c_char,
    /// Where restores go: a `postgresql://` URL or a `key=value`
    /// string. NULL uses the `PG*` environment variables when set, else
    /// the managed local server, started on first use.
    pub database_url: *const c_char,
    /// Where the managed local server keeps its files, when it is used;
    /// NULL for the default state directory.
    pub local_state_dir: *const c_char,
    /// Restores that may run at once; more are refused with
    /// `SR_RATE_LIMIT_EXCEEDED`. 0 means 5.
    pub max_concurrent_restores: u32,
    /// Ended restores whose status stays available. 0 means 100.
    pub history_limit: u32,
    /// Threads decoding compressed backups; 0 means one per core. Only
    /// the first engine of a process sets it: all engines share one
    /// pool.
    pub decode_threads: u32,
}

/// An open engine. Create it with `sr_engine_new`, free it with
/// `sr_engine_free`. Restores started from it keep what they need, so
/// it may be freed while their handles are still in use.
pub struct sr_engine {
    pub(crate) engine: Engine,
}

fn engine_config(config: &sr_config) -> Result<EngineConfig, Failure> {
    // SAFETY: the strings of `config` are NUL-terminated or NULL (the caller's promise on
    // `sr_engine_new`).
    let backup_dir = unsafe { borrow_str(config.backup_dir, "config->backup_dir") }?;
    // SAFETY: as above.
    let database_url = unsafe { optional_str(config.database_url, "config->database_url") }?;
    // SAFETY: as above.
    let state_dir = unsafe { optional_str(config.local_state_dir, "config->local_state_dir") }?;

    let mut engine_config = EngineConfig::new(backup_dir);
    engine_config.database_url = database_url.map(str::to_owned);
    engine_config.local_state_dir = state_dir.map(Into::into);
    if config.max_concurrent_restores > 0 {
        engine_config.max_concurrent_restores = config.max_concurrent_restores as usize;
    }
    if config.history_limit > 0 {
        engine_config.history_limit = config.history_limit as usize;
    }
    if config.decode_threads > 0 {
        engine_config.decode_threads = Some(config.decode_threads as usize);
    }
    Ok(engine_config)
}

/// Opens an engine over `config` and stores it in `*out`, to be freed
/// with `sr_engine_free`. Fails with `SR_INVALID_REQUEST` when the
/// backup directory cannot be used. The server is not contacted here
/// but on the first restore.
///
/// # Safety
///
/// `config` must be NULL or point to a valid `sr_config` whose strings
/// are NULL or NUL-terminated; `out` must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn sr_engine_new(
    config: *const sr_config,
    out: *mut *mut sr_engine,
) -> sr_result {
    run(|| {
        // SAFETY: `config` is NULL or a valid `sr_config` (the caller's promise).
        let config = unsafe { borrow(config, "config") }?;
        crate::ffi::check_out(out, "out")?;

        let engine = Engine::new(engine_config(config)?)?;

        // SAFETY: `out` is writable (the caller's promise).
        unsafe { give(out, sr_engine { engine }, "out") }
    })
}

/// Frees an engine made by `sr_engine_new`. NULL is ignored. Not to be
/// called while another thread uses the engine, nor from a callback.
///
/// # Safety
///
/// `engine` must be NULL or an engine from `sr_engine_new` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn sr_engine_free(engine: *mut sr_engine) {
    boundary_or((), || {
        // SAFETY: `engine` is NULL or came from `sr_engine_new` (the caller's promise).
        drop(unsafe { take(engine) });
    })
}

/// Computes the sha256 of a backup's stored bytes and records it beside
/// the file (`NAME.sha256`), so that restores can verify it.
///
/// The checksum, `sha256:` and 64 hex digits, is copied into `buf` as
/// `sr_last_error_message` copies: `SR_CHECKSUM_SIZE` bytes always
/// suffice. Pass `buf` NULL and `len` 0 when it is not wanted. The seal
/// is written even when the buffer turns out too small.
///
/// # Safety
///
/// `engine` must be NULL or a live engine; `backup_name` NULL or
/// NUL-terminated; `buf` NULL or `len` writable bytes; `needed` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn sr_seal(
    engine: *const sr_engine,
    backup_name: *const c_char,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> sr_result {
    run(|| {
        // SAFETY: `engine` is NULL or live (the caller's promise).
        let engine = unsafe { borrow(engine, "engine") }?;
        // SAFETY: `backup_name` is NULL or NUL-terminated (the caller's promise).
        let name = unsafe { borrow_str(backup_name, "backup_name") }?;

        let backup = engine.engine.seal(name)?;

        let checksum = c_string(backup.checksum.as_deref().unwrap_or_default());
        if buf.is_null() && len == 0 {
            if !needed.is_null() {
                // SAFETY: `needed` is not NULL and writable (the caller's promise).
                unsafe { needed.write(checksum.as_bytes_with_nul().len()) };
            }
            return Ok(());
        }
        // SAFETY: `buf`, `len` and `needed` as the caller promised.
        unsafe { copy_to_buffer(&checksum, buf, len, needed) }
    })
}

/// The compression `sr_pack` writes.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sr_pack_format {
    /// Consecutive gzip members, read by `gunzip` as one stream.
    SR_PACK_GZIP = 0,
    /// Consecutive zstd frames, read by `zstd -d` as one stream.
    SR_PACK_ZSTD = 1,
}

/// Writes the dump at `input_path` (plain, gzip or zstd, anywhere on
/// disk) into the backup directory as `backup_name`, in pieces that
/// restores decode on every core, and seals it.
///
/// The pieces hold `piece_bytes` bytes of SQL each (0 means 4 MiB) and
/// are compressed in parallel as `format` (an `sr_pack_format`) at
/// `level`: gzip 0-9, zstd 1-22, or a negative level for the format's
/// default (6 and 3). The backup appears whole or not at all, and never
/// over an existing one (`SR_INVALID_REQUEST`). Blocks while it reads
/// and compresses the whole file.
///
/// # Safety
///
/// `engine` must be NULL or a live engine; `input_path` and
/// `backup_name` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn sr_pack(
    engine: *const sr_engine,
    input_path: *const c_char,
    backup_name: *const c_char,
    format: u32,
    piece_bytes: usize,
    level: i32,
) -> sr_result {
    run(|| {
        // SAFETY: `engine` is NULL or live (the caller's promise).
        let engine = unsafe { borrow(engine, "engine") }?;
        // SAFETY: both strings are NULL or NUL-terminated (the caller's promise).
        let input = unsafe { borrow_str(input_path, "input_path") }?;
        // SAFETY: as above.
        let name = unsafe { borrow_str(backup_name, "backup_name") }?;
        let format = match format {
            0 => Format::Gzip,
            1 => Format::Zstd,
            other => return Err(crate::backups::unknown("format", other)),
        };
        let level = match level {
            ..0 => codec::default_level(format),
            level => level,
        };
        let piece_bytes = match piece_bytes {
            0 => codec::DEFAULT_PIECE_BYTES,
            bytes => bytes,
        };

        engine
            .engine
            .pack(Path::new(input), name, format, piece_bytes, level)?;
        Ok(())
    })
}

/// Bytes that always hold a checksum as `sr_seal` writes it, NUL
/// included: `sha256:` and 64 hex digits.
pub const SR_CHECKSUM_SIZE: usize = 72;

/// The library's version, e.g. `"0.1.0"`: a static string, never free
/// it.
#[no_mangle]
pub extern "C" fn sr_version() -> *const c_char {
    const VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(version) => version,
            Err(_) => c"unknown",
        };
    VERSION.as_ptr()
}

#[cfg(test)]
mod tests {
    use std::ptr;

    use super::*;
    use crate::error::sr_last_error_code;

    fn config(backup_dir: *const c_char) -> sr_config {
        sr_config {
            backup_dir,
            database_url: ptr::null(),
            local_state_dir: ptr::null(),
            max_concurrent_restores: 0,
            history_limit: 0,
            decode_threads: 0,
        }
    }

    #[test]
    fn null_config_and_null_out_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = c_string(dir.path().to_str().unwrap());
        let mut engine: *mut sr_engine = ptr::null_mut();

        // SAFETY: NULL is what is tested; `engine` is a local.
        let result = unsafe { sr_engine_new(ptr::null(), &mut engine) };
        assert_eq!(result, sr_result::SR_NULL_ARGUMENT);
        assert!(engine.is_null());

        // SAFETY: the config's strings are live for the call.
        let result = unsafe { sr_engine_new(&config(path.as_ptr()), ptr::null_mut()) };
        assert_eq!(result, sr_result::SR_NULL_ARGUMENT);

        // SAFETY: as above; a NULL backup_dir is what is tested.
        let result = unsafe { sr_engine_new(&config(ptr::null()), &mut engine) };
        assert_eq!(result, sr_result::SR_NULL_ARGUMENT);
        assert!(engine.is_null());
    }

    #[test]
    fn a_backup_dir_that_is_not_utf8_is_refused() {
        let bad = c"/tmp/\xff\xfe";
        let mut engine: *mut sr_engine = ptr::null_mut();
        // SAFETY: the config's string is live for the call; `engine` is a local.
        let result = unsafe { sr_engine_new(&config(bad.as_ptr()), &mut engine) };
        assert_eq!(result, sr_result::SR_INVALID_UTF8);
        assert_eq!(sr_last_error_code(), sr_result::SR_INVALID_UTF8);
        assert!(engine.is_null());
    }

    #[test]
    fn an_engine_opens_and_frees_and_null_frees_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = c_string(dir.path().to_str().unwrap());
        let mut engine: *mut sr_engine = ptr::null_mut();
        // SAFETY: the config's strings are live for the call; `engine` is a local.
        let result = unsafe { sr_engine_new(&config(path.as_ptr()), &mut engine) };
        assert_eq!(result, sr_result::SR_OK);
        assert!(!engine.is_null());
        // SAFETY: `engine` came from `sr_engine_new` and is freed once; NULL is ignored.
        unsafe {
            sr_engine_free(engine);
            sr_engine_free(ptr::null_mut());
        }
    }

    #[test]
    fn the_version_is_the_crate_version() {
        // SAFETY: `sr_version` returns a static NUL-terminated string.
        let version = unsafe { CStr::from_ptr(sr_version()) };
        assert_eq!(version.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }
}
