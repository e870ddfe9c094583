//! Measures this machine's limits for the distance kernels, the figures the benchmark compares
//! each kernel with (`benches/distance.sh`; README, "Latest: the kernels beside Numba, the
//! NumPy trick and the machine's limit").
//!
//! ```text
//! cargo run --release --example machine_peak -- [--threads T] [--seconds S]
//! ```
//!
//! For each kernel, the AVX-512 instructions it issues per pair-dimension (one vector of 8
//! float64 or 16 float32 pair-dimensions at a time) runs in a loop of eight
//! independent chains, its operands in registers: no loads, no stores, no loop overhead worth
//! counting. The rate it reaches is what the core can issue for that kernel, its limit:
//!
//! - `fma`: one multiply-add per pair-dimension, the inner product under the GEMM metrics
//!   (euclidean, sqeuclidean, cosine, correlation); twice it is the FLOP peak.
//! - `cityblock`: `x - y`, `|.|`, and the sum, through the adder or the multiply-add unit
//!   (`t * 1 + a`), whichever is faster (both are measured).
//! - `chebyshev`: `x - y`, `|.|`, `max`.
//! - `minkowski3`: `x - y`, `|.|`, two products, the sum.
//! - `braycurtis`: `x - y`, `x + y`, two `|.|`, two sums (through the multiply-add unit).
//!   On inputs without a negative coordinate (the benchmark's) the kernel sums `|x - y|`
//!   alone, as `cityblock` does, and takes the denominator from each point's total: its limit
//!   is `cityblock`'s.
//! - `canberra (divide)`: `x - y`, `|x - y|`, `|x|`, `|y|`, `|x| + |y|`, the division, the test
//!   for a zero denominator and the masked sum: the dividing panel loop.
//! - `canberra (estimate)`, float64 only: the same quotient, correctly rounded, from the
//!   reciprocal estimate (`vrcp14`): the test for an all-ones significand, the clamp, three
//!   Newton steps, the product and two corrections (`q + y (num - den q)`).
//! - `canberra`, float64 only: three vectors divided for each one estimated, tessera's AVX-512
//!   kernel, whose divider and multiply-add units work side by side (float32 canberra divides).
//!
//! Prints one JSON line per kernel, dtype and thread count: `{"mix", "dtype", "threads",
//! "g_pair_dims"}` (10^9 pair-dimensions per second, all threads together). On a CPU without
//! AVX-512 (F and DQ) it says so and exits with status 2.

use std::time::Instant;

