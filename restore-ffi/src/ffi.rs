//! Conversions between C values and Rust ones, each checking what C cannot promise: that a
//! pointer is not NULL, that a string is UTF-8, that a buffer is large enough.
//!
//! Objects handed to C are boxed and given out as raw pointers ([`give`]); the matching free
//! function takes them back ([`take`]). Nothing here dereferences a pointer it has not checked
//! for NULL.

use std::ffi::{c_char, CStr, CString};

use crate::error::{sr_result, Failure};

/// `text` as a C string; interior NULs, which C cannot represent, are dropped.
pub(crate) fn c_string(text: &str) -> CString {
    CString::new(text).unwrap_or_else(|err| {
        let mut bytes = err.into_vec();
        bytes.retain(|byte| *byte != 0);
        CString::new(bytes).unwrap_or_default()
    })
}

/// A shared reference to the object behind `ptr`.
///
/// # Safety
///
/// `ptr` must be NULL or point to a live `T` that nothing mutates for `'a`.
pub(crate) unsafe fn borrow<'a, T>(ptr: *const T, argument: &str) -> Result<&'a T, Failure> {
    // SAFETY: a non-NULL `ptr` points to a live, unaliased-for-writes `T` (the caller's promise).
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::null(argument))
}

/// The UTF-8 string behind `ptr`.
///
/// # Safety
///
/// `ptr` must be NULL or point to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn borrow_str<'a>(
    ptr: *const c_char,
    argument: &str,
) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::null(argument));
    }
    // SAFETY: `ptr` is not NULL and points to a NUL-terminated string (the caller's promise).
    let text = unsafe { CStr::from_ptr(ptr) };
    text.to_str().map_err(|err| {
        Failure::abi(
            sr_result::SR_INVALID_UTF8,
            format!("{argument} is not valid UTF-8 (byte {})", err.valid_up_to()),
        )
    })
}

/// The UTF-8 string behind `ptr`, or `None` when it is NULL.
///
/// # Safety
///
/// As for [`borrow_str`].
pub(crate) unsafe fn optional_str<'a>(
    ptr: *const c_char,
    argument: &str,
) -> Result<Option<&'a str>, Failure> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: `ptr` is not NULL; the caller's promise covers the rest.
    unsafe { borrow_str(ptr, argument) }.map(Some)
}

/// Checks an output pointer before any work is done, so that a call with a NULL `out` fails
/// without side effects.
pub(crate) fn check_out<T>(out: *mut *mut T, argument: &str) -> Result<(), Failure> {
    if out.is_null() {
        return Err(Failure::null(argument));
    }
    Ok(())
}

/// Boxes `value` and stores the pointer in `*out`; the matching free function gets it back.
///
/// # Safety
///
/// `out` must be valid for a write of one pointer (checked for NULL here).
pub(crate) unsafe fn give<T>(out: *mut *mut T, value: T, argument: &str) -> Result<(), Failure> {
    check_out(out, argument)?;
    // SAFETY: `out` is not NULL and valid for a write (the caller's promise).
    unsafe { out.write(Box::into_raw(Box::new(value))) };
    Ok(())
}

/// Takes back ownership of an object given out by [`give`]; `None` for NULL.
///
/// # Safety
///
/// `ptr` must be NULL or a pointer [`give`] produced for a `T` and not yet taken back.
pub(crate) unsafe fn take<T>(ptr: *mut T) -> Option<Box<T>> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: `ptr` came from `Box::into_raw` in `give` and is taken back once.
    Some(unsafe { Box::from_raw(ptr) })
}

/// Copies `text` and its NUL into `buf` when `len` allows; `*needed` gets the size either way.
///
/// # Safety
///
/// `buf` must be NULL or valid for `len` bytes of writes; `needed` NULL or valid for a write.
pub(crate) unsafe fn copy_to_buffer(
    text: &CStr,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> Result<(), Failure> {
    let bytes = text.to_bytes_with_nul();
    if !needed.is_null() {
        // SAFETY: `needed` is not NULL and valid for a write (the caller's promise).
        unsafe { needed.write(bytes.len()) };
    }
    if len < bytes.len() {
        return Err(Failure::abi(
            sr_result::SR_BUFFER_TOO_SMALL,
            format!("the buffer holds {len} bytes; {} are needed", bytes.len()),
        ));
    }
    if buf.is_null() {
        return Err(Failure::null("buf"));
    }
    // SAFETY: `buf` is valid for `len >= bytes.len()` bytes and cannot overlap `text`, which
    // this library owns.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr().cast::<c_char>(), buf, bytes.len()) };
    Ok(())
}
