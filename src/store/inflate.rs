//! Inflating zlib streams whose leading blocks are literal-only, two literals per table lookup.
//!
//! [`super::deflate::zlib`] writes the byte planes that LZ77 cannot shorten as dynamic-Huffman
//! blocks of literals only, and they are most of a shuffled floating-point chunk. A general
//! inflater decodes one symbol per table lookup, and every lookup waits on the one before it
//! (the next code starts where the last one ended): about 500 MB/s per core on such planes.
//! A block without matches needs no length or distance decoding, so a table indexed by 14 bits
//! can decode, per lookup, the first two literals whose codes end within them: two 7-bit codes
//! are one lookup, and the chain of waits is half as long.
//!
//! [`literal_zlib`] decodes stored blocks and literal-only dynamic blocks (those whose
//! literal/length code has exactly the 257 symbols of the literals and the end of block) itself.
//! At the first other block, libdeflate inflates the rest as a raw deflate stream, from the last
//! block that began on a byte boundary (the writer puts an empty stored block before its
//! libdeflate blocks, so they begin on one); libdeflate refuses a match reaching back before
//! that point, which a writer that did not restart there could have made. Whatever this path
//! cannot finish or finds wrong (such a match, an incomplete code, a length or checksum that
//! does not match), it gives up on, and the caller inflates the whole stream with libdeflate,
//! whose answer (the data, or the error) stands.

use super::deflate::{canonical_codes, CL_ORDER, EOB};
use super::raw_inflate::RawInflater;

/// Bits of a window of the pair table: one lookup decodes the codes that end within them.
const WINDOW: u32 = 14;
/// Entries of the pair table.
const ENTRIES: usize = 1 << WINDOW;
/// Bits of a window of the first-code table: codes up to this long are decoded by table.
const SHORT: u32 = 11;
/// A pair table entry for the end of block, or a code longer than `SHORT` bits (an entry is
/// otherwise the bits that its one or two literals take).
const SPECIAL: u8 = 0;

/// The decoding tables of one literal-only block, kept by a thread from block to block.
///
/// The pair table gives, per 14 bits, only how many bits the codes that end within them take,
/// and whether that is one literal or two: its 16 KiB stay in the L1 cache, and its lookup is
/// the only one each step waits on. The literals themselves come from the first-code table,
/// looked up at the window and again past the first code, off that chain.
pub(crate) struct LiteralTable {
    /// Per window of 14 bits: the bits its literals take (two literals if more than the first
    /// code's), or `SPECIAL`.
    pairs: Vec<u8>,
    /// Per window of 11 bits: the length of the code it begins with (above bit 9; 0 for a
    /// longer code) and its symbol (low 9 bits).
    first: Vec<u16>,
    /// The literal/length code, read bit by bit for codes longer than `SHORT` bits.
    code: Canonical,
    /// libdeflate, for the blocks that are not literal-only.
    raw: Option<RawInflater>,
    /// Literal-only blocks decoded here so far.
    blocks: usize,
}

impl Default for LiteralTable {
    fn default() -> Self {
        LiteralTable {
            pairs: vec![0; ENTRIES],
            first: vec![0; 1 << SHORT],
            code: Canonical::default(),
            raw: None,
            blocks: 0,
        }
    }
}

/// Inflates the zlib stream `src` into `out`, which it must fill exactly, decoding stored and
/// literal-only blocks itself and the rest with libdeflate (see the module's documentation).
/// `false` when it gave up: `out` then holds anything, and the caller inflates `src` again as a
/// whole.
pub(crate) fn literal_zlib(t: &mut LiteralTable, src: &[u8], out: &mut [u8]) -> bool {
    let Some((&[cmf, flg], rest)) = src.split_first_chunk::<2>() else {
        return false;
    };
    let Some((body, &adler)) = rest.split_last_chunk::<4>() else {
        return false;
    };
    // Deflate, a window of at most 32 KiB, the check bits right, no preset dictionary.
    if cmf & 0x0f != 8 || cmf >> 4 > 7 || (u16::from(cmf) << 8 | u16::from(flg)) % 31 != 0 {
        return false;
    }
    if flg & 0x20 != 0 {
        return false;
    }
    t.inflate_raw(body, out) && libdeflater::adler32(out) == u32::from_be_bytes(adler)
}

