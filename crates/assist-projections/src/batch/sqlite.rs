//! Rows into SQLite through one prepared single-row `INSERT`, bound straight from the
//! rows with the C API. sqlx copies every value twice on its way to SQLite and sends each
//! statement to its worker thread; this path copies nothing, and a single-row statement
//! needs no statement journal.

use super::{Table, WriteError};
use crate::store::Val;
use libsqlite3_sys as ffi;
use sqlx::sqlite::LockedSqliteHandle;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr::{self, NonNull};

/// A prepared statement, finalized when dropped.
struct Statement {
    db: NonNull<ffi::sqlite3>,
    stmt: *mut ffi::sqlite3_stmt,
}

impl Drop for Statement {
    fn drop(&mut self) {
        // SAFETY: `stmt` came from `sqlite3_prepare_v2` on `db` and is finalized once.
        unsafe {
            ffi::sqlite3_finalize(self.stmt);
        }
    }
}

fn failure(db: NonNull<ffi::sqlite3>, table: &'static str) -> WriteError {
    // SAFETY: `db` is an open connection; the message is copied before the next call.
    let (code, message) = unsafe {
        let code = ffi::sqlite3_extended_errcode(db.as_ptr());
        let msg = ffi::sqlite3_errmsg(db.as_ptr());
        let message = if msg.is_null() {
            String::new()
        } else {
            CStr::from_ptr(msg).to_string_lossy().into_owned()
        };
        (code, message)
    };
    WriteError::Sqlite {
        table,
        unique: code == ffi::SQLITE_CONSTRAINT_UNIQUE || code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY,
        message,
    }
}

fn length(table: &'static str, n: usize) -> Result<c_int, WriteError> {
    c_int::try_from(n).map_err(|_| WriteError::Sqlite {
        table,
        unique: false,
        message: format!("a value of {n} bytes is too big to bind"),
    })
}

/// Inserts `rows` into `table` on the locked connection (inside the batch's transaction).
pub(super) fn insert(
    handle: &mut LockedSqliteHandle<'_>,
    table: &Table,
    rows: &[Vec<Val>],
) -> Result<(), WriteError> {
    if rows.is_empty() {
        return Ok(());
    }
    let db = handle.as_raw_handle();
    let sql = table.sqlite_insert();
    let mut stmt = ptr::null_mut();
    // SAFETY: `db` is the open connection the guard holds for us; `sql` outlives the call.
    let rc = unsafe {
        ffi::sqlite3_prepare_v2(
            db.as_ptr(),
            sql.as_ptr().cast::<c_char>(),
            length(table.name, sql.len())?,
            &mut stmt,
            ptr::null_mut(),
        )
    };
    if rc != ffi::SQLITE_OK {
        return Err(failure(db, table.name));
    }
    let stmt = Statement { db, stmt };
    for row in rows {
        for (i, value) in row.iter().enumerate() {
            let index = length(table.name, i + 1)?;
            // SAFETY: the statement is live; text and blobs are bound as SQLITE_STATIC and
            // `rows` outlives every step and the finalize that uses them.
            let rc = unsafe {
                match value {
                    Val::Int(n) => ffi::sqlite3_bind_int64(stmt.stmt, index, *n),
                    Val::Text(s) | Val::OptText(Some(s)) => ffi::sqlite3_bind_text(
                        stmt.stmt,
                        index,
                        s.as_ptr().cast::<c_char>(),
                        length(table.name, s.len())?,
                        ffi::SQLITE_STATIC(),
                    ),
                    Val::OptText(None) => ffi::sqlite3_bind_null(stmt.stmt, index),
                    Val::Bytes(b) => ffi::sqlite3_bind_blob(
                        stmt.stmt,
                        index,
                        b.as_ptr().cast::<c_void>(),
                        length(table.name, b.len())?,
                        ffi::SQLITE_STATIC(),
                    ),
                }
            };
            if rc != ffi::SQLITE_OK {
                return Err(failure(stmt.db, table.name));
            }
        }
        // SAFETY: the statement is live and fully bound.
        let rc = unsafe { ffi::sqlite3_step(stmt.stmt) };
        if rc != ffi::SQLITE_DONE {
            let e = failure(stmt.db, table.name);
            // SAFETY: as above; resetting clears the failed step.
            unsafe { ffi::sqlite3_reset(stmt.stmt) };
            return Err(e);
        }
        // SAFETY: as above.
        unsafe { ffi::sqlite3_reset(stmt.stmt) };
    }
    Ok(())
}
