//! Giving memory back. Loading a configuration of 50,000 targets allocates its YAML tree,
//! its positions and the old configuration's timers next to the new; glibc keeps what
//! they freed in its heaps, so the process stays as large as that moment (tens of MB at
//! that size). A while after a start or a reload, Vigil asks glibc to return free pages.

use std::time::Duration;

/// How long after a start or a reload the freed memory is given back: the old timers and
/// configuration have gone by then.
pub const SETTLE: Duration = Duration::from_secs(10);

/// Gives the memory freed since back to the system, [`SETTLE`] from now (on the blocking
/// pool: trimming a large heap takes some milliseconds).
pub fn give_back_later() {
    tokio::spawn(async {
        tokio::time::sleep(SETTLE).await;
        let _ = tokio::task::spawn_blocking(give_back).await;
    });
}

/// Returns the heap's free pages to the system (glibc's `malloc_trim`; nothing elsewhere).
pub fn give_back() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory of glibc's own heaps; it takes no
    // pointer and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