impl LiteralTable {
    /// Inflates the raw deflate stream `body` (all of it) into `out` (all of it); `false` if
    /// it gave up.
    fn inflate_raw(&mut self, body: &[u8], out: &mut [u8]) -> bool {
        let mut r = Bits::new(body);
        let mut o = 0;
        // Where the last block that began on a byte boundary began: (byte of `body`, output
        // byte).
        let mut resume = (0, 0);
        loop {
            let start = r.consumed();
            if start.is_multiple_of(8) {
                resume = (start / 8, o);
            }
            let Some(header) = r.take(3) else {
                return false;
            };
            let done = match header >> 1 {
                0 => r.stored(out, &mut o),
                2 if r.peek(5) == Some(0) => {
                    r.take(5);
                    self.blocks += 1;
                    self.read_header(&mut r) && self.decode(&mut r, out, &mut o)
                }
                _ => {
                    // A block of another kind: libdeflate inflates the rest, from the last
                    // block boundary on a byte boundary (this one, when the writer put one
                    // there), and must end where `body` does.
                    let (at, o) = resume;
                    let (Some(rest), Some(tail)) = (body.get(at..), out.get_mut(o..)) else {
                        return false;
                    };
                    if self.raw.is_none() {
                        self.raw = RawInflater::new();
                    }
                    return self
                        .raw
                        .as_mut()
                        .and_then(|d| d.deflate(rest, tail))
                        .is_some_and(|took| took == rest.len());
                }
            };
            if !done {
                return false;
            }
            if header & 1 == 1 {
                break;
            }
        }
        // The final block ended: the whole stream was read, the output filled.
        r.consumed().div_ceil(8) == body.len() && o == out.len()
    }
}

/// A deflate bit stream, read from the low bit of each byte.
struct Bits<'a> {
    src: &'a [u8],
    /// Bytes of `src` loaded into `buf` so far (past the end: zeros, counted in `pad`).
    pos: usize,
    /// The next `n` bits of the stream in the low bits, and above them possibly bits that
    /// follow (a refill adds the same ones again).
    buf: u64,
    n: u32,
    /// Zero bytes loaded past the end of `src`.
    pad: usize,
}

impl<'a> Bits<'a> {
    fn new(src: &'a [u8]) -> Self {
        Bits {
            src,
            pos: 0,
            buf: 0,
            n: 0,
            pad: 0,
        }
    }

    /// Bits of the stream taken so far (past its end too).
    fn consumed(&self) -> usize {
        8 * (self.pos + self.pad) - self.n as usize
    }

    /// Loads bytes until at least 56 bits are held.
    #[inline(always)]
    fn refill(&mut self) {
        if let Some(word) = self.src.get(self.pos..self.pos + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            self.buf |= u64::from_le_bytes(w) << self.n;
            self.pos += ((63 - self.n) >> 3) as usize;
            self.n |= 56;
        } else {
            while self.n <= 56 {
                let b = match self.src.get(self.pos) {
                    Some(&b) => {
                        self.pos += 1;
                        b
                    }
                    None => {
                        self.pad += 1;
                        0
                    }
                };
                self.buf |= u64::from(b) << self.n;
                self.n += 8;
            }
        }
    }

    /// The next `k` (at most 32) bits, not taken; `None` past the end of the stream.
    fn peek(&mut self, k: u32) -> Option<u32> {
        if self.n < k {
            self.refill();
        }
        if self.consumed() + k as usize > 8 * self.src.len() {
            return None;
        }
        Some((self.buf & ((1u64 << k) - 1)) as u32)
    }

    /// Takes the next `k` (at most 32) bits; `None` past the end of the stream.
    fn take(&mut self, k: u32) -> Option<u32> {
        let v = self.peek(k)?;
        self.drop(k);
        Some(v)
    }

    #[inline(always)]
    fn drop(&mut self, k: u32) {
        self.buf >>= k;
        self.n -= k;
    }

