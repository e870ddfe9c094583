//! The `.npy` layer against an independent implementation (ndarray-npy) and hand-built files.

use ndarray::{ArrayD, IxDyn, ShapeBuilder};
use ndarray_npy::{read_npy, write_npy, ReadableElement, WritableElement};
use std::path::{Path, PathBuf};
use tessera::store::npy::{header_bytes, parse_header, NpyHeader, NpyMap, NpyWriter};
use tessera::{DType, Element, Error};

const SHAPES: [&[usize]; 5] = [&[], &[0], &[3, 0, 2], &[5], &[2, 3, 4]];

fn value<T: Element>(i: usize) -> T {
    if T::DTYPE == DType::Bool {
        T::from_i64((i % 3 == 1) as i64)
    } else {
        T::from_i64((i as i64 * 37) % 101 - 50)
    }
}

fn array<T: Element>(shape: &[usize], fortran: bool) -> ArrayD<T> {
    let n = shape.iter().product();
    let data: Vec<T> = (0..n).map(value::<T>).collect();
    ArrayD::from_shape_vec(IxDyn(shape).set_f(fortran), data).unwrap()
}

/// The elements of `a` in memory order, as native-endian bytes.
fn memory_bytes<T: Element>(a: &ArrayD<T>, fortran: bool) -> Vec<u8> {
    let values: Vec<T> = if fortran {
        a.t().iter().copied().collect()
    } else {
        a.iter().copied().collect()
    };
    T::to_bytes(&values).to_vec()
}

fn interop<T: Element + WritableElement + ReadableElement>() {
    let dir = tempfile::tempdir().unwrap();
    for shape in SHAPES {
        for fortran in [false, true] {
            // Our header round-trips through our parser.
            let h = header_bytes(T::DTYPE, fortran, shape);
            assert_eq!(h.len() % 64, 0);
            let parsed = parse_header(&h, Path::new("h.npy")).unwrap();
            assert_eq!(
                parsed,
                NpyHeader {
                    dtype: T::DTYPE,
                    big_endian: false,
                    fortran_order: fortran,
                    shape: shape.to_vec(),
                    data_offset: h.len(),
                }
            );

            // A file written by ndarray-npy maps and its data bytes are the array's.
            let a = array::<T>(shape, fortran);
            let path = dir
                .path()
                .join(format!("{}-{shape:?}-{fortran}.npy", T::DTYPE));
            write_npy(&path, &a).unwrap();
            let file = std::fs::read(&path).unwrap();
            let map = NpyMap::open(&path).unwrap();
            let hdr = map.header();
            assert_eq!(hdr.dtype, T::DTYPE);
            assert_eq!(hdr.shape, shape);
            assert!(!hdr.big_endian);
            // ndarray-npy writes 0-d, 1-d and empty arrays in C order.
            let fortran = fortran && shape.len() > 1 && !a.is_empty();
            assert_eq!(hdr.fortran_order, fortran, "{shape:?}");
            assert_eq!(hdr.len(), a.len());
            assert_eq!(hdr.nbytes(), a.len() * T::DTYPE.size());
            assert_eq!(hdr.data_offset % 64, 0);
            assert_eq!(map.data(), memory_bytes(&a, fortran).as_slice());
            assert_eq!(map.data(), &file[hdr.data_offset..]);
            assert_eq!(map.path(), path);
            // Our header for the same array is as long as ndarray-npy's (both pad like NumPy).
            assert_eq!(
                header_bytes(T::DTYPE, fortran, shape).len(),
                hdr.data_offset
            );
            if shape.iter().product::<usize>() > 0 {
                assert!(T::from_bytes(map.data()).is_ok());
            }

            // A file written through NpyWriter reads back with ndarray-npy.
            let c = array::<T>(shape, false);
            let out = dir.path().join(format!("w-{}-{shape:?}.npy", T::DTYPE));
            let w = NpyWriter::create(&out, T::DTYPE, shape, true).unwrap();
            let bytes = memory_bytes(&c, false);
            assert_eq!(w.data_len(), bytes.len());
            assert_eq!(w.data_ptr() as usize % 64, 0);
            // SAFETY: `bytes.len() == data_len()`, one thread, before finish.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), w.data_ptr(), bytes.len()) };
            w.finish().unwrap();
            let back: ArrayD<T> = read_npy(&out).unwrap();
            assert_eq!(back, c);
            let file = std::fs::read(&out).unwrap();
            let h = header_bytes(T::DTYPE, false, shape);
            assert_eq!(&file[..h.len()], h.as_slice());
        }
    }
}

