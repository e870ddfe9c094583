//! zlib streams for shuffled chunks: literal-only blocks where match search finds nothing.
//!
//! HDF5's shuffle gathers byte `j` of every element into plane `j`. In floating-point data the
//! low planes hold mantissa bits that look random: LZ77 finds no repeats in them, yet a deflate
//! encoder spends most of its time searching for repeats (libdeflate at level 4 compresses such
//! a plane at about 100 MB/s per core and ends with what Huffman coding alone gives).
//!
//! [`zlib`] tests the planes in order, each on a sample. While libdeflate's output for the
//! sample is no shorter than the sample's Huffman coding without matches (give or take a
//! tolerance), the plane is written as dynamic-Huffman blocks of literals only (RFC 1951,
//! §3.2.7), which cost a histogram and a table lookup per byte. From the first plane that LZ77
//! does shorten, the rest of the chunk goes to libdeflate at the level asked: an empty stored
//! block brings the stream to a byte boundary (as zlib's sync flush does), and libdeflate's raw
//! deflate blocks follow. A deflate stream is a sequence of blocks, so any inflater (zlib in
//! h5py, libdeflate, miniz) reads it as one stream; the zlib wrapper's Adler-32 covers the
//! whole chunk.

use libdeflater::Compressor;

/// Bytes of one literal-only block at most; each block has its own Huffman code, so a plane
/// whose statistics drift is coded piece by piece.
const BLOCK: usize = 1 << 20;
/// Bytes of each of the two samples a plane is tested on.
const SAMPLE: usize = 1 << 15;
/// Planes shorter than this go to libdeflate whole: testing them would cost what it saves.
const MIN_PLANE: usize = 1 << 12;
/// Longest code of the literal/length alphabet (RFC 1951).
const MAX_BITS: u32 = 15;
/// Longest code of the code-length alphabet.
const MAX_CL_BITS: u32 = 7;
/// The order in which the code-length code's lengths are sent (RFC 1951, §3.2.7).
pub(crate) const CL_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];
/// The end-of-block symbol.
pub(crate) const EOB: usize = 256;

/// The zlib stream of `src`, compressed by `c` (a compressor at `level`, 0-9) but for the
/// leading planes that LZ77 cannot shorten, which are Huffman-coded without matches. `planes`
/// is the number of byte planes a shuffle made of `src` (the element size; 1 if unshuffled).
///
/// # Errors
/// libdeflate's failure to compress into its own bound for the input (which it documents
/// cannot happen), as a message.
pub(crate) fn zlib(
    c: &mut Compressor,
    level: u8,
    src: &[u8],
    planes: usize,
) -> std::result::Result<Vec<u8>, String> {
    let literal = literal_prefix(c, level, src, planes);
    let (head, tail) = src.split_at(literal);
    // Room for the head stored (the longest it can be) and libdeflate's bound for the tail:
    // pages of the capacity left unused are never touched.
    let tail_bound = c.deflate_compress_bound(tail.len());
    let head_bound = stored_bits(head.len()).div_ceil(8) as usize;
    let mut w = Bits::with_capacity(2 + head_bound + 5 + tail_bound + 4);
    w.bytes(&zlib_header(level));
    // Blocks never straddle two planes, whose statistics differ.
    let plane_len = src.len() / planes.max(1);
    let mut blocks = head
        .chunks(plane_len.max(1))
        .flat_map(|plane| plane.chunks(BLOCK))
        .peekable();
    while let Some(block) = blocks.next() {
        let last = tail.is_empty() && blocks.peek().is_none();
        let code = LiteralCode::of(&histogram(block));
        if code.bits() < stored_bits(block.len()) {
            code.write(&mut w, block, last);
        } else {
            w.stored_blocks(block, last);
        }
    }
    let mut out = if head.is_empty() || !tail.is_empty() {
        if !head.is_empty() {
            w.empty_stored_block();
        }
        let mut out = w.finish();
        let start = out.len();
        out.resize(start + tail_bound, 0);
        // An empty tail (no planes at all) is compressed too, as its final empty block.
        let n = c
            .deflate_compress(tail, &mut out[start..])
            .map_err(|e| format!("libdeflate could not compress {} bytes: {e:?}", tail.len()))?;
        out.truncate(start + n);
        out
    } else {
        w.finish()
    };
    out.extend_from_slice(&libdeflater::adler32(src).to_be_bytes());
    Ok(out)
}