    /// The rest of a stored block (its header taken): the padding to a byte boundary, the
    /// length and its complement, the bytes, copied to `out` at `o`. `false` if they do not fit
    /// or the stream is cut short.
    fn stored(&mut self, out: &mut [u8], o: &mut usize) -> bool {
        let at = self.consumed().div_ceil(8);
        let Some(&[a, b, c, d]) = self.src.get(at..at + 4) else {
            return false;
        };
        let len = usize::from(u16::from_le_bytes([a, b]));
        if u16::from_le_bytes([a, b]) != !u16::from_le_bytes([c, d]) {
            return false;
        }
        let (Some(from), Some(to)) = (
            self.src.get(at + 4..at + 4 + len),
            out.get_mut(*o..*o + len),
        ) else {
            return false;
        };
        to.copy_from_slice(from);
        *o += len;
        // Start afresh at the next byte: what `buf` held is read again from `src`.
        self.pos = at + 4 + len;
        self.buf = 0;
        self.n = 0;
        self.pad = 0;
        true
    }
}

impl LiteralTable {
    /// Reads the rest of a literal-only block's header (HLIT taken: 257 codes) and builds the
    /// table. `false` if the header is cut short, describes codes that other inflaters reject,
    /// or a literal code that is incomplete (a lone end of block: left to libdeflate).
    fn read_header(&mut self, r: &mut Bits) -> bool {
        let (Some(hdist), Some(hclen)) = (r.take(5), r.take(4)) else {
            return false;
        };
        let (ndist, nclen) = (hdist as usize + 1, hclen as usize + 4);
        let mut cl_lens = [0u8; 19];
        for &i in &CL_ORDER[..nclen] {
            let Some(l) = r.take(3) else {
                return false;
            };
            cl_lens[i] = l as u8;
        }
        let Some(cl) = Canonical::new(&cl_lens) else {
            return false;
        };
        // The literal and distance code lengths, one sequence (a repeat may cross between).
        let mut lens = [0u8; EOB + 1 + 32];
        let total = EOB + 1 + ndist;
        let mut i = 0;
        while i < total {
            let Some(sym) = cl.decode(r) else {
                return false;
            };
            let (value, count) = match sym {
                0..=15 => (sym as u8, 1),
                16 => match (i.checked_sub(1), r.take(2)) {
                    (Some(prev), Some(extra)) => (lens[prev], 3 + extra as usize),
                    _ => return false,
                },
                17 => match r.take(3) {
                    Some(extra) => (0, 3 + extra as usize),
                    None => return false,
                },
                _ => match r.take(7) {
                    Some(extra) => (0, 11 + extra as usize),
                    None => return false,
                },
            };
            if i + count > total {
                return false;
            }
            lens[i..i + count].fill(value);
            i += count;
        }
        // The distance code is never used here, but a stream whose header other inflaters
        // reject is not ours to read.
        if Canonical::new(&lens[EOB + 1..total]).is_none() {
            return false;
        }
        self.build(&lens[..=EOB])
    }

    /// Fills the tables for the code lengths `lens` (of symbols 0-256); `false` if they are
    /// not a complete code with an end of block.
    fn build(&mut self, lens: &[u8]) -> bool {
        match Canonical::new(lens) {
            Some(c) if c.complete && lens[EOB] > 0 => self.code = c,
            _ => return false,
        }
        let codes = canonical_codes(lens);
        self.first.fill(0);
        for (s, (&l, &c)) in lens.iter().zip(&codes).enumerate() {
            let l = u32::from(l);
            if l == 0 || l > SHORT {
                continue;
            }
            for k in 0..1usize << (SHORT - l) {
                self.first[c as usize | k << l] = (l << 9) as u16 | s as u16;
            }
        }
        let short = (1usize << SHORT) - 1;
        for (w, e) in self.pairs.iter_mut().enumerate() {
            let a = self.first[w & short];
            let (l1, s1) = (u32::from(a >> 9), usize::from(a & 0x1ff));
            *e = if l1 == 0 || s1 == EOB {
                SPECIAL
            } else {
                // The bits of the window past the first code, zeros above: a code that ends
                // within them is found whatever follows; one that does not is longer than
                // what is left.
                let b = self.first[(w >> l1) & short];
                let (l2, s2) = (u32::from(b >> 9), usize::from(b & 0x1ff));
                if l2 > 0 && s2 != EOB && l1 + l2 <= WINDOW {
                    (l1 + l2) as u8
                } else {
                    l1 as u8
                }
            };
        }
        true
    }