#[test]
fn interop_every_dtype() {
    interop::<bool>();
    interop::<i8>();
    interop::<i16>();
    interop::<i32>();
    interop::<i64>();
    interop::<u8>();
    interop::<u16>();
    interop::<u32>();
    interop::<u64>();
    interop::<f32>();
    interop::<f64>();
}

#[test]
fn header_matches_numpy_bytes() {
    // What `np.save(f, np.zeros((3, 4)))` writes with NumPy 1.x.
    let mut want = b"\x93NUMPY\x01\x00\x76\x00".to_vec();
    want.extend_from_slice(b"{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }");
    want.resize(127, b' ');
    want.push(b'\n');
    assert_eq!(header_bytes(DType::F64, false, &[3, 4]), want);

    let h = header_bytes(DType::Bool, true, &[5]);
    assert!(h.starts_with(
        b"\x93NUMPY\x01\x00\x76\x00{'descr': '|b1', 'fortran_order': True, 'shape': (5,), }"
    ));
    let h = header_bytes(DType::I32, false, &[]);
    assert!(h.starts_with(
        b"\x93NUMPY\x01\x00\x76\x00{'descr': '<i4', 'fortran_order': False, 'shape': (), }"
    ));
}

/// A file with a hand-made prefix: `version`, then the dict padded to 64 bytes with spaces and
/// a newline, then `data`.
fn raw_file(version: (u8, u8), dict: &str, data: &[u8]) -> Vec<u8> {
    let len_size = if version.0 == 1 { 2 } else { 4 };
    let mut h = dict.as_bytes().to_vec();
    while !(8 + len_size + h.len() + 1).is_multiple_of(64) {
        h.push(b' ');
    }
    h.push(b'\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.extend_from_slice(&[version.0, version.1]);
    if len_size == 2 {
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(h.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn version_2_and_3_headers() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..24).collect();
    let f = raw_file(
        (2, 0),
        "{'descr': '<u2', 'fortran_order': True, 'shape': (3, 4), }",
        &data,
    );
    assert_eq!(&f[6..12], &[2, 0, 116, 0, 0, 0]);
    let path = write_file(dir.path(), "v2.npy", &f);
    let m = NpyMap::open(&path).unwrap();
    assert_eq!(m.header().data_offset, 128);
    assert_eq!(
        (m.header().dtype, m.header().fortran_order),
        (DType::U16, true)
    );
    assert_eq!(m.data(), data.as_slice());

    // Version 3.0 is UTF-8 (NumPy uses it for field names that are not latin-1).
    let mut f = raw_file(
        (3, 0),
        "{'descr': '>f4', 'fortran_order': False, 'shape': (6,), }",
        &data,
    );
    f[62] = 0xFF;
    let path = write_file(dir.path(), "v3.npy", &f);
    let err = NpyMap::open(&path).unwrap_err().to_string();
    assert!(err.contains("malformed header: not valid UTF-8"), "{err}");
    let f = raw_file(
        (3, 0),
        "{'descr': '>f4', 'fortran_order': False, 'shape': (6,), 'x\u{e9}': 1}",
        &data,
    );
    let err = parse_header(&f, &path).unwrap_err().to_string();
    assert!(err.contains("unexpected key 'xé'"), "{err}");
    let f = raw_file(
        (3, 0),
        "{'descr': '>f4', 'fortran_order': False, 'shape': (6,), }",
        &data,
    );
    let path = write_file(dir.path(), "v3ok.npy", &f);
    let m = NpyMap::open(&path).unwrap();
    assert!(m.header().big_endian);
    assert_eq!(m.data(), data.as_slice());

    // A shape whose dict does not fit in 65535 bytes gets a 2.0 header.
    let shape = vec![1usize; 30_000];
    let h = header_bytes(DType::F64, false, &shape);
    assert_eq!(&h[6..8], &[2, 0]);
    assert_eq!(h.len() % 64, 0);
    let parsed = parse_header(&h, Path::new("big.npy")).unwrap();
    assert_eq!(parsed.shape, shape);
    assert_eq!(parsed.data_offset, h.len());
    let path = dir.path().join("many-axes.npy");
    let mut w = NpyWriter::create(&path, DType::F64, &shape, false).unwrap();
    w.data_mut().copy_from_slice(&2.5f64.to_ne_bytes());
    w.finish().unwrap();
    let m = NpyMap::open(&path).unwrap();
    assert_eq!(m.data(), &2.5f64.to_ne_bytes());
    assert_eq!(m.header().shape.len(), 30_000);
}

/// The format error for a file with these bytes; checks that it names the path.
fn format_error(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = write_file(dir, name, bytes);
    let err = NpyMap::open(&path).unwrap_err();
    let msg = err.to_string();
    match &err {
        Error::Format { path: p, .. } => assert_eq!(p, &path),
        other => panic!("{name}: expected a format error, got {other:?}"),
    }
    assert!(msg.starts_with(&path.display().to_string()), "{msg}");
    msg
}

#[test]
fn error_cases_name_path_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ok = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";

    let msg = format_error(d, "empty.npy", b"");
    assert!(msg.contains("not a .npy file: too short"), "{msg}");
    let msg = format_error(d, "short.npy", b"\x93NUM");
    assert!(msg.contains("not a .npy file: too short"), "{msg}");
    let msg = format_error(d, "magic.npy", b"PK\x03\x04 this is a zip file, not an npy");
    assert!(msg.contains("not a .npy file (bad magic)"), "{msg}");
    let msg = format_error(d, "noversion.npy", b"\x93NUMPY\x01");
    assert!(msg.contains("truncated .npy header"), "{msg}");

    let mut f = raw_file((1, 0), ok, &[0; 48]);
    f[6] = 4;
    let msg = format_error(d, "version.npy", &f);
    assert!(msg.contains("unsupported .npy format version 4.0"), "{msg}");
    let mut f = raw_file((1, 0), ok, &[0; 48]);
    f[7] = 1;
    let msg = format_error(d, "minor.npy", &f);
    assert!(msg.contains("version 1.1"), "{msg}");

    let f = raw_file((1, 0), ok, &[]);
    let msg = format_error(d, "headerlen.npy", &f[..40]);
    assert!(
        msg.contains("header length 118 extends past the end of the file"),
        "{msg}"
    );
    assert!(msg.contains("40 bytes"), "{msg}");
    let mut f = raw_file((2, 0), ok, &[]);
    f[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    let msg = format_error(d, "headerlen2.npy", &f);
    assert!(msg.contains("extends past the end of the file"), "{msg}");

    let f = raw_file((1, 0), "{'descr': '<f8', 'shape': (2, 3), }", &[0; 48]);
    let msg = format_error(d, "nokey.npy", &f);
    assert!(msg.contains("no 'fortran_order' key"), "{msg}");
    let f = raw_file(
        (1, 0),
        "{'descr': '<f8', 'fortran_order': False, 'shape': 6, }",
        &[0; 48],
    );
    let msg = format_error(d, "badshape.npy", &f);
    assert!(msg.contains("malformed 'shape'"), "{msg}");

    for (descr, kind) in [
        ("<U10", "unicode strings"),
        ("|S3", "byte strings"),
        ("|O", "Python objects"),
        ("<c16", "complex"),
        ("<f2", "float16"),
        ("<M8[ns]", "datetimes"),
        ("<i16", ""),
    ] {
        let f = raw_file(
            (1, 0),
            &format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (2, 3), }}"),
            &[0; 256],
        );
        let msg = format_error(d, "descr.npy", &f);
        assert!(
            msg.contains(&format!("unsupported dtype '{descr}'")),
            "{msg}"
        );
        assert!(msg.contains(kind), "{msg}");
        assert!(msg.contains("supported dtypes are bool"), "{msg}");
        // The header is well formed: only the dtype is not held.
        assert!(!msg.contains("malformed"), "{msg}");
    }
    let f = raw_file(
        (1, 0),
        "{'descr': [('a', '<f8'), ('b', '<i4')], 'fortran_order': False, 'shape': (2,), }",
        &[0; 24],
    );
    let msg = format_error(d, "structured.npy", &f);
    assert!(
        msg.contains("structured dtype [('a', '<f8'), ('b', '<i4')] is not supported"),
        "{msg}"
    );
    assert!(msg.contains("supported dtypes are"), "{msg}");

    let f = raw_file((1, 0), ok, &[0; 47]);
    let msg = format_error(d, "truncated.npy", &f);
    assert!(
        msg.contains("truncated: expected 48 bytes of data, found 47"),
        "{msg}"
    );
    let f = raw_file((1, 0), ok, &[]);
    let msg = format_error(d, "nodata.npy", &f);
    assert!(
        msg.contains("truncated: expected 48 bytes of data, found 0"),
        "{msg}"
    );

    let big = usize::MAX / 4;
    let f = raw_file(
        (1, 0),
        &format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({big}, 3), }}"),
        &[],
    );
    let msg = format_error(d, "overflow.npy", &f);
    assert!(
        msg.contains("too large: its size in bytes overflows"),
        "{msg}"
    );
    let f = raw_file(
        (1, 0),
        &format!("{{'descr': '|u1', 'fortran_order': False, 'shape': ({big}, 0, 8), }}"),
        &[],
    );
    // As in NumPy, a zero-length axis does not excuse the other axes.
    let msg = format_error(d, "overflow0.npy", &f);
    assert!(msg.contains("overflows"), "{msg}");
    // More than isize::MAX bytes cannot be a slice even if usize holds the count.
    let f = raw_file(
        (1, 0),
        &format!(
            "{{'descr': '|u1', 'fortran_order': False, 'shape': ({}, ), }}",
            1usize << 63
        ),
        &[],
    );
    let msg = format_error(d, "overflow-isize.npy", &f);
    assert!(msg.contains("overflows"), "{msg}");
    // A long zero-size array is fine.
    let f = raw_file(
        (1, 0),
        &format!(
            "{{'descr': '<f8', 'fortran_order': False, 'shape': ({}, 0), }}",
            1usize << 40
        ),
        &[],
    );
    let path = write_file(d, "long-empty.npy", &f);
    assert!(NpyMap::open(&path).unwrap().data().is_empty());

    // Not a file at all.
    let err = NpyMap::open(&d.join("missing.npy")).unwrap_err();
    assert!(
        matches!(err, Error::Io { .. }) && err.to_string().contains("missing.npy"),
        "{err}"
    );
    let err = NpyMap::open(d).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
}