/// The zlib header: deflate with a 32 KiB window, the level class libdeflate and zlib write
/// for `level`, and the check bits that make the pair a multiple of 31.
pub(crate) fn zlib_header(level: u8) -> [u8; 2] {
    let class: u16 = match level {
        0 | 1 => 0,
        2..=5 => 1,
        6 => 2,
        _ => 3,
    };
    let mut h: u16 = 0x7800 | (class << 6);
    h += (31 - h % 31) % 31;
    h.to_be_bytes()
}

/// How many leading bytes of `src` (whole planes) are written as literal-only blocks: the planes
/// before the first one on whose samples libdeflate's output is shorter than the literal coding
/// by more than the tolerance (0.5% up to level 6; none above, where the caller asked for the
/// smallest output).
fn literal_prefix(c: &mut Compressor, level: u8, src: &[u8], planes: usize) -> usize {
    if level == 0 || planes < 2 {
        return 0;
    }
    let len = src.len() / planes;
    if len < MIN_PLANE {
        return 0;
    }
    let tolerance_per_mille = if level <= 6 { 5 } else { 0 };
    let mut scratch = vec![0u8; c.deflate_compress_bound(len.min(2 * SAMPLE))];
    let mut p = 0;
    while p < planes {
        let plane = &src[p * len..(p + 1) * len];
        let samples: [&[u8]; 2] = if len <= 2 * SAMPLE {
            [plane, &[]]
        } else {
            [&plane[..SAMPLE], &plane[len / 2..len / 2 + SAMPLE]]
        };
        let (mut lz, mut literal) = (0u64, 0u64);
        for s in samples.iter().filter(|s| !s.is_empty()) {
            let huffman = LiteralCode::of(&histogram(s)).bits();
            literal += huffman.min(stored_bits(s.len())).div_ceil(8);
            // `scratch` holds libdeflate's bound for the longest sample; should it fail all
            // the same, this plane and the rest go to libdeflate.
            match c.deflate_compress(s, &mut scratch) {
                Ok(n) => lz += n as u64,
                Err(_) => return p * len,
            }
        }
        if literal * 1000 > lz * (1000 + tolerance_per_mille) {
            break;
        }
        p += 1;
    }
    p * len
}

/// Bits of `len` bytes in stored blocks (of at most 65535 bytes each), at most seven bits of
/// padding counted per block.
fn stored_bits(len: usize) -> u64 {
    let blocks = len.div_ceil(STORED_MAX).max(1) as u64;
    blocks * (3 + 7 + 32) + 8 * len as u64
}

/// Bytes of one stored block at most (its length field has 16 bits).
const STORED_MAX: usize = 65535;

/// Byte counts of `data`, and one end-of-block symbol: the frequencies of a literal-only block.
pub(crate) fn histogram(data: &[u8]) -> [u32; EOB + 1] {
    // Four tables, so that runs of one byte value do not wait on one counter.
    let mut t = [[0u32; 256]; 4];
    let mut quads = data.chunks_exact(4);
    for q in &mut quads {
        t[0][usize::from(q[0])] += 1;
        t[1][usize::from(q[1])] += 1;
        t[2][usize::from(q[2])] += 1;
        t[3][usize::from(q[3])] += 1;
    }
    for &b in quads.remainder() {
        t[0][usize::from(b)] += 1;
    }
    let mut freq = [0u32; EOB + 1];
    for (s, f) in freq.iter_mut().take(256).enumerate() {
        *f = t[0][s] + t[1][s] + t[2][s] + t[3][s];
    }
    freq[EOB] = 1;
    freq
}

