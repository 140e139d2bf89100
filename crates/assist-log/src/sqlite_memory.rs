//! The memory of the SQLite library in this process. Every SQLite file a process opens
//! (log, views, keys) keeps a page cache per connection; a long-running server holds about
//! twenty connections, so without a shared bound its memory grows with the files' size.

use libsqlite3_sys as ffi;

/// Bounds the heap of every SQLite connection in this process together (SQLite's soft heap
/// limit): near it, a connection reuses its least recently used cached pages instead of
/// allocating more, and lowering it frees cached pages at once. `0` removes the bound.
/// Returns the bound that was in force before.
pub fn limit_memory(bytes: u64) -> u64 {
    let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
    // SAFETY: takes and returns integers only; SQLite is built thread-safe (sqlx needs it).
    let before = unsafe { ffi::sqlite3_soft_heap_limit64(bytes) };
    u64::try_from(before).unwrap_or(0)
}

/// The bound in force (`0`: none).
pub fn memory_limit() -> u64 {
    // SAFETY: a negative argument only reads the limit.
    let now = unsafe { ffi::sqlite3_soft_heap_limit64(-1) };
    u64::try_from(now).unwrap_or(0)
}

/// Bytes SQLite holds on the heap now, all connections of this process together.
pub fn memory_used() -> u64 {
    // SAFETY: reads a counter; takes no pointer.
    let used = unsafe { ffi::sqlite3_memory_used() };
    u64::try_from(used).unwrap_or(0)
}