#[test]
fn empty_arrays_map() {
    let dir = tempfile::tempdir().unwrap();
    for shape in [&[0usize][..], &[3, 0, 2]] {
        let path = dir.path().join("e.npy");
        let w = NpyWriter::create(&path, DType::F32, shape, true).unwrap();
        assert_eq!(w.data_len(), 0);
        w.finish().unwrap();
        let m = NpyMap::open(&path).unwrap();
        assert!(m.data().is_empty());
        assert!(m.header().is_empty());
        assert_eq!(
            std::fs::metadata(&path).unwrap().len() as usize,
            m.header().data_offset
        );
    }
}

#[test]
fn trailing_bytes_are_ignored_and_odd_offsets_allowed() {
    let dir = tempfile::tempdir().unwrap();
    // A NumPy < 1.? style header padded to 16 bytes rather than 64: data at offset 80.
    let mut f = b"\x93NUMPY\x01\x00".to_vec();
    let dict = b"{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }";
    let hl = 80 - 10;
    f.extend_from_slice(&(hl as u16).to_le_bytes());
    f.extend_from_slice(dict);
    f.resize(79, b' ');
    f.push(b'\n');
    f.extend_from_slice(&7i32.to_le_bytes());
    f.extend_from_slice(&9i32.to_le_bytes());
    f.extend_from_slice(b"trailing");
    let path = write_file(dir.path(), "t.npy", &f);
    let m = NpyMap::open(&path).unwrap();
    assert_eq!(m.header().data_offset, 80);
    assert_eq!(m.data().len(), 8);
    assert_eq!(i32::from_bytes(m.data()).unwrap(), &[7, 9]);

    // An odd offset (no newline, two spaces of padding) still maps; the bytes are right but
    // unaligned, so a typed view refuses them.
    let mut f = b"\x93NUMPY\x01\x00".to_vec();
    f.extend_from_slice(&(dict.len() as u16 + 2).to_le_bytes());
    f.extend_from_slice(dict);
    f.extend_from_slice(b"  ");
    f.extend_from_slice(&7i32.to_le_bytes());
    f.extend_from_slice(&9i32.to_le_bytes());
    let path = write_file(dir.path(), "odd.npy", &f);
    let m = NpyMap::open(&path).unwrap();
    assert_eq!(m.header().data_offset, 12 + dict.len());
    assert_eq!(m.header().data_offset % 2, 1);
    assert_eq!(m.data(), &f[12 + dict.len()..]);
    assert!(i32::from_bytes(m.data()).is_err());
}