    /// Decodes the literals of a block into `out` from `o` up to the end of block. `false` if
    /// they do not fit or the stream ends first.
    fn decode(&self, r: &mut Bits, out: &mut [u8], o: &mut usize) -> bool {
        let (pairs, first) = (&self.pairs[..ENTRIES], &self.first[..1 << SHORT]);
        let (wmask, smask) = (ENTRIES - 1, (1usize << SHORT) - 1);
        let mut at = *o;
        loop {
            // Four windows per refill (each takes at most 14 of the 56 bits), eight bytes out
            // at most: while both fit, no bounds are checked within.
            while r.pos + 8 <= r.src.len() && at + 8 <= out.len() {
                r.refill();
                let mut buf = r.buf;
                let mut taken = 0;
                for _ in 0..4 {
                    let w = buf as usize;
                    // The lookup of `e` and the shift are the chain each step waits on.
                    let e = pairs[w & wmask];
                    if e == SPECIAL {
                        break;
                    }
                    let a = first[w & smask];
                    let l1 = a >> 9;
                    let b = first[(w >> l1) & smask];
                    out[at] = a as u8;
                    out[at + 1] = b as u8;
                    buf >>= e;
                    taken += u32::from(e);
                    at += 1 + usize::from(u16::from(e) != l1);
                }
                r.buf = buf;
                r.n -= taken;
                if pairs[buf as usize & wmask] == SPECIAL && r.n >= 15 {
                    match self.special(r, out, &mut at) {
                        Some(true) => {
                            *o = at;
                            return true;
                        }
                        Some(false) => {}
                        None => return false,
                    }
                }
            }
            // Near the end of the input or the output: one window at a time, bounds checked.
            r.refill();
            if r.consumed() > 8 * r.src.len() {
                return false;
            }
            let w = r.buf as usize;
            let e = pairs[w & wmask];
            if e == SPECIAL {
                match self.special(r, out, &mut at) {
                    Some(true) => {
                        *o = at;
                        return true;
                    }
                    Some(false) => continue,
                    None => return false,
                }
            }
            let a = first[w & smask];
            let l1 = a >> 9;
            let b = first[(w >> l1) & smask];
            let count = 1 + usize::from(u16::from(e) != l1);
            let Some(to) = out.get_mut(at..at + count) else {
                return false;
            };
            to.copy_from_slice(&[a as u8, b as u8][..count]);
            r.drop(u32::from(e));
            at += count;
        }
    }

    /// The symbol at the front of `r` when its window is `SPECIAL`:
    /// `Some(true)` for the end of block (taken), `Some(false)` for a long code's literal
    /// (written and taken), `None` if it does not fit in `out` or the stream has run out.
    #[cold]
    fn special(&self, r: &mut Bits, out: &mut [u8], at: &mut usize) -> Option<bool> {
        let s = self.code.decode(r)?;
        if usize::from(s) == EOB {
            return Some(true);
        }
        *out.get_mut(*at)? = s as u8;
        *at += 1;
        Some(false)
    }
}

/// A canonical Huffman code read one bit at a time (the code-length code, a literal code's long
/// codes, and the checks).
#[derive(Default)]
struct Canonical {
    /// Codes of each length.
    count: [u16; 16],
    /// Symbols by code length, then by value.
    symbols: Vec<u16>,
    /// Whether the codes fill the code space.
    complete: bool,
}

impl Canonical {
    /// The code of `lens`; `None` if it is over-subscribed, or incomplete but for the two
    /// cases RFC 1951 allows the distance code (no code, or one code of one bit), which
    /// libdeflate allows every code.
    fn new(lens: &[u8]) -> Option<Self> {
        let mut count = [0u16; 16];
        for &l in lens {
            *count.get_mut(usize::from(l))? += 1;
        }
        count[0] = 0;
        let mut left: i32 = 1;
        for &c in &count[1..] {
            left = 2 * left - i32::from(c);
            if left < 0 {
                return None;
            }
        }
        let codes: u16 = count.iter().sum();
        if left > 0 && !(codes == 0 || (codes == 1 && count[1] == 1)) {
            return None;
        }
        let mut symbols: Vec<u16> = (0..lens.len() as u16)
            .filter(|&s| lens[usize::from(s)] > 0)
            .collect();
        symbols.sort_by_key(|&s| lens[usize::from(s)]);
        Some(Canonical {
            count,
            symbols,
            complete: left == 0,
        })
    }

