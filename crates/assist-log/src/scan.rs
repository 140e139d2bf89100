//! A partition's events read through SQLite's C API. The projection reads the whole log
//! in large batches, and sqlx copies every value twice on the way (into its row on its
//! worker thread, then out of it) and sends each row across a channel; this path steps the
//! statement on the caller's (blocking) thread and copies each value once, into its `Record`.

use crate::{LogError, Position, Record};
use libsqlite3_sys as ffi;
use sqlx::sqlite::LockedSqliteHandle;
use std::ffi::{c_char, c_int, CStr};
use std::ptr::{self, NonNull};
use uuid::Uuid;

const SQL: &str = "SELECT position, stream, event_id, payload FROM events \
                   WHERE position >= ?1 AND position < ?2 ORDER BY position LIMIT ?3";

/// A prepared statement, finalized when dropped.
struct Statement(*mut ffi::sqlite3_stmt);

impl Drop for Statement {
    fn drop(&mut self) {
        // SAFETY: the statement came from `sqlite3_prepare_v2` and is finalized once.
        unsafe {
            ffi::sqlite3_finalize(self.0);
        }
    }
}

fn failure(db: NonNull<ffi::sqlite3>) -> LogError {
    // SAFETY: `db` is an open connection; the message is copied before the next call.
    let (code, message) = unsafe {
        let code = ffi::sqlite3_extended_errcode(db.as_ptr());
        let msg = ffi::sqlite3_errmsg(db.as_ptr());
        let message = if msg.is_null() {
            String::from("unknown error")
        } else {
            CStr::from_ptr(msg).to_string_lossy().into_owned()
        };
        (code, message)
    };
    LogError::Backend(format!(
        "log storage failed: reading a partition: (code: {code}) {message}"
    ))
}

/// The bytes of column `i` of the current row (empty for NULL or an empty value).
///
/// # Safety
/// `stmt` must be live and positioned on a row; the slice is valid until the next step.
unsafe fn column<'a>(stmt: *mut ffi::sqlite3_stmt, i: c_int, text: bool) -> &'a [u8] {
    // The pointer first, then its length, as SQLite's documentation asks.
    let p = if text {
        ffi::sqlite3_column_text(stmt, i).cast::<u8>()
    } else {
        ffi::sqlite3_column_blob(stmt, i).cast::<u8>()
    };
    let n = usize::try_from(ffi::sqlite3_column_bytes(stmt, i)).unwrap_or(0);
    if p.is_null() || n == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(p, n)
    }
}

/// Up to `max` events with `lo <= position < hi`, in position order, on the locked
/// connection. `decode` turns a stored position into a partition and offset.
pub(crate) fn events(
    handle: &mut LockedSqliteHandle<'_>,
    lo: i64,
    hi: i64,
    max: i64,
    decode: fn(i64) -> Position,
) -> Result<Vec<Record>, LogError> {
    let db = handle.as_raw_handle();
    let mut raw = ptr::null_mut();
    // SAFETY: `db` is the open connection the guard holds for us; `SQL` is static.
    let rc = unsafe {
        ffi::sqlite3_prepare_v2(
            db.as_ptr(),
            SQL.as_ptr().cast::<c_char>(),
            SQL.len() as c_int,
            &mut raw,
            ptr::null_mut(),
        )
    };
    if rc != ffi::SQLITE_OK {
        return Err(failure(db));
    }
    let stmt = Statement(raw);
    for (i, v) in [lo, hi, max].into_iter().enumerate() {
        // SAFETY: the statement is live and has three parameters.
        if unsafe { ffi::sqlite3_bind_int64(stmt.0, i as c_int + 1, v) } != ffi::SQLITE_OK {
            return Err(failure(db));
        }
    }
    let mut out = Vec::with_capacity(usize::try_from(max).unwrap_or(0).min(4_096));
    loop {
        // SAFETY: the statement is live and bound.
        match unsafe { ffi::sqlite3_step(stmt.0) } {
            ffi::SQLITE_ROW => {}
            ffi::SQLITE_DONE => break,
            _ => return Err(failure(db)),
        }
        // SAFETY: the statement is on a row; each slice is copied before the next step.
        let record = unsafe {
            let stream = column(stmt.0, 1, true);
            Record {
                position: decode(ffi::sqlite3_column_int64(stmt.0, 0)),
                stream: String::from_utf8(stream.to_vec()).map_err(|_| {
                    LogError::Backend(
                        "the embedded log holds a stream name that is not UTF-8".into(),
                    )
                })?,
                event_id: Uuid::from_slice(column(stmt.0, 2, false)).ok(),
                payload: column(stmt.0, 3, false).to_vec(),
            }
        };
        out.push(record);
    }
    Ok(out)
}