/// Names of the entries of `dir`.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn writer_is_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.npy");

    // While writing, only a hidden temporary file exists.
    let w = NpyWriter::create(&path, DType::I64, &[10, 10], false).unwrap();
    let names = entries(dir.path());
    assert_eq!(names.len(), 1);
    assert!(
        names[0].starts_with(".out.npy.tessera-partial-"),
        "{names:?}"
    );
    assert!(!path.exists());
    drop(w);
    assert!(entries(dir.path()).is_empty());

    // An existing file is an error without overwrite, and is left alone.
    std::fs::write(&path, b"precious").unwrap();
    let err = NpyWriter::create(&path, DType::I64, &[3], false).unwrap_err();
    assert!(matches!(&err, Error::Exists(p) if p == &path), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    assert_eq!(entries(dir.path()), vec!["out.npy".to_owned()]);

    // With overwrite, the old file stays until finish replaces it.
    let mut w = NpyWriter::create(&path, DType::I64, &[3], true).unwrap();
    w.data_mut().copy_from_slice(i64::to_bytes(&[1, 2, 3]));
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    w.finish().unwrap();
    let back: ArrayD<i64> = read_npy(&path).unwrap();
    assert_eq!(back.as_slice().unwrap(), &[1, 2, 3]);
    assert_eq!(entries(dir.path()), vec!["out.npy".to_owned()]);

    // A file that appears at the path while writing (no overwrite) is not clobbered.
    let other = dir.path().join("race.npy");
    let w = NpyWriter::create(&other, DType::U8, &[2], false).unwrap();
    std::fs::write(&other, b"first").unwrap();
    let err = w.finish().unwrap_err();
    assert!(matches!(err, Error::Exists(_)), "{err}");
    assert_eq!(std::fs::read(&other).unwrap(), b"first");
    assert_eq!(
        entries(dir.path()),
        vec!["out.npy".to_owned(), "race.npy".to_owned()]
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o044, 0o044 & !umask_guess(), "mode {mode:o}");
    }
}

