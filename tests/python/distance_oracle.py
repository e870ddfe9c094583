#!/usr/bin/env python3
"""SciPy oracle for tessera's distance tests (tests/distance_scipy.rs), run via $TESSERA_PYTHON.

Subcommands (P is minkowski's exponent, "inf" allowed, or "-" for every other metric; X and Y
are .npy files of 2-D points, float32 or float64, always computed in float64 as SciPy does):
  cdist METRIC P X Y OUT
      Save scipy.spatial.distance.cdist(X, Y, METRIC) to OUT (.npy, float64).
  pdist METRIC P X OUT
      Save squareform(pdist(X, METRIC)) to OUT: the square matrix, its diagonal 0.
  knn METRIC P X Y K IDX DIST
      D = cdist(X, Y, METRIC) (squareform(pdist(X, METRIC)) when Y is the path X); save IDX = np.argsort(D, axis=1, kind="stable")[:, :K] (int64:
      nearest first, ties by the lower index, NaN last) and DIST = D at those indices (float64).
  batch JOBS
      Run every line of the text file JOBS, each a subcommand above and its arguments separated
      by tabs, and print "ok N" for the N jobs run.

Exit status: 0 on success, 2 on bad arguments or a SciPy error (message on stderr).
"""

import sys
import warnings

import numpy as np
from scipy.spatial.distance import cdist, pdist, squareform


class UsageError(Exception):
    pass


def metric_args(metric, p):
    """The keyword arguments of cdist/pdist for METRIC and P."""
    if p == "-":
        return {}
    if metric != "minkowski":
        raise UsageError(f"P = {p!r} is only for minkowski, not {metric!r}")
    try:
        return {"p": float(p)}
    except ValueError:
        raise UsageError(f"bad P {p!r}: expected a number, inf or -") from None


def points(path):
    a = np.load(path)
    if a.ndim != 2 or a.dtype.kind != "f":
        raise UsageError(f"{path}: expected 2-D floats, got {a.dtype} of shape {a.shape}")
    return a.astype(np.float64)


def cmd_cdist(metric, p, x, y, out):
    kw = metric_args(metric, p)
    np.save(out, cdist(points(x), points(y), metric, **kw))


def cmd_pdist(metric, p, x, out):
    kw = metric_args(metric, p)
    np.save(out, squareform(pdist(points(x), metric, **kw)))


def cmd_knn(metric, p, x, y, k, idx_out, dist_out):
    kw = metric_args(metric, p)
    if x == y:
        # The points against themselves: pdist's matrix, each point exactly 0 from itself.
        d = squareform(pdist(points(x), metric, **kw))
    else:
        d = cdist(points(x), points(y), metric, **kw)
    try:
        k = int(k)
    except ValueError:
        raise UsageError(f"bad K {k!r}") from None
    if not 1 <= k <= d.shape[1]:
        raise UsageError(f"K = {k} is not in 1..={d.shape[1]}")
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    np.save(idx_out, order.astype(np.int64))
    np.save(dist_out, np.take_along_axis(d, order, axis=1))


COMMANDS = {"cdist": (cmd_cdist, 5), "pdist": (cmd_pdist, 4), "knn": (cmd_knn, 7)}


def run_one(args):
    if not args:
        raise UsageError("missing subcommand")
    if args[0] not in COMMANDS:
        raise UsageError(f"unknown subcommand {args[0]!r}")
    fn, nargs = COMMANDS[args[0]]
    if len(args) - 1 != nargs:
        raise UsageError(f"{args[0]} takes {nargs} arguments, got {len(args) - 1}: {args[1:]!r}")
    fn(*args[1:])


def run(args):
    if args and args[0] == "batch":
        if len(args) != 2:
            raise UsageError("batch takes one argument: the jobs file")
        with open(args[1], encoding="utf-8") as f:
            jobs = [line.rstrip("\n").split("\t") for line in f if line.strip()]
        for n, job in enumerate(jobs, 1):
            try:
                run_one(job)
            except UsageError as e:
                raise UsageError(f"job {n} ({' '.join(job)}): {e}") from None
        print(f"ok {len(jobs)}")
    else:
        run_one(args)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        # NaN and infinite points make SciPy warn; their results are what is checked.
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            run(argv)
    except UsageError as e:
        print(f"error: {e}\n\n{__doc__}", file=sys.stderr)
        return 2
    except Exception as e:  # a SciPy or I/O error: one line, exit 2
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
