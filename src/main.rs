//! The `feedsieve` binary: everything is in the library; see `feedsieve::cli`.

fn main() -> std::process::ExitCode {
    tune_malloc();
    feedsieve::cli::main()
}

/// Two of glibc malloc's thresholds, fixed (glibc only; README, "One polling cycle over 10,000
/// feeds" and "Where the compute of a poll goes").
///
/// - **mmap threshold, 256 KiB.** glibc serves allocations above it with their own `mmap`, and
///   raises it to the size of each such block freed (up to 32 MiB). The sieve's group commits
///   free blocks of a few MB, after which blocks of that size came from the heap arenas and
///   fragmented them: a 10,000-feed cycle peaked at 181 to 183 MB with the moving threshold and
///   at 154 to 176 MB (median 163) with it fixed, for the same CPU.
/// - **trim threshold, 4 MiB.** How much free memory the top of a heap keeps before it goes
///   back to the kernel. Fixing the mmap threshold also stops glibc from raising this one with
///   it, so it stayed at 128 KiB: memory a poll freed went back and the next poll's buffers
///   faulted it in again. At 4 MiB, pass 1 over 1,000 feeds took 1.30 s of CPU against 1.33 s
///   (medians of five interleaved runs); the 10,000-feed peak rose by 2 MB (16 MiB saved no more
///   CPU there and cost 7 MB).
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets one of malloc's parameters; it is called before any other
    // thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 4 * 1024 * 1024);
    }
}