/// Command-line options.
struct Args {
    threads: usize,
    seconds: f64,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        seconds: 0.5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let val = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--threads" => {
                a.threads =
                    val.parse().ok().filter(|&t| t > 0).ok_or_else(|| {
                        format!("--threads: {val:?} is not a positive whole number")
                    })?
            }
            "--seconds" => {
                a.seconds = val
                    .parse()
                    .ok()
                    .filter(|&s: &f64| s > 0.0 && s.is_finite())
                    .ok_or_else(|| format!("--seconds: {val:?} is not a positive number"))?
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(a)
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    //! The instruction loops. Registers: zmm0-7 the eight chains' x, zmm8-15 and zmm16-23
    //! their first and second sums, zmm24-27 scratch (renamed per chain by the core), zmm28 y,
    //! zmm29 ones, zmm30 the sign-clearing mask, zmm31 zero.
    use std::arch::asm;

    /// Constants the loops load before they start: 8 vectors of x, then y, ones, the mask
    /// and zero, 64 bytes each.
    #[repr(C, align(64))]
    pub(super) struct Consts(pub(super) [u8; 12 * 64]);

    impl Consts {
        /// x = 1 + chain / 8 + lane / 64, y = 0.75: every difference non-zero and normal.
        pub(super) fn new(f32s: bool) -> Consts {
            let mut b = [0u8; 12 * 64];
            let lanes = if f32s { 16 } else { 8 };
            let mut put = |vector: usize, lane: usize, v: f64| {
                let at = vector * 64 + lane * (64 / lanes);
                if f32s {
                    b[at..at + 4].copy_from_slice(&(v as f32).to_le_bytes());
                } else {
                    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
                }
            };
            for lane in 0..lanes {
                for chain in 0..8 {
                    put(chain, lane, 1.0 + chain as f64 / 8.0 + lane as f64 / 64.0);
                }
                put(8, lane, 0.75);
                put(9, lane, 1.0);
                put(10, lane, 0.0);
                put(11, lane, 0.0);
            }
            // The mask: every bit but the sign bit of each lane.
            for chunk in b[640..704].chunks_exact_mut(64 / lanes) {
                let bits: u64 = if f32s {
                    0x7fff_ffff
                } else {
                    0x7fff_ffff_ffff_ffff
                };
                chunk.copy_from_slice(&bits.to_le_bytes()[..64 / lanes]);
            }
            Consts(b)
        }
    }

    // The mixes, one per kernel: the instructions of one chain (x in zmm$x, sums in zmm$a
    // and zmm$b) for one vector of pair-dimensions; `$s` is `pd` (float64) or `ps` (float32).
    /// zmm24 = |x - y|.
    #[rustfmt::skip]
    macro_rules! absdiff {
        ($s:literal, $x:literal) => { concat!(
            "vsub", $s, " zmm24, zmm", $x, ", zmm28\n",
            "vand", $s, " zmm24, zmm24, zmm30\n",
        ) };
    }
    #[rustfmt::skip]
    macro_rules! fma {
        ($s:literal, $x:literal, $a:literal, $b:literal) => { concat!(
            "vfmadd231", $s, " zmm", $a, ", zmm", $x, ", zmm28\n",
        ) };
    }
    #[rustfmt::skip]
    macro_rules! cityblock_add {
        ($s:literal, $x:literal, $a:literal, $b:literal) => { concat!(
            absdiff!($s, $x),
            "vadd", $s, " zmm", $a, ", zmm", $a, ", zmm24\n",
        ) };
    }
    #[rustfmt::skip]
    macro_rules! cityblock_fma {
        ($s:literal, $x:literal, $a:literal, $b:literal) => { concat!(
            absdiff!($s, $x),
            "vfmadd231", $s, " zmm", $a, ", zmm24, zmm29\n",
        ) };
    }
    #[rustfmt::skip]
    macro_rules! chebyshev {
        ($s:literal, $x:literal, $a:literal, $b:literal) => { concat!(
            absdiff!($s, $x),
            "vmax", $s, " zmm", $a, ", zmm", $a, ", zmm24\n",
        ) };
    }
    #[rustfmt::skip]
    macro_rules! minkowski3 {
        ($s:literal, $x:literal, $a:literal, $b:literal) => { concat!(
            absdiff!($s, $x),
            "vmul", $s, " zmm25, zmm24, zmm24\n",
            "vmul", $s, " zmm25, zmm25, zmm24\n",
            "vadd", $s, " zmm", $a, ", zmm", $a, ", zmm25\n",
        ) };
    }
    #[rustfmt::skip]
    macro_rules! braycurtis {
        ($s:literal, $x:literal, $a:literal, $b:literal) => { concat!(
            // Both operations before both masks: in the order of `absdiff`, then `x + y`
            // and its mask, this core issues 7.2 rather than 9.5 G pair-dims/s.
            "vsub", $s, " zmm24, zmm", $x, ", zmm28\n",
            "vadd", $s, " zmm25, zmm", $x, ", zmm28\n",
            "vand", $s, " zmm24, zmm24, zmm30\n",
            "vand", $s, " zmm25, zmm25, zmm30\n",
            "vfmadd231", $s, " zmm", $a, ", zmm24, zmm29\n",
            "vfmadd231", $s, " zmm", $b, ", zmm25, zmm29\n",
        ) };
    }
    #[rustfmt::skip]
    macro_rules! canberra_divide {
        ($s:literal, $x:literal, $a:literal, $b:literal) => { concat!(
            absdiff!($s, $x),
            "vand", $s, " zmm25, zmm", $x, ", zmm30\n",
            "vand", $s, " zmm26, zmm28, zmm30\n",
            "vadd", $s, " zmm25, zmm25, zmm26\n",
            "vdiv", $s, " zmm24, zmm24, zmm25\n",
            "vcmp", $s, " k1, zmm25, zmm31, 4\n",
            "vadd", $s, " zmm", $a, " {{k1}}, zmm", $a, ", zmm24\n",
        ) };
    }
    /// One Newton step of the reciprocal, `y = y + y (1 - den y)` (zmm26 y, zmm25 den).
    #[rustfmt::skip]
    macro_rules! newton {
        () => { concat!(
            "vmovapd zmm27, zmm29\n",
            "vfnmadd231pd zmm27, zmm25, zmm26\n",
            "vfmadd231pd zmm26, zmm26, zmm27\n",
        ) };
    }
    /// One correction of the quotient, `q = q + y (num - den q)` (zmm27 q, zmm24 num, zmm$b
    /// the remainder).
    #[rustfmt::skip]
    macro_rules! correct {
        ($b:literal) => { concat!(
            "vmovapd zmm", $b, ", zmm24\n",
            "vfnmadd231pd zmm", $b, ", zmm25, zmm27\n",
            "vfmadd231pd zmm27, zmm26, zmm", $b, "\n",
        ) };
    }
    /// float64 only, the kernel's correctly rounded quotient: `x - y`, `|x - y|`, `|x| + |y|`,
    /// the test for an all-ones significand (zmm30 standing in for its mask), the reciprocal
    /// estimate and its clamp, three Newton steps, the product, two corrections and the sum.
    /// zmm24 the numerator, zmm25 the denominator, zmm26 the reciprocal, zmm27 the quotient,
    /// zmm$b the remainder.
    #[rustfmt::skip]
    macro_rules! canberra_estimate {
        ($s:literal, $x:literal, $a:literal, $b:literal) => { concat!(
            absdiff!("pd", $x),
            "vandpd zmm25, zmm", $x, ", zmm30\n",
            "vandpd zmm26, zmm28, zmm30\n",
            "vaddpd zmm25, zmm25, zmm26\n",
            "vpandq zmm27, zmm25, zmm30\n",
            "vpcmpeqq k2, zmm27, zmm30\n",
            "kortestb k2, k2\n",
            "vrcp14pd zmm26, zmm25\n",
            // The clamp (of an estimate of 1/0, in the kernel).
            "vminpd zmm26, zmm29, zmm26\n",
            newton!(), newton!(), newton!(),
            "vmulpd zmm27, zmm24, zmm26\n",
            correct!($b), correct!($b),
            "vaddpd zmm", $a, ", zmm", $a, ", zmm27\n",
        ) };
    }
    /// float64 only, tessera's kernel: four vectors per chain, three divided, one estimated.
    #[rustfmt::skip]
    macro_rules! canberra_split {
        ($s:literal, $x:literal, $a:literal, $b:literal) => { concat!(
            canberra_divide!("pd", $x, $a, $b),
            canberra_divide!("pd", $x, $a, $b),
            canberra_divide!("pd", $x, $a, $b),
            canberra_estimate!("pd", $x, $a, $b),
        ) };
    }

    /// Eight independent chains of one mix.
    macro_rules! eight {
        ($m:ident, $s:literal) => {
            concat!(
                $m!($s, 0, 8, 16),
                $m!($s, 1, 9, 17),
                $m!($s, 2, 10, 18),
                $m!($s, 3, 11, 19),
                $m!($s, 4, 12, 20),
                $m!($s, 5, 13, 21),
                $m!($s, 6, 14, 22),
                $m!($s, 7, 15, 23)
            )
        };
    }

    /// `iters` rounds of the eight chains of a mix.
    macro_rules! peak_fn {
        ($name:ident, $m:ident, $s:literal) => {
            /// # Safety
            /// The CPU must have AVX-512 F and DQ.
            #[target_feature(enable = "avx512f,avx512dq")]
            pub(super) unsafe fn $name(consts: &Consts, iters: u64) {
                // SAFETY: `consts` is 12 aligned vectors, the loads stay inside it; every
                // register written is declared clobbered; no memory is written.
                unsafe {
                    asm!(
                        "vmovups zmm0, [{c}]",
                        "vmovups zmm1, [{c} + 64]",
                        "vmovups zmm2, [{c} + 128]",
                        "vmovups zmm3, [{c} + 192]",
                        "vmovups zmm4, [{c} + 256]",
                        "vmovups zmm5, [{c} + 320]",
                        "vmovups zmm6, [{c} + 384]",
                        "vmovups zmm7, [{c} + 448]",
                        "vmovups zmm28, [{c} + 512]",
                        "vmovups zmm29, [{c} + 576]",
                        "vmovups zmm30, [{c} + 640]",
                        "vmovups zmm31, [{c} + 704]",
                        "vmovups zmm8, zmm31",
                        "vmovups zmm9, zmm31",
                        "vmovups zmm10, zmm31",
                        "vmovups zmm11, zmm31",
                        "vmovups zmm12, zmm31",
                        "vmovups zmm13, zmm31",
                        "vmovups zmm14, zmm31",
                        "vmovups zmm15, zmm31",
                        "vmovups zmm16, zmm31",
                        "vmovups zmm17, zmm31",
                        "vmovups zmm18, zmm31",
                        "vmovups zmm19, zmm31",
                        "vmovups zmm20, zmm31",
                        "vmovups zmm21, zmm31",
                        "vmovups zmm22, zmm31",
                        "vmovups zmm23, zmm31",
                        "2:",
                        eight!($m, $s),
                        "dec {n}",
                        "jnz 2b",
                        c = in(reg) consts.0.as_ptr(),
                        n = inout(reg) iters.max(1) => _,
                        out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _,
                        out("zmm4") _, out("zmm5") _, out("zmm6") _, out("zmm7") _,
                        out("zmm8") _, out("zmm9") _, out("zmm10") _, out("zmm11") _,
                        out("zmm12") _, out("zmm13") _, out("zmm14") _, out("zmm15") _,
                        out("zmm16") _, out("zmm17") _, out("zmm18") _, out("zmm19") _,
                        out("zmm20") _, out("zmm21") _, out("zmm22") _, out("zmm23") _,
                        out("zmm24") _, out("zmm25") _, out("zmm26") _, out("zmm27") _,
                        out("zmm28") _, out("zmm29") _, out("zmm30") _, out("zmm31") _,
                        out("k1") _, out("k2") _,
                        options(nostack, readonly),
                    );
                }
            }
        };
    }

    peak_fn!(fma_pd, fma, "pd");
    peak_fn!(fma_ps, fma, "ps");
    peak_fn!(cityblock_add_pd, cityblock_add, "pd");
    peak_fn!(cityblock_add_ps, cityblock_add, "ps");
    peak_fn!(cityblock_fma_pd, cityblock_fma, "pd");
    peak_fn!(cityblock_fma_ps, cityblock_fma, "ps");
    peak_fn!(chebyshev_pd, chebyshev, "pd");
    peak_fn!(chebyshev_ps, chebyshev, "ps");
    peak_fn!(minkowski3_pd, minkowski3, "pd");
    peak_fn!(minkowski3_ps, minkowski3, "ps");
    peak_fn!(braycurtis_pd, braycurtis, "pd");
    peak_fn!(braycurtis_ps, braycurtis, "ps");
    peak_fn!(canberra_divide_pd, canberra_divide, "pd");
    peak_fn!(canberra_divide_ps, canberra_divide, "ps");
    peak_fn!(canberra_estimate_pd, canberra_estimate, "pd");
    peak_fn!(canberra_split_pd, canberra_split, "pd");

    /// One loop: its name, dtype, the function, and the vectors of pair-dimensions each chain
    /// forms per round.
    pub(super) type Loop = (&'static str, &'static str, unsafe fn(&Consts, u64), u32);

    /// Every loop, float64 then float32 for each mix.
    pub(super) const LOOPS: [Loop; 16] = [
        ("fma", "float64", fma_pd, 1),
        ("fma", "float32", fma_ps, 1),
        ("cityblock (add)", "float64", cityblock_add_pd, 1),
        ("cityblock (add)", "float32", cityblock_add_ps, 1),
        ("cityblock (fma)", "float64", cityblock_fma_pd, 1),
        ("cityblock (fma)", "float32", cityblock_fma_ps, 1),
        ("chebyshev", "float64", chebyshev_pd, 1),
        ("chebyshev", "float32", chebyshev_ps, 1),
        ("minkowski3", "float64", minkowski3_pd, 1),
        ("minkowski3", "float32", minkowski3_ps, 1),
        ("braycurtis", "float64", braycurtis_pd, 1),
        ("braycurtis", "float32", braycurtis_ps, 1),
        ("canberra (divide)", "float64", canberra_divide_pd, 1),
        ("canberra (divide)", "float32", canberra_divide_ps, 1),
        ("canberra (estimate)", "float64", canberra_estimate_pd, 1),
        ("canberra", "float64", canberra_split_pd, 4),
    ];

    /// Whether this CPU runs the loops.
    pub(super) fn supported() -> bool {
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512dq")
    }
}