/// The Huffman codes of one literal-only block and the header that describes them.
pub(crate) struct LiteralCode {
    /// Code lengths of symbols 0-256 (the literals and the end of block).
    pub(crate) lens: [u8; EOB + 1],
    /// Their codes, bit-reversed (deflate sends a code's first bit first, in a stream packed
    /// from the low bit).
    codes: [u32; EOB + 1],
    /// The symbol frequencies the code was built for.
    freq: [u32; EOB + 1],
    /// The literal/length and distance code lengths, run-length coded: (symbol, extra bits).
    runs: Vec<(u8, u8)>,
    /// Code lengths and codes of the code-length alphabet.
    cl_lens: [u8; 19],
    cl_codes: [u32; 19],
    /// How many code-length code lengths the header sends (4-19).
    hclen: usize,
}

/// The code lengths of the (empty) distance alphabet: two codes of one bit, a complete code,
/// as zlib's encoder sends when a block has no matches.
const DIST_LENS: [u8; 2] = [1, 1];

impl LiteralCode {
    pub(crate) fn of(freq: &[u32; EOB + 1]) -> Self {
        let mut lens = [0u8; EOB + 1];
        lens.copy_from_slice(&code_lengths(freq, MAX_BITS));
        let mut codes = [0u32; EOB + 1];
        codes.copy_from_slice(&canonical_codes(&lens));
        let all: Vec<u8> = lens.iter().chain(&DIST_LENS).copied().collect();
        let runs = run_lengths(&all);
        let mut cl_freq = [0u32; 19];
        for &(s, _) in &runs {
            cl_freq[usize::from(s)] += 1;
        }
        let mut cl_lens = [0u8; 19];
        cl_lens.copy_from_slice(&code_lengths(&cl_freq, MAX_CL_BITS));
        let mut cl_codes = [0u32; 19];
        cl_codes.copy_from_slice(&canonical_codes(&cl_lens));
        let hclen = CL_ORDER
            .iter()
            .rposition(|&s| cl_lens[s] != 0)
            .map_or(4, |i| (i + 1).max(4));
        LiteralCode {
            lens,
            codes,
            freq: *freq,
            runs,
            cl_lens,
            cl_codes,
            hclen,
        }
    }

    /// Extra bits that follow a code-length symbol.
    fn extra_bits(sym: u8) -> u32 {
        match sym {
            16 => 2,
            17 => 3,
            18 => 7,
            _ => 0,
        }
    }

    /// The block's length in bits, header and end of block included.
    pub(crate) fn bits(&self) -> u64 {
        let header = 3 + 5 + 5 + 4 + 3 * self.hclen as u64;
        let table: u64 = self
            .runs
            .iter()
            .map(|&(s, _)| u64::from(self.cl_lens[usize::from(s)]) + u64::from(Self::extra_bits(s)))
            .sum();
        let body: u64 = self
            .freq
            .iter()
            .zip(&self.lens)
            .map(|(&f, &l)| u64::from(f) * u64::from(l))
            .sum();
        header + table + body
    }

    /// Writes the block: header, every byte of `data` (whose histogram the code was built
    /// from), end of block.
    pub(crate) fn write(&self, w: &mut Bits, data: &[u8], last: bool) {
        w.put(u32::from(last), 1);
        w.put(2, 2); // dynamic Huffman codes
        w.put(0, 5); // HLIT - 257: symbols 0-256
        w.put(DIST_LENS.len() as u32 - 1, 5);
        w.put(self.hclen as u32 - 4, 4);
        for &s in &CL_ORDER[..self.hclen] {
            w.put(u32::from(self.cl_lens[s]), 3);
        }
        for &(s, extra) in &self.runs {
            let s = usize::from(s);
            w.put(self.cl_codes[s], u32::from(self.cl_lens[s]));
            w.put(u32::from(extra), Self::extra_bits(s as u8));
        }
        // Each entry packs a code (low 16 bits) and its length (high bits).
        let mut table = [0u32; 256];
        for (b, t) in table.iter_mut().enumerate() {
            *t = self.codes[b] | (u32::from(self.lens[b]) << 16);
        }
        let mut pairs = data.chunks_exact(2);
        for p in &mut pairs {
            let (a, b) = (table[usize::from(p[0])], table[usize::from(p[1])]);
            // Two codes of at most 15 bits each: at most 30 bits in one put.
            w.put(
                (a & 0xFFFF) | ((b & 0xFFFF) << (a >> 16)),
                (a >> 16) + (b >> 16),
            );
        }
        for &b in pairs.remainder() {
            let t = table[usize::from(b)];
            w.put(t & 0xFFFF, t >> 16);
        }
        w.put(self.codes[EOB], u32::from(self.lens[EOB]));
    }
}

