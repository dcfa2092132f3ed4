//! The C ABI of securerestore: `libsecurerestore` and `include/securerestore.h`.
//!
//! This crate translates and nothing more: every function takes C values, checks them, calls
//! [`restore_core::Engine`] and turns the answer back into C values and one numbered
//! [`sr_result`]. No restore logic lives here.
//!
//! One module per object family a C program sees (`engine`, `backups`, `restore` with its
//! options, `status` with its updates), and the plumbing every function shares: `error` (the
//! result table and the thread's last error), `panic` (the boundary every exported body runs
//! in) and `ffi` (NULL-checked pointer and string conversions).
//!
//! The rules a C caller relies on are written once, in the header's opening comment (the
//! `header` of `cbindgen.toml`) and in the README's C section; each function's comment adds
//! only what is particular to it.

#![allow(non_camel_case_types)]

mod backups;
mod engine;
mod error;
mod ffi;
mod panic;
mod restore;
mod status;

pub use backups::{
    sr_backup, sr_backup_list, sr_backup_page, sr_backup_page_free, sr_backup_page_get,
    sr_backup_page_len, sr_backup_page_total, sr_order, sr_sort,
};
pub use engine::{
    sr_config, sr_engine, sr_engine_free, sr_engine_new, sr_pack, sr_pack_format, sr_seal,
    sr_version, SR_CHECKSUM_SIZE,
};
pub use error::{
    sr_last_error_code, sr_last_error_details, sr_last_error_message, sr_last_error_request_id,
    sr_result, sr_result_name,
};
pub use restore::{
    sr_on_error, sr_restore, sr_restore_cancel, sr_restore_free, sr_restore_id, sr_restore_options,
    sr_restore_options_default, sr_restore_set_callback, sr_restore_start, sr_restore_status,
    sr_restore_wait, sr_update_callback,
};
pub use status::{sr_operation, sr_state, sr_status, sr_status_free, sr_update, sr_verification};