/// Pair-dimensions per second of `f` on `threads` threads, each running `iters` rounds.
#[cfg(target_arch = "x86_64")]
fn rate(f: avx512::Loop, threads: usize, iters: u64) -> f64 {
    let (_, dtype, run, vectors) = f;
    let lanes = if dtype == "float32" { 16.0 } else { 8.0 };
    let consts = avx512::Consts::new(dtype == "float32");
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            // SAFETY: main runs the loops only when `avx512::supported()`.
            s.spawn(|| unsafe { run(&consts, iters) });
        }
    });
    let secs = t0.elapsed().as_secs_f64().max(1e-9);
    threads as f64 * iters as f64 * 8.0 * f64::from(vectors) * lanes / secs
}

#[cfg(target_arch = "x86_64")]
fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("machine_peak: {e}");
            std::process::exit(1);
        }
    };
    if !avx512::supported() {
        eprintln!("machine_peak: this CPU has no AVX-512 F and DQ; the loops are written for it");
        std::process::exit(2);
    }
    for f in avx512::LOOPS {
        // Calibrate on one thread, then run each thread count for about `seconds`.
        let mut iters = 1u64 << 16;
        let per_iter = loop {
            let t0 = Instant::now();
            // SAFETY: checked `supported()` above.
            unsafe { (f.2)(&avx512::Consts::new(f.1 == "float32"), iters) };
            let s = t0.elapsed().as_secs_f64();
            if s > 0.05 {
                break s / iters as f64;
            }
            iters *= 4;
        };
        let iters = ((args.seconds / per_iter) as u64).max(1);
        for threads in [1, args.threads] {
            let best = (0..3)
                .map(|_| rate(f, threads, iters))
                .fold(0.0f64, f64::max);
            println!(
                "{{\"mix\": \"{}\", \"dtype\": \"{}\", \"threads\": {threads}, \"g_pair_dims\": {:.2}}}",
                f.0,
                f.1,
                best / 1e9
            );
            if args.threads == 1 {
                break;
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    let _ = parse();
    let _ = Instant::now();
    eprintln!("machine_peak: the loops are written for x86-64 with AVX-512");
    std::process::exit(2);
}