/// Code lengths of a Huffman code for `freq`, none longer than `limit`. With two or more used
/// symbols the code is complete; a single used symbol (or none) gets one bit beside a second
/// symbol of one bit, which keeps the code complete as every inflater expects.
fn code_lengths(freq: &[u32], limit: u32) -> Vec<u8> {
    let mut lens = vec![0u8; freq.len()];
    let mut syms: Vec<usize> = (0..freq.len()).filter(|&s| freq[s] > 0).collect();
    if syms.len() < 2 {
        let one = syms.first().copied().unwrap_or(0);
        lens[one] = 1;
        lens[usize::from(one == 0)] = 1;
        return lens;
    }
    syms.sort_by_key(|&s| (freq[s], s));
    let k = syms.len();
    // Huffman's construction with two queues: the leaves in ascending weight, and the inner
    // nodes, which are made in ascending weight. Node i < k is leaf syms[i]; node k + j is the
    // j-th inner node. Every node's parent is made after it.
    let mut weight: Vec<u64> = syms.iter().map(|&s| u64::from(freq[s])).collect();
    let mut parent = vec![0usize; 2 * k - 1];
    let (mut leaf, mut inner) = (0usize, k);
    for node in k..2 * k - 1 {
        let mut lightest = || {
            let take_leaf = leaf < k && (inner == node || weight[leaf] <= weight[inner]);
            if take_leaf {
                leaf += 1;
                leaf - 1
            } else {
                inner += 1;
                inner - 1
            }
        };
        let (a, b) = (lightest(), lightest());
        parent[a] = node;
        parent[b] = node;
        weight.push(weight[a] + weight[b]);
    }
    let mut depth = vec![0u32; 2 * k - 1];
    for node in (0..2 * k - 2).rev() {
        depth[node] = depth[parent[node]] + 1;
    }
    // Leaves deeper than the limit move up to it; then, while the code is over-full (Kraft sum
    // above one), a leaf leaves the deepest level and a shallower leaf splits into two, each
    // step lowering the sum by one unit of the deepest level.
    let limit = limit as usize;
    let mut count = vec![0u64; limit + 1];
    for &d in &depth[..k] {
        count[(d as usize).min(limit)] += 1;
    }
    let full = 1u64 << limit;
    let mut kraft: u64 = (1..=limit).map(|l| count[l] << (limit - l)).sum();
    while kraft > full {
        let Some(l) = (1..limit).rev().find(|&l| count[l] > 0) else {
            break;
        };
        count[limit] -= 1;
        count[l] -= 1;
        count[l + 1] += 2;
        kraft -= 1;
    }
    // The least frequent symbols take the longest codes.
    let mut ascending = syms.iter();
    for l in (1..=limit).rev() {
        for _ in 0..count[l] {
            if let Some(&s) = ascending.next() {
                lens[s] = l as u8;
            }
        }
    }
    lens
}

