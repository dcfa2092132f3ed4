//! `sr_backup_page`: one page of the backup directory's listing.

use std::ffi::{c_char, CString};
use std::ptr;

use restore_core::{Backup, ListOptions, SortKey, SortOrder};

use crate::engine::sr_engine;
use crate::error::{run, sr_result, Failure};
use crate::ffi::{borrow, c_string, check_out, give, take};
use crate::panic::boundary_or;

/// What a listing is sorted by.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sr_sort {
    /// When the backup was taken.
    SR_SORT_CREATED_AT = 0,
    /// The stored size.
    SR_SORT_SIZE = 1,
}

/// The direction of a listing.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sr_order {
    /// Largest or newest first.
    SR_ORDER_DESC = 0,
    /// Smallest or oldest first.
    SR_ORDER_ASC = 1,
}

/// One backup of a page. Owned by its page: valid, strings included,
/// until `sr_backup_page_free`; never free it on its own.
#[repr(C)]
pub struct sr_backup {
    /// The file name inside the backup directory.
    pub name: *const c_char,
    /// Size of the stored file in bytes.
    pub size: u64,
    /// When the backup was taken, RFC 3339 in UTC, e.g.
    /// `2024-01-01T12:00:00Z`.
    pub created_at: *const c_char,
    /// The same instant in seconds since the Unix epoch.
    pub created_at_unix: i64,
    /// The recorded checksum, `sha256:<hex>`, or NULL when the backup
    /// was never sealed.
    pub checksum: *const c_char,
    /// `available`, or why the backup cannot be restored.
    pub status: *const c_char,
}

/// A page of backups from `sr_backup_list`; free it with
/// `sr_backup_page_free`. Immutable: any thread may read it.
pub struct sr_backup_page {
    backups: Vec<sr_backup>,
    total: usize,
    // The strings the backups point into; their heap buffers never move.
    _strings: Vec<CString>,
}

impl sr_backup_page {
    fn new(backups: &[Backup], total: usize) -> sr_backup_page {
        let mut strings = Vec::with_capacity(backups.len() * 4);
        let mut keep = |text: &str| {
            let text = c_string(text);
            let at = text.as_ptr();
            strings.push(text);
            at
        };
        let backups = backups
            .iter()
            .map(|backup| sr_backup {
                name: keep(&backup.name),
                size: backup.size,
                created_at: keep(&crate::status::rfc3339(&backup.created_at)),
                created_at_unix: backup.created_at.timestamp(),
                checksum: backup.checksum.as_deref().map_or(ptr::null(), &mut keep),
                status: keep(&backup.status),
            })
            .collect();
        sr_backup_page {
            backups,
            total,
            _strings: strings,
        }
    }
}

fn list_options(
    limit: usize,
    offset: usize,
    sort: u32,
    order: u32,
) -> Result<ListOptions, Failure> {
    let sort = match sort {
        0 => SortKey::CreatedAt,
        1 => SortKey::Size,
        other => return Err(unknown("sort", other)),
    };
    let order = match order {
        0 => SortOrder::Desc,
        1 => SortOrder::Asc,
        other => return Err(unknown("order", other)),
    };
    Ok(ListOptions {
        limit,
        offset,
        sort,
        order,
    })
}

pub(crate) fn unknown(argument: &str, value: u32) -> Failure {
    Failure::abi(
        sr_result::SR_INVALID_ARGUMENT,
        format!("{value} is not a value of {argument}"),
    )
}

/// Lists one page of the backup directory: `limit` backups (1 to 1000)
/// after skipping `offset`, sorted by `sort` (an `sr_sort`) in `order`
/// (an `sr_order`). The page goes to `*out`, to be freed with
/// `sr_backup_page_free`.
///
/// # Safety
///
/// `engine` must be NULL or a live engine; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn sr_backup_list(
    engine: *const sr_engine,
    limit: usize,
    offset: usize,
    sort: u32,
    order: u32,
    out: *mut *mut sr_backup_page,
) -> sr_result {
    run(|| {
        // SAFETY: `engine` is NULL or live (the caller's promise).
        let engine = unsafe { borrow(engine, "engine") }?;
        let options = list_options(limit, offset, sort, order)?;
        check_out(out, "out")?;

        let page = engine.engine.list_backups(&options)?;

        let page = sr_backup_page::new(&page.backups, page.total);
        // SAFETY: `out` is writable (the caller's promise).
        unsafe { give(out, page, "out") }
    })
}

/// The number of backups on the page; 0 for NULL.
///
/// # Safety
///
/// `page` must be NULL or a live page.
#[no_mangle]
pub unsafe extern "C" fn sr_backup_page_len(page: *const sr_backup_page) -> usize {
    boundary_or(0, || {
        // SAFETY: `page` is NULL or live (the caller's promise).
        unsafe { borrow(page, "page") }.map_or(0, |page| page.backups.len())
    })
}

/// The number of backups in the whole directory, over all pages; 0 for
/// NULL.
///
/// # Safety
///
/// `page` must be NULL or a live page.
#[no_mangle]
pub unsafe extern "C" fn sr_backup_page_total(page: *const sr_backup_page) -> usize {
    boundary_or(0, || {
        // SAFETY: `page` is NULL or live (the caller's promise).
        unsafe { borrow(page, "page") }.map_or(0, |page| page.total)
    })
}

/// The backup at `index` on the page, borrowed from the page; NULL when
/// `page` is NULL or `index` is not below `sr_backup_page_len`.
///
/// # Safety
///
/// `page` must be NULL or a live page.
#[no_mangle]
pub unsafe extern "C" fn sr_backup_page_get(
    page: *const sr_backup_page,
    index: usize,
) -> *const sr_backup {
    boundary_or(ptr::null(), || {
        // SAFETY: `page` is NULL or live (the caller's promise).
        let Ok(page) = (unsafe { borrow(page, "page") }) else {
            return ptr::null();
        };
        page.backups.get(index).map_or(ptr::null(), ptr::from_ref)
    })
}

/// Frees a page and every `sr_backup` borrowed from it. NULL is
/// ignored.
///
/// # Safety
///
/// `page` must be NULL or a page from `sr_backup_list` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn sr_backup_page_free(page: *mut sr_backup_page) {
    boundary_or((), || {
        // SAFETY: `page` is NULL or came from `sr_backup_list` (the caller's promise).
        drop(unsafe { take(page) });
    })
}
