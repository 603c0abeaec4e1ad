//! The hot loops' CPU features, chosen once at run time.
//!
//! Matching is popcounts of XORs. Built for the baseline x86-64 target, `count_ones` is a dozen
//! instructions; with `POPCNT` it is one, and with AVX-512 `VPOPCNTQ` the compiler counts a
//! whole hash (or several) per instruction. Rather than build the binary for one CPU, the
//! index runs its query and scan code inside [`run`], which calls it through a function
//! compiled with those features when the CPU has them. Everything the closure calls is
//! `#[inline(always)]`, so it is compiled with the features too.
//!
//! This is the crate's one `unsafe`: calling a `#[target_feature]` function is unsafe because
//! running it on a CPU without the feature is undefined; [`run`] calls it only after
//! `is_x86_feature_detected!` said the CPU has every feature it enables.
#![allow(unsafe_code)]

use std::sync::OnceLock;

/// The instruction sets the index can use, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// AVX-512 with `VPOPCNTQ` (Ice Lake and later, Zen 4 and later).
    Avx512,
    /// `POPCNT` and AVX2 (every x86-64 server CPU since 2013).
    Avx2,
    /// Whatever the build target has.
    Portable,
}

impl Level {
    /// The level's name, for logs and benchmarks.
    pub fn name(self) -> &'static str {
        match self {
            Level::Avx512 => "avx512-vpopcntdq",
            Level::Avx2 => "avx2-popcnt",
            Level::Portable => "portable",
        }
    }
}

/// The best level this CPU has (detected once).
pub fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Level {
    if std::env::var_os("HASHFORUM_PDQ_PORTABLE").is_some() {
        return Level::Portable;
    }
    let avx2 = is_x86_feature_detected!("popcnt") && is_x86_feature_detected!("avx2");
    // `avx512f` implies `fma` and `f16c` to the compiler: check them too.
    let avx512 = avx2
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512vpopcntdq");
    if avx512 {
        Level::Avx512
    } else if avx2 {
        Level::Avx2
    } else {
        Level::Portable
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Level {
    Level::Portable
}

/// Runs `f` compiled for the best level the CPU has. `f` and what it calls must be
/// `#[inline(always)]` to benefit.
#[inline(always)]
pub(super) fn run<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    match level() {
        // SAFETY: `detect` saw every feature `avx512` enables.
        Level::Avx512 => return unsafe { avx512(f) },
        // SAFETY: `detect` saw every feature `avx2` enables.
        Level::Avx2 => return unsafe { avx2(f) },
        Level::Portable => {}
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt,avx2,fma,f16c,avx512f,avx512vl,avx512vpopcntdq")]
unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt,avx2")]
unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}