/// The canonical codes of `lens` (RFC 1951, §3.2.2), bit-reversed for a stream packed from the
/// low bit.
pub(crate) fn canonical_codes(lens: &[u8]) -> Vec<u32> {
    let mut per_len = [0u32; 16];
    for &l in lens.iter().filter(|&&l| l > 0) {
        per_len[usize::from(l)] += 1;
    }
    let mut next = [0u32; 16];
    let mut code = 0u32;
    for bits in 1..16 {
        code = (code + per_len[bits - 1]) << 1;
        next[bits] = code;
    }
    lens.iter()
        .map(|&l| {
            if l == 0 {
                return 0;
            }
            let c = next[usize::from(l)];
            next[usize::from(l)] += 1;
            c.reverse_bits() >> (32 - u32::from(l))
        })
        .collect()
}

/// The code-length symbols of `lens`: runs of zeros as 17 (3-10) and 18 (11-138), repeats of a
/// length as 16 (3-6 more), each with its extra bits.
fn run_lengths(lens: &[u8]) -> Vec<(u8, u8)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lens.len() {
        let v = lens[i];
        let run = lens[i..].iter().take_while(|&&l| l == v).count();
        let mut left = run;
        if v == 0 {
            while left >= 11 {
                let r = left.min(138);
                out.push((18, (r - 11) as u8));
                left -= r;
            }
            if left >= 3 {
                out.push((17, (left - 3) as u8));
                left = 0;
            }
        } else {
            out.push((v, 0));
            left -= 1;
            while left >= 3 {
                let r = left.min(6);
                out.push((16, (r - 3) as u8));
                left -= r;
            }
        }
        out.extend(std::iter::repeat_n((v, 0), left));
        i += run;
    }
    out
}

