//! LZF decompression: h5py's `compression="lzf"` filter (HDF5 filter 32000), whose chunks are
//! each one block of liblzf's format.
//!
//! The format is a sequence of items, each starting with a control byte `c`:
//! - `c < 32`: a literal run, the next `c + 1` bytes copied as they are;
//! - otherwise a back reference: length `c >> 5` (when 7, plus the next byte) plus 2, and
//!   distance `(c & 31) << 8` plus the next byte plus 1 back from the end of the output so far;
//!   the copy may overlap what it writes (a distance shorter than the length repeats bytes).
//!
//! The decoder is safe code: every read of the input and every write of the output is checked,
//! so a damaged chunk gives an error, never a read outside its buffers.

/// Decodes the LZF block `src` into the start of `out`; the number of bytes written.
///
/// # Errors
/// An item cut short by the end of `src`, a back reference before the start of the output,
/// or more output than `out` holds, each as a message with the input offset.
pub(crate) fn decompress(src: &[u8], out: &mut [u8]) -> Result<usize, String> {
    let (mut ip, mut op) = (0usize, 0usize);
    let room = out.len();
    let cut = |at: usize| format!("LZF data cut short (item at byte {at} of {})", src.len());
    let full = |at: usize| {
        format!("LZF data decodes to more than the {room} bytes expected (item at byte {at})")
    };
    while ip < src.len() {
        let at = ip;
        let ctrl = usize::from(src[ip]);
        ip += 1;
        if ctrl < 32 {
            let len = ctrl + 1;
            let lit = src.get(ip..ip + len).ok_or_else(|| cut(at))?;
            out.get_mut(op..op + len)
                .ok_or_else(|| full(at))?
                .copy_from_slice(lit);
            ip += len;
            op += len;
            continue;
        }
        let mut len = ctrl >> 5;
        if len == 7 {
            len += usize::from(*src.get(ip).ok_or_else(|| cut(at))?);
            ip += 1;
        }
        len += 2;
        let back = ((ctrl & 31) << 8) + usize::from(*src.get(ip).ok_or_else(|| cut(at))?) + 1;
        ip += 1;
        let from = op.checked_sub(back).ok_or_else(|| {
            format!("LZF back reference {back} bytes before the output's byte {op}, past its start (item at byte {at})")
        })?;
        if op + len > room {
            return Err(full(at));
        }
        if back >= len {
            out.copy_within(from..from + len, op);
        } else {
            // Overlapping: each byte may be one this copy wrote.
            for k in 0..len {
                out[op + k] = out[from + k];
            }
        }
        op += len;
    }
    Ok(op)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::decompress;

    /// liblzf's compression of `data` (the library hdf5's lzf feature builds): what h5py's
    /// filter stores. Also used by the pipeline tests of `hdf5_chunks`.
    pub(crate) fn liblzf(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; data.len() + data.len() / 16 + 64];
        // SAFETY: both buffers are live and as long as the lengths passed.
        let n = unsafe {
            lzf_sys::lzf_compress(
                data.as_ptr().cast(),
                data.len() as u32,
                out.as_mut_ptr().cast(),
                out.len() as u32,
            )
        };
        // The room given fits any input, so liblzf never gives up (returns 0).
        assert!(n > 0, "liblzf failed on {} bytes", data.len());
        out.truncate(n as usize);
        out
    }

    /// Bytes of several kinds: runs (overlapping references), repeats at every distance,
    /// shuffled doubles, noise.
    fn samples() -> Vec<Vec<u8>> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut v = vec![
            vec![7u8; 1],
            vec![0u8; 5000],
            b"abcabcabcabcabcabd".repeat(300),
        ];
        v.push((0..70000).map(|i| (i % 251) as u8).collect());
        v.push((0..9000).map(|_| (next() % 4) as u8).collect());
        v.push((0..40000).map(|_| next() as u8).collect());
        let doubles: Vec<u8> = (0..8192)
            .flat_map(|i| ((f64::from(i) * 0.001).sin().to_bits()).to_le_bytes())
            .collect();
        v.push(doubles);
        // Matches reaching back the longest distance (8192) and the longest length (264).
        let block: Vec<u8> = (0..8192).map(|_| next() as u8).collect();
        v.push([block.clone(), block.clone(), vec![3; 1000], block].concat());
        v
    }

    #[test]
    fn liblzf_blocks_decode_to_their_input() {
        for (k, data) in samples().iter().enumerate() {
            let packed = liblzf(data);
            let mut out = vec![0u8; data.len()];
            assert_eq!(decompress(&packed, &mut out), Ok(data.len()), "sample {k}");
            assert!(out == *data, "sample {k} decodes wrong");
            // Room to spare: the count says how much was written.
            let mut roomy = vec![0u8; data.len() + 100];
            assert_eq!(decompress(&packed, &mut roomy), Ok(data.len()));
            assert!(roomy[..data.len()] == *data);
            // Too little room: an error, not a short answer.
            let mut short = vec![0u8; data.len() - 1];
            let e = decompress(&packed, &mut short).unwrap_err();
            assert!(e.contains("more than"), "{e}");
        }
    }

    #[test]
    fn damaged_blocks_are_errors_that_say_where() {
        let data = b"abcabcabcabcabcabd".repeat(300);
        let packed = liblzf(&data);
        let mut out = vec![0u8; data.len()];
        // Every cut: an error, or fewer bytes than the data (never more, never a panic).
        for n in 0..packed.len() {
            match decompress(&packed[..n], &mut out) {
                Ok(len) => assert!(len < data.len(), "cut at {n} gave {len} bytes"),
                Err(e) => assert!(e.contains("cut short"), "{e}"),
            }
        }
        // Hand-made items: a literal run past the end, a reference before the start, a long
        // reference missing its length byte.
        assert!(decompress(&[5, 1, 2], &mut out)
            .unwrap_err()
            .contains("cut short"));
        let e = decompress(&[0, 9, 0x20, 4], &mut out).unwrap_err();
        assert!(e.contains("before the output's byte 1"), "{e}");
        assert!(decompress(&[0, 9, 0xe0], &mut out)
            .unwrap_err()
            .contains("cut short"));
        // A reference one byte back repeats it: 3 + 2 copies of 9.
        let mut small = [0u8; 6];
        assert_eq!(decompress(&[0, 9, 0x60, 0], &mut small), Ok(6));
        assert_eq!(small, [9; 6]);
        // Every flipped bit: an error, or some bytes, never a panic.
        for bit in 0..packed.len() * 8 {
            let mut bad = packed.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let _ = decompress(&bad, &mut out);
        }
    }
}
