#!/usr/bin/env python3
"""NumPy oracle for tessera's .npy and reduction tests (run via $TESSERA_PYTHON).

Subcommands:
  write DTYPE ORDER SHAPE OUT
      Write OUT (.npy) holding np.arange(size).reshape(SHAPE, order=ORDER)
      cast to DTYPE (bool: arange % 2; float and complex: + 0.5), laid out and
      flagged in ORDER ("C" or "F"). DTYPE is any NumPy dtype string ("f8",
      "int32", "bool", big-endian ">f8", ...). SHAPE is a comma list ("3,4",
      "5", "0,3"); "" or "()" is a 0-d array.
  reduce OP AXIS IN [ddof=N] [keepdims=true]
      Print np.OP(x, axis=AXIS) as JSON: a nested list, or a bare number for a
      0-d result. NaN is printed as the string "nan" (and infinities as "inf",
      "-inf"); complex values as [re, im]. AXIS is "none", an int or a comma
      list ("0,1"). OP is one of: {ops}.
  compare A B
      Print JSON {"equal", "max_abs_diff", "shape_a", "shape_b", "dtype_a",
      "dtype_b"}. "equal": same shape and same values, NaN equal to NaN, dtype
      not considered. "max_abs_diff": max |a - b| over elements as float64
      (NaN vs NaN counts 0, NaN vs a number "inf"); null if the shapes differ.

Exit status: 0 on success, 2 on bad arguments or a NumPy error (message on stderr).
"""

import json
import math
import sys
import warnings

import numpy as np

OPS = ("sum prod mean var std min max argmin argmax any all nansum nanmean "
       "nanvar nanstd nanmin nanmax nanargmin nanargmax").split()
__doc__ = __doc__.replace("{ops}", ", ".join(OPS))


class UsageError(Exception):
    pass


def parse_shape(s):
    s = s.strip().strip("()[]").strip()
    if not s:
        return ()
    try:
        return tuple(int(p) for p in s.split(",") if p.strip() != "")
    except ValueError:
        raise UsageError(f"bad SHAPE {s!r}: expected a comma list of ints") from None


def parse_axis(s):
    s = s.strip()
    if s.lower() == "none":
        return None
    try:
        parts = [int(p) for p in s.split(",")]
    except ValueError:
        raise UsageError(f"bad AXIS {s!r}: expected none, an int or a comma list") from None
    return parts[0] if len(parts) == 1 else tuple(parts)


def jsonable(v):
    """tolist() output -> JSON-safe values (NaN/inf as strings, complex as [re, im])."""
    if isinstance(v, list):
        return [jsonable(e) for e in v]
    if isinstance(v, complex):
        return [jsonable(v.real), jsonable(v.imag)]
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
    return v


def cmd_write(dtype, order, shape, out):
    order = order.upper()
    if order not in ("C", "F"):
        raise UsageError(f"bad ORDER {order!r}: expected C or F")
    dt = np.dtype(dtype)
    shape = parse_shape(shape)
    size = math.prod(shape)
    base = np.arange(size).reshape(shape, order=order)
    if dt.kind == "b":
        arr = (base % 2).astype(dt)
    elif dt.kind in "fc":
        arr = (base + 0.5).astype(dt)
    else:
        arr = base.astype(dt)
    # Write the header ourselves so the fortran_order flag is exactly ORDER,
    # even for 0-d, 1-d and empty arrays (np.save would pick it from the strides).
    header = {"descr": np.lib.format.dtype_to_descr(dt),
              "fortran_order": order == "F", "shape": shape}
    with open(out, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(arr.tobytes(order=order))


def parse_kwargs(items):
    kw = {}
    for item in items:
        key, sep, val = item.partition("=")
        if not sep or key not in ("ddof", "keepdims"):
            raise UsageError(f"bad option {item!r}: expected ddof=N or keepdims=true|false")
        if key == "ddof":
            kw[key] = int(val)
        else:
            kw[key] = val.lower() in ("1", "true", "yes")
    return kw


def cmd_reduce(op, axis, path, *extra):
    if op not in OPS:
        raise UsageError(f"bad OP {op!r}: expected one of {' '.join(OPS)}")
    x = np.load(path, allow_pickle=False)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        r = getattr(np, op)(x, axis=parse_axis(axis), **parse_kwargs(extra))
    print(json.dumps(jsonable(np.asarray(r).tolist())))


def max_abs_diff(a, b):
    if a.size == 0:
        return 0.0
    if a.dtype.kind == "c" or b.dtype.kind == "c":
        fa, fb = a.astype(np.complex128), b.astype(np.complex128)
    else:
        fa, fb = a.astype(np.float64), b.astype(np.float64)
    na, nb = np.isnan(fa), np.isnan(fb)
    with np.errstate(all="ignore"):
        d = np.abs(fa - fb).astype(np.float64)
    d[na & nb] = 0.0
    d[na ^ nb] = np.inf
    # Same infinities: inf - inf is NaN, but they are equal.
    d[np.isnan(d)] = 0.0
    return float(d.max())


def cmd_compare(path_a, path_b):
    a = np.load(path_a, allow_pickle=False)
    b = np.load(path_b, allow_pickle=False)
    same_shape = a.shape == b.shape
    if same_shape:
        nan_ok = all(x.dtype.kind in "fc" for x in (a, b))
        equal = bool(np.array_equal(a, b, equal_nan=nan_ok))
        diff = max_abs_diff(a, b)
    else:
        equal, diff = False, None
    print(json.dumps({
        "equal": equal,
        "max_abs_diff": jsonable(diff),
        "shape_a": list(a.shape), "shape_b": list(b.shape),
        "dtype_a": str(a.dtype), "dtype_b": str(b.dtype),
    }))


COMMANDS = {"write": (cmd_write, 4, 4), "reduce": (cmd_reduce, 3, 5), "compare": (cmd_compare, 2, 2)}


def main(argv):
    if len(argv) < 1 or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    fn, lo, hi = COMMANDS[argv[0]]
    args = argv[1:]
    if not lo <= len(args) <= hi:
        print(f"npy_oracle: {argv[0]}: expected {lo}..{hi} arguments, got {len(args)}\n\n{__doc__}",
              file=sys.stderr)
        return 2
    try:
        fn(*args)
    except (UsageError, ValueError, TypeError, OSError, np.exceptions.AxisError) as e:
        print(f"npy_oracle: {argv[0]}: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