/// A bit stream packed from the low bit, as deflate's.
pub(crate) struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        Bits {
            out: Vec::with_capacity(bytes),
            acc: 0,
            n: 0,
        }
    }

    /// Appends the low `len` bits of `v` (`len` at most 32, higher bits of `v` zero).
    #[inline]
    pub(crate) fn put(&mut self, v: u32, len: u32) {
        self.acc |= u64::from(v) << self.n;
        self.n += len;
        if self.n >= 32 {
            self.out.extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.n -= 32;
        }
    }

    /// Pads with zero bits to a byte boundary and writes out what is pending.
    fn align(&mut self) {
        while self.n > 0 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n = self.n.saturating_sub(8);
        }
        self.acc = 0;
    }

    /// Appends whole bytes (at a byte boundary).
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.align();
        self.out.extend_from_slice(b);
    }

    /// A stored block of no bytes, not the last: header, padding to a byte boundary, then
    /// LEN = 0 and its complement.
    pub(crate) fn empty_stored_block(&mut self) {
        self.stored_blocks(&[], false);
    }

    /// `data` in stored blocks (header, padding to a byte boundary, LEN and its complement, the
    /// bytes), the last of them final if `last`.
    fn stored_blocks(&mut self, data: &[u8], last: bool) {
        let n = data.len().div_ceil(STORED_MAX).max(1);
        for i in 0..n {
            let piece =
                &data[(i * STORED_MAX).min(data.len())..((i + 1) * STORED_MAX).min(data.len())];
            self.put(u32::from(last && i + 1 == n), 3);
            let len = piece.len() as u16;
            self.bytes(&len.to_le_bytes());
            self.bytes(&(!len).to_le_bytes());
            self.out.extend_from_slice(piece);
        }
    }

    /// The stream's bytes, padded to a byte boundary.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.align();
        self.out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use libdeflater::{CompressionLvl, Decompressor};
    use std::io::Read;

    /// A little generator, so that the tests need no crate and repeat exactly.
    pub(crate) struct Rng(pub(crate) u64);
    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn normal(&mut self) -> f64 {
            (0..12)
                .map(|_| (self.next() >> 11) as f64 / (1u64 << 53) as f64)
                .sum::<f64>()
                - 6.0
        }
    }

    fn shuffled(values: &[f64]) -> Vec<u8> {
        let n = values.len();
        let mut out = vec![0u8; n * 8];
        for (i, v) in values.iter().enumerate() {
            for (j, b) in v.to_le_bytes().iter().enumerate() {
                out[j * n + i] = *b;
            }
        }
        out
    }

    fn compressor(level: u8) -> Compressor {
        Compressor::new(CompressionLvl::new(i32::from(level)).unwrap())
    }

    /// Inflates with libdeflate and with zlib-rs (through flate2), which must agree with `raw`.
    fn check_round_trip(stream: &[u8], raw: &[u8]) {
        let mut out = vec![0u8; raw.len()];
        let n = Decompressor::new()
            .zlib_decompress(stream, &mut out)
            .unwrap();
        assert_eq!(n, raw.len());
        assert!(out == raw, "libdeflate inflates other bytes");
        let mut other = Vec::new();
        flate2::read::ZlibDecoder::new(stream)
            .read_to_end(&mut other)
            .unwrap();
        assert!(other == raw, "zlib-rs inflates other bytes");
    }

    #[test]
    fn random_planes_are_literal_and_round_trip() {
        let mut rng = Rng(7);
        let values: Vec<f64> = (0..100_000)
            .map(|i| ((2.0 + (i as f64).sin() + 0.5 * rng.normal()) * 1e3).round() / 1e3)
            .collect();
        let raw = shuffled(&values);
        for level in [1, 4, 6, 9] {
            let mut c = compressor(level);
            let literal = literal_prefix(&mut c, level, &raw, 8);
            // The six low planes are mantissa noise and the top one (sign and exponent)
            // repeats; the seventh (exponent and high mantissa bits) is in between.
            let n = values.len();
            assert!(
                literal == 6 * n || literal == 7 * n,
                "level {level}: {literal}"
            );
            let stream = zlib(&mut c, level, &raw, 8).unwrap();
            check_round_trip(&stream, &raw);
            let whole = c.zlib_compress_bound(raw.len());
            let mut lib = vec![0u8; whole];
            let n = c.zlib_compress(&raw, &mut lib).unwrap();
            // Within 0.5% of libdeflate alone at the same level.
            assert!(
                stream.len() * 1000 <= n * 1005,
                "level {level}: {} bytes against libdeflate's {n}",
                stream.len()
            );
        }
    }

    #[test]
    fn every_plane_literal_ends_with_a_final_literal_block() {
        let mut rng = Rng(3);
        let raw: Vec<u8> = (0..200_000).map(|_| rng.next() as u8).collect();
        let mut c = compressor(4);
        assert_eq!(literal_prefix(&mut c, 4, &raw, 4), raw.len());
        let stream = zlib(&mut c, 4, &raw, 4).unwrap();
        check_round_trip(&stream, &raw);
        // Random bytes are stored: 5 bytes of header per 65535.
        assert!(
            stream.len() <= raw.len() + 5 * 8 + 2 + 4 + 5,
            "{}",
            stream.len()
        );
        // Bytes of 6 bits are Huffman-coded in three quarters of the room.
        let six: Vec<u8> = raw.iter().map(|b| b & 63).collect();
        assert_eq!(literal_prefix(&mut c, 4, &six, 4), six.len());
        let stream = zlib(&mut c, 4, &six, 4).unwrap();
        check_round_trip(&stream, &six);
        assert!(stream.len() < six.len() * 3 / 4 + 4096, "{}", stream.len());
        // With two bytes left over past the planes, the tail is libdeflate's.
        let odd = &raw[..raw.len() - 2];
        check_round_trip(&zlib(&mut c, 4, odd, 4).unwrap(), odd);
    }

    #[test]
    fn compressible_and_small_inputs_go_to_libdeflate() {
        let mut c = compressor(4);
        let zeros = vec![0u8; 1 << 16];
        assert_eq!(literal_prefix(&mut c, 4, &zeros, 8), 0);
        check_round_trip(&zlib(&mut c, 4, &zeros, 8).unwrap(), &zeros);
        let mut rng = Rng(11);
        let small: Vec<u8> = (0..1000).map(|_| rng.next() as u8).collect();
        assert_eq!(literal_prefix(&mut c, 4, &small, 8), 0);
        check_round_trip(&zlib(&mut c, 4, &small, 8).unwrap(), &small);
        let empty: [u8; 0] = [];
        check_round_trip(&zlib(&mut c, 4, &empty, 8).unwrap(), &empty);
        // Level 0 stores; unshuffled data is never split.
        let big: Vec<u8> = (0..1 << 16).map(|_| rng.next() as u8).collect();
        assert_eq!(literal_prefix(&mut compressor(0), 0, &big, 8), 0);
        assert_eq!(literal_prefix(&mut c, 4, &big, 1), 0);
        check_round_trip(&zlib(&mut compressor(0), 0, &big, 8).unwrap(), &big);
    }

    #[test]
    fn literal_blocks_of_skewed_and_degenerate_data_round_trip() {
        let mut rng = Rng(5);
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![42],
            vec![0; 1000],
            vec![255; 70_000],
            (0..5000).map(|i| (i % 2) as u8 * 255).collect(),
            // Frequencies that double from symbol to symbol: Huffman codes of up to 20 bits,
            // which the limit cuts to 15.
            (0..21u32)
                .flat_map(|s| std::iter::repeat_n(s as u8, 1 << s.min(20)))
                .collect(),
            (0..BLOCK * 2 + 17)
                .map(|_| (rng.next() % 7) as u8)
                .collect(),
        ];
        // Stored blocks: none, one, several (of at most 65535 bytes).
        for len in [0, 1, 65535, 65536, 200_000] {
            let raw: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            for first in [false, true] {
                let mut w = Bits::with_capacity(16);
                w.bytes(&zlib_header(4));
                if first {
                    w.empty_stored_block();
                }
                w.stored_blocks(&raw, true);
                let mut stream = w.finish();
                let extra = if first { 5 } else { 0 };
                assert!((stream.len() - 2 - extra) as u64 <= stored_bits(len).div_ceil(8));
                stream.extend_from_slice(&libdeflater::adler32(&raw).to_be_bytes());
                check_round_trip(&stream, &raw);
            }
        }
        for raw in cases {
            let mut w = Bits::with_capacity(16);
            w.bytes(&zlib_header(4));
            let mut blocks = raw.chunks(BLOCK).peekable();
            if raw.is_empty() {
                LiteralCode::of(&histogram(&raw)).write(&mut w, &raw, true);
            }
            while let Some(b) = blocks.next() {
                let code = LiteralCode::of(&histogram(b));
                assert!(code.lens.iter().all(|&l| u32::from(l) <= MAX_BITS));
                let before = w.out.len() as u64 * 8 + u64::from(w.n);
                code.write(&mut w, b, blocks.peek().is_none());
                // What the stored-or-literal choice counts is what is written.
                assert_eq!(
                    w.out.len() as u64 * 8 + u64::from(w.n) - before,
                    code.bits()
                );
            }
            let mut stream = w.finish();
            stream.extend_from_slice(&libdeflater::adler32(&raw).to_be_bytes());
            check_round_trip(&stream, &raw);
        }
    }

    #[test]
    fn random_layouts_round_trip() {
        let mut rng = Rng(13);
        // A literal plane of several blocks, then a plane for libdeflate.
        let n = 3 * BLOCK + 1000;
        let mut raw: Vec<u8> = (0..n).map(|_| (rng.next() as u8) >> 3).collect();
        raw.extend((0..n).map(|i| (i / 5000) as u8));
        let mut c = compressor(4);
        assert_eq!(literal_prefix(&mut c, 4, &raw, 2), n);
        check_round_trip(&zlib(&mut c, 4, &raw, 2).unwrap(), &raw);
        // Plane counts, lengths (with bytes past the last plane), levels, and planes of noise
        // of 1-8 bits or slow counts in any order.
        for case in 0..60 {
            let planes = [1, 2, 3, 4, 8, 16][case % 6];
            let len = (rng.next() % 300_000) as usize + if case % 5 == 0 { 600_000 } else { 0 };
            let widths: Vec<u32> = (0..planes).map(|_| (rng.next() % 9) as u32).collect();
            let plane_len = (len / planes).max(1);
            let raw: Vec<u8> = (0..len)
                .map(|i| match widths[(i / plane_len).min(planes - 1)] {
                    0 => (i / 1000) as u8,
                    w => (rng.next() as u8) >> (8 - w),
                })
                .collect();
            let level = (rng.next() % 10) as u8;
            let mut c = compressor(level);
            let stream = zlib(&mut c, level, &raw, planes).unwrap();
            check_round_trip(&stream, &raw);
        }
    }

    #[test]
    fn code_lengths_are_limited_and_complete() {
        // Fibonacci frequencies make the deepest unlimited Huffman trees.
        let mut fib = vec![1u32, 1];
        while fib.len() < 40 {
            let n = fib[fib.len() - 1].saturating_add(fib[fib.len() - 2]);
            fib.push(n);
        }
        let mut rng = Rng(9);
        let cases: Vec<(Vec<u32>, u32)> = vec![
            (fib.clone(), 15),
            (fib[..19].to_vec(), 7),
            ((0..257).map(|i| 1 + (i % 3)).collect(), 15),
            ((0..19).map(|_| (rng.next() % 50) as u32).collect(), 7),
            ((0..257).map(|_| (rng.next() % 1000) as u32).collect(), 15),
            (vec![0, 0, 5, 0], 7),
            (vec![0; 19], 7),
        ];
        for (freq, limit) in cases {
            let lens = code_lengths(&freq, limit);
            assert!(lens.iter().all(|&l| u32::from(l) <= limit), "{lens:?}");
            for (f, l) in freq.iter().zip(&lens) {
                assert!(*f == 0 || *l > 0, "a used symbol has no code: {lens:?}");
            }
            let kraft: u64 = lens
                .iter()
                .filter(|&&l| l > 0)
                .map(|&l| 1u64 << (limit - u32::from(l)))
                .sum();
            assert_eq!(kraft, 1 << limit, "not complete: {lens:?}");
            // Without a limit in the way, the lengths are Huffman's: compare the coded size
            // with the entropy bound (within one bit per symbol).
            let total: u64 = freq.iter().map(|&f| u64::from(f)).sum();
            if total > 0 && freq.iter().filter(|&&f| f > 0).count() > 1 && limit == 15 {
                let coded: u64 = freq
                    .iter()
                    .zip(&lens)
                    .map(|(&f, &l)| u64::from(f) * u64::from(l))
                    .sum();
                let entropy: f64 = freq
                    .iter()
                    .filter(|&&f| f > 0)
                    .map(|&f| {
                        let p = f64::from(f) / total as f64;
                        -f64::from(f) * p.log2()
                    })
                    .sum();
                assert!((coded as f64) < entropy + total as f64 + 1.0);
            }
        }
    }

    #[test]
    fn header_and_run_lengths() {
        for level in 0..=9 {
            let h = zlib_header(level);
            assert_eq!(h[0], 0x78);
            assert_eq!(u16::from_be_bytes(h) % 31, 0);
        }
        let lens = [0u8; 150]
            .iter()
            .chain(&[3u8; 10])
            .chain(&[0u8; 5])
            .chain(&[7u8, 7])
            .copied()
            .collect::<Vec<_>>();
        let runs = run_lengths(&lens);
        assert_eq!(
            runs,
            vec![
                (18, 127),
                (18, 1),
                (3, 0),
                (16, 3),
                (16, 0),
                (17, 2),
                (7, 0),
                (7, 0)
            ]
        );
        // Expanding the runs gives the lengths back.
        let mut back = Vec::new();
        for (s, e) in runs {
            match s {
                16 => {
                    let prev = *back.last().unwrap();
                    back.extend(std::iter::repeat_n(prev, 3 + usize::from(e)));
                }
                17 => back.extend(std::iter::repeat_n(0, 3 + usize::from(e))),
                18 => back.extend(std::iter::repeat_n(0, 11 + usize::from(e))),
                v => back.push(v),
            }
        }
        assert_eq!(back, lens);
    }
}
