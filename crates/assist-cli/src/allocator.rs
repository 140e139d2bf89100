//! The two allocators of the binary and what they keep. Rust's allocations go to mimalloc
//! (the global allocator below); SQLite's go to the C library's malloc. Both keep memory
//! that was freed, for reuse: after a large catch-up, a long-running server held two to
//! three times the memory it used (BENCHMARKS.md), so `serve` bounds and returns it.

use std::time::Duration;

/// mimalloc instead of glibc's allocator: the projection allocates and frees many small
/// strings per event, and glibc's free lists cost it about a fifth of its time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How often a server hands freed memory back to the system.
pub const RETURN_FREED_EVERY: Duration = Duration::from_secs(30);

/// glibc gives each thread that allocates an arena of its own and keeps what is freed in
/// it, so the server's twenty connection threads held far more than SQLite used; two
/// arenas took a quarter to a third off the server's memory at 1.1M events.
pub fn fewer_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: sets a tuning parameter of glibc's allocator; takes no pointer.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Hands the memory both allocators keep free back to the system (a catch-up of 3.3M
/// events left 1.1 GB resident; this brought it to 0.42 GB, SQLite's caches included).
/// Takes the allocators' locks for a moment: call it on a blocking thread.
pub fn return_freed_memory() {
    // SAFETY: both take no pointer; mimalloc's collects this thread's heap and the ones
    // abandoned by threads that ended, glibc's releases the free pages of every arena.
    unsafe {
        libmimalloc_sys::mi_collect(true);
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        libc::malloc_trim(0);
    }
}
