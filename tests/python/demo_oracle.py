"""Oracle of tests/cli_demo.rs: reads what `tessera demo` wrote with zarr-python and h5py and
checks it against SciPy and NumPy computed from the sample points.

usage: demo_oracle.py POINTS_NPY N K PATH...

POINTS_NPY is data/points.npy, N the number of leading points the demo used, K its k. Each PATH
is a line of the demo's "Wrote" list: DIR/METRIC.zarr, DIR/METRIC.h5:/METRIC,
DIR/neighbours.zarr/indices or DIR/neighbours.zarr/distances. Prints one JSON object:
{"checked": [PATH...], "errors": [message...]}.
"""

import json
import sys

import h5py
import numpy as np
import zarr
from scipy.spatial.distance import cdist


def read(path):
    if ".h5:/" in path:
        file, ds = path.split(":/", 1)
        with h5py.File(file, "r") as f:
            return f[ds][...]
    return zarr.open_array(path, mode="r")[...]


def main(argv):
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    points = np.load(argv[0])[: int(argv[1])]
    k = int(argv[2])
    errors, checked = [], []
    matrices = {m: cdist(points, points, m) for m in ("cityblock", "euclidean")}
    order = np.argsort(matrices["euclidean"], axis=1, kind="stable")[:, :k]
    for path in argv[3:]:
        got = read(path)
        name = path.split("/")[-1].split(".")[0]
        if path.endswith("/indices"):
            want = order
            ok = got.dtype == np.int64 and np.array_equal(got, want)
        elif path.endswith("/distances"):
            want = np.take_along_axis(matrices["euclidean"], order, axis=1)
            ok = got.shape == want.shape and np.allclose(got, want, rtol=0, atol=1e-9 * want.max())
        else:
            want = matrices[name]
            tol = 1e-12 * np.abs(want) if name == "cityblock" else 1e-9 * want.max()
            ok = (
                got.dtype == np.float64
                and got.shape == want.shape
                and bool(np.all(np.abs(got - want) <= tol))
                and np.array_equal(got, got.T)
                and not np.any(np.diag(got))
            )
        if ok:
            checked.append(path)
        else:
            errors.append(f"{path}: {got.dtype} {got.shape} differs from the reference {want.shape}")
    print(json.dumps({"checked": checked, "errors": errors}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