/// The process umask's group/other read bits, read from /proc when available.
#[cfg(unix)]
fn umask_guess() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

#[test]
fn writer_path_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir").join("a.npy");
    let err = NpyWriter::create(&missing, DType::F64, &[2], false).unwrap_err();
    assert!(
        matches!(&err, Error::Io { path, .. } if path == &missing),
        "{err}"
    );
    assert!(err.to_string().contains("no-such-dir"), "{err}");

    let err = NpyWriter::create(dir.path(), DType::F64, &[2], true).unwrap_err();
    assert!(matches!(&err, Error::Io { .. }), "{err}");

    let err = NpyWriter::create(
        &dir.path().join("huge.npy"),
        DType::F64,
        &[usize::MAX, 2],
        false,
    )
    .unwrap_err();
    assert!(matches!(&err, Error::Shape(_)), "{err}");
    assert!(entries(dir.path()).is_empty());

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let ro = dir.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        // Root ignores directory permissions; only check when the directory is really read-only.
        if std::fs::write(ro.join("probe"), b"").is_err() {
            let target = ro.join("a.npy");
            let err = NpyWriter::create(&target, DType::F64, &[2], false).unwrap_err();
            assert!(
                matches!(&err, Error::Io { path, .. } if path == &target),
                "{err}"
            );
        }
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn parallel_disjoint_writes() {
    use std::thread;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("par.npy");
    let n = 1 << 16;
    let w = NpyWriter::create(&path, DType::U32, &[n], false).unwrap();
    /// The pointer, shareable between threads (the writes are disjoint).
    #[derive(Clone, Copy)]
    struct Ptr(*mut u8);
    // SAFETY: each thread writes its own disjoint range.
    unsafe impl Send for Ptr {}
    unsafe impl Sync for Ptr {}
    let ptr = Ptr(w.data_ptr());
    thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                let ptr = ptr;
                let chunk = n / 4;
                for i in t * chunk..(t + 1) * chunk {
                    let v = (i as u32).to_ne_bytes();
                    // SAFETY: element `i` belongs to this thread only and is inside data_len.
                    unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), ptr.0.add(i * 4), 4) };
                }
            });
        }
    });
    w.finish().unwrap();
    let back: ArrayD<u32> = read_npy(&path).unwrap();
    assert!(back.iter().enumerate().all(|(i, &v)| v == i as u32));
}