    /// The symbol whose code begins `buf` (15 bits at least held), and its length.
    fn decode_bits(&self, buf: u64) -> Option<(u16, u32)> {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for (len, &c) in (1..).zip(&self.count[1..]) {
            code |= (buf >> (len - 1)) as i32 & 1;
            let c = i32::from(c);
            if code - first < c {
                let s = self.symbols.get((index + code - first) as usize)?;
                return Some((*s, len));
            }
            index += c;
            first = (first + c) << 1;
            code <<= 1;
        }
        None
    }

    /// The next symbol of `r`, taken; `None` if its code runs past the end of the stream.
    fn decode(&self, r: &mut Bits) -> Option<u16> {
        if r.n < 15 {
            r.refill();
        }
        let (s, len) = self.decode_bits(r.buf)?;
        r.take(len)?;
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::super::deflate::tests::Rng;
    use super::super::deflate::{histogram, zlib, zlib_header, Bits as Writer, LiteralCode};
    use super::*;
    use libdeflater::{CompressionLvl, Compressor, Decompressor};

    /// Bytes of `n` f64 values rounded to three decimals, shuffled into eight planes (as the
    /// storage benchmark's data): six planes that LZ77 cannot shorten, two that it can.
    fn shuffled_values(n: usize, seed: u64) -> Vec<u8> {
        let mut rng = Rng(seed);
        let mut out = vec![0u8; n * 8];
        for i in 0..n {
            let noise = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
            let v = ((2.0 + (i as f64 / 300.0).sin() + noise) * 1e3).round() / 1e3;
            for (j, b) in v.to_le_bytes().iter().enumerate() {
                out[j * n + i] = *b;
            }
        }
        out
    }

    /// What this path gives for `stream` into `len` bytes: `None` if it gave up.
    fn fast(stream: &[u8], len: usize) -> Option<Vec<u8>> {
        let mut out = vec![0xa5u8; len];
        let mut t = LiteralTable::default();
        literal_zlib(&mut t, stream, &mut out).then_some(out)
    }

    /// libdeflate's inflation of a whole zlib stream.
    fn reference(stream: &[u8], len: usize) -> Option<Vec<u8>> {
        let mut out = vec![0u8; len];
        match Decompressor::new().zlib_decompress(stream, &mut out) {
            Ok(n) if n == len => Some(out),
            _ => None,
        }
    }

    /// The zlib stream of a literal-only block of `a`, then (after an empty stored block if
    /// `aligned`) a fixed-Huffman block: the literal `b'a'`, a match of 3 bytes `distance`
    /// (1-4) back, the end of block. Returns the stream and the bytes it holds.
    fn literal_then_match(a: &[u8], aligned: bool, distance: usize) -> (Vec<u8>, Vec<u8>) {
        let mut w = Writer::with_capacity(a.len() + 64);
        w.bytes(&zlib_header(4));
        LiteralCode::of(&histogram(a)).write(&mut w, a, false);
        if aligned {
            w.empty_stored_block();
        }
        let rev = |code: u32, len: u32| code.reverse_bits() >> (32 - len);
        w.put(1 | 1 << 1, 3); // final, fixed Huffman
        w.put(rev(0x30 + u32::from(b'a'), 8), 8);
        w.put(rev(1, 7), 7); // length 3 (symbol 257)
        w.put(rev(distance as u32 - 1, 5), 5); // distances 1-4: codes 0-3, no extra bits
        w.put(0, 7); // end of block
        let mut raw = a.to_vec();
        raw.push(b'a');
        for _ in 0..3 {
            raw.push(raw[raw.len() - distance]);
        }
        let mut stream = w.finish();
        stream.extend_from_slice(&libdeflater::adler32(&raw).to_be_bytes());
        (stream, raw)
    }

    #[test]
    fn our_streams_are_read_here_and_equal_the_input() {
        for (n, level) in [(100_000, 4), (70_001, 1), (4096, 9), (1000, 6)] {
            let raw = shuffled_values(n, n as u64);
            let mut c = Compressor::new(CompressionLvl::new(level).unwrap());
            let stream = zlib(&mut c, level as u8, &raw, 8).unwrap();
            assert_eq!(reference(&stream, raw.len()).as_deref(), Some(&raw[..]));
            let mut t = LiteralTable::default();
            let mut got = vec![0u8; raw.len()];
            assert!(
                literal_zlib(&mut t, &stream, &mut got),
                "n {n}, level {level}"
            );
            assert!(got == raw, "n {n}, level {level}");
            // Seven planes are literal at level 4 (six of 100000 bytes, one with a drift).
            if level == 4 {
                assert!(t.blocks >= 6, "{} literal blocks", t.blocks);
            }
        }
    }

    #[test]
    fn short_end_of_block_codes_and_tiny_outputs() {
        // Few byte values: every code short, the end of block's too (first or second in a
        // window); outputs shorter than the eight bytes the fast loop needs.
        for len in [1usize, 2, 3, 7, 8, 9, 15, 16, 17, 1000] {
            let a: Vec<u8> = (0..len).map(|i| b"abcab"[i % 5]).collect();
            let code = LiteralCode::of(&histogram(&a));
            assert!(u32::from(code.lens[EOB]) <= 4);
            let mut w = Writer::with_capacity(a.len() + 64);
            w.bytes(&zlib_header(4));
            // Two blocks: the end of block is followed by more literals.
            let half = len / 2;
            LiteralCode::of(&histogram(&a[..half])).write(&mut w, &a[..half], false);
            code.write(&mut w, &a[half..], true);
            let mut stream = w.finish();
            stream.extend_from_slice(&libdeflater::adler32(&a).to_be_bytes());
            assert_eq!(reference(&stream, a.len()).as_deref(), Some(&a[..]));
            let mut t = LiteralTable::default();
            let mut out = vec![0u8; a.len()];
            assert!(literal_zlib(&mut t, &stream, &mut out), "len {len}");
            assert!(out == a, "len {len}");
            assert_eq!(t.blocks, 2);
        }
    }

    #[test]
    fn bytes_between_the_last_block_and_the_checksum_are_refused() {
        let text: Vec<u8> = (0..50_000u32)
            .map(|i| b"tessera "[i as usize % 8])
            .collect();
        let mut c = Compressor::new(CompressionLvl::new(4).unwrap());
        let mut plain = vec![0u8; c.zlib_compress_bound(text.len())];
        let k = c.zlib_compress(&text, &mut plain).unwrap();
        plain.truncate(k);
        // libdeflate's blocks from the start, and after literal planes of ours.
        let raw = shuffled_values(20_000, 3);
        let ours = zlib(&mut c, 4, &raw, 8).unwrap();
        for (stream, data) in [(plain, &text), (ours, &raw)] {
            assert!(fast(&stream, data.len()).as_deref() == Some(&data[..]));
            let mut bad = stream.clone();
            bad.splice(stream.len() - 4..stream.len() - 4, [0u8; 4]);
            assert_eq!(reference(&bad, data.len()), None);
            assert_eq!(fast(&bad, data.len()), None);
        }
    }

    #[test]
    fn foreign_streams_are_read_here_or_given_up_never_wrong() {
        // Streams of libdeflate and of zlib-rs (flate2) at every level, of data with matches
        // and without: the path hands them to libdeflate at their first block.
        let mut rng = Rng(3);
        let noise: Vec<u8> = (0..50_000).map(|_| rng.next() as u8).collect();
        let text: Vec<u8> = (0..50_000u32)
            .map(|i| b"tessera "[i as usize % 8])
            .collect();
        for raw in [noise, text, Vec::new()] {
            for level in 0..=9 {
                let mut c = Compressor::new(CompressionLvl::new(level).unwrap());
                let mut stream = vec![0u8; c.zlib_compress_bound(raw.len())];
                let k = c.zlib_compress(&raw, &mut stream).unwrap();
                stream.truncate(k);
                assert!(fast(&stream, raw.len()).as_deref() == Some(&raw[..]));
                let mut e = flate2::write::ZlibEncoder::new(
                    Vec::new(),
                    flate2::Compression::new(level as u32),
                );
                std::io::Write::write_all(&mut e, &raw).unwrap();
                let stream = e.finish().unwrap();
                assert!(fast(&stream, raw.len()).as_deref() == Some(&raw[..]));
            }
        }
    }

    #[test]
    fn a_match_after_literal_blocks() {
        // A literal block that does not end on a byte boundary.
        let a: Vec<u8> = (10_000..10_008u32)
            .map(|n| (0..n).map(|i| (i * i % 251) as u8).collect::<Vec<u8>>())
            .find(|a| !LiteralCode::of(&histogram(a)).bits().is_multiple_of(8))
            .unwrap();
        // The match not on a byte boundary: libdeflate inflates the whole stream from its
        // start.
        let (stream, raw) = literal_then_match(&a, false, 4);
        assert_eq!(reference(&stream, raw.len()).as_deref(), Some(&raw[..]));
        assert!(fast(&stream, raw.len()).as_deref() == Some(&raw[..]));
        // On a byte boundary, the match within the new block: libdeflate from there.
        let (stream, raw) = literal_then_match(&a, true, 1);
        assert!(fast(&stream, raw.len()).as_deref() == Some(&raw[..]));
        // The match reaching back into the literal block: given up, for the whole stream.
        let (stream, raw) = literal_then_match(&a, true, 4);
        assert_eq!(reference(&stream, raw.len()).as_deref(), Some(&raw[..]));
        assert_eq!(fast(&stream, raw.len()), None);
    }

    #[test]
    fn codes_longer_than_the_window() {
        // Byte b seen 2^(17 - b) times for b < 17, the others once, in a random order: codes
        // of every length up to 15, the end of block among the longest.
        let mut a: Vec<u8> = (0..=255u8)
            .flat_map(|b| std::iter::repeat_n(b, 1 << 17u32.saturating_sub(u32::from(b))))
            .collect();
        let mut rng = Rng(17);
        for i in (1..a.len()).rev() {
            a.swap(i, rng.next() as usize % (i + 1));
        }
        let code = LiteralCode::of(&histogram(&a));
        let mut w = Writer::with_capacity(a.len());
        w.bytes(&zlib_header(4));
        code.write(&mut w, &a, true);
        let mut stream = w.finish();
        stream.extend_from_slice(&libdeflater::adler32(&a).to_be_bytes());
        let mut t = LiteralTable::default();
        let mut out = vec![0u8; a.len()];
        assert!(literal_zlib(&mut t, &stream, &mut out));
        assert_eq!(t.blocks, 1);
        assert!(out == a);
        let long = code.lens.iter().filter(|&&l| u32::from(l) > SHORT).count();
        assert!(long > 200, "{:?}", code.lens);
        assert!(u32::from(code.lens[EOB]) > SHORT);
    }

    #[test]
    fn damage_is_given_up_or_read_as_libdeflate_reads_it() {
        let raw = shuffled_values(20_000, 11);
        let mut c = Compressor::new(CompressionLvl::new(4).unwrap());
        let stream = zlib(&mut c, 4, &raw, 8).unwrap();
        // Every cut, and a wrong output length either way: given up.
        for cut in (0..stream.len()).step_by(97) {
            assert_eq!(fast(&stream[..cut], raw.len()), None, "cut {cut}");
        }
        assert_eq!(fast(&stream, raw.len() - 1), None);
        assert_eq!(fast(&stream, raw.len() + 1), None);
        let mut longer = stream.clone();
        longer.push(0);
        assert_eq!(fast(&longer, raw.len()), None);
        // Flipped bits: what this path reads (before the checksum), libdeflate reads alike
        // once the checksum is made to match it.
        let mut rng = Rng(5);
        let mut read = 0;
        for _ in 0..2000 {
            let mut bad = stream.clone();
            let at = 2 + rng.next() as usize % (bad.len() - 6);
            bad[at] ^= 1 << (rng.next() % 8);
            let mut t = LiteralTable::default();
            let mut got = vec![0u8; raw.len()];
            let body_end = bad.len() - 4;
            if t.inflate_raw(&bad[2..body_end], &mut got) {
                read += 1;
                bad[body_end..].copy_from_slice(&libdeflater::adler32(&got).to_be_bytes());
                assert_eq!(Some(&got), reference(&bad, raw.len()).as_ref(), "byte {at}");
            }
        }
        // Some flips land where they change a literal, not the stream's shape.
        assert!(read > 100, "{read} damaged streams read");
    }
}
