"""Python NanaSQLite 1.6.2's side of benches/write_back.rs: W1 in v2 (write-back) mode.

  python_write_back.py N REPS
Prints one JSON line per measurement: {"system", "workload", "ops", "seconds"}.
"""

import os
import sys
import tempfile
import time

from bench_data import emitter, value
from nanasqlite import NanaSQLite

emit = emitter("python v2")


def main():
    n, reps = int(sys.argv[1]), int(sys.argv[2])
    keys = [f"key_{i}" for i in range(n)]
    values = [value(i) for i in range(n)]
    with tempfile.TemporaryDirectory() as directory:
        for rep in range(reps):
            db = NanaSQLite(os.path.join(directory, f"v2_{rep}.db"), v2_mode=True, flush_mode="immediate")
            start = time.perf_counter()
            for k, v in zip(keys, values):
                db[k] = v
            staged = time.perf_counter() - start
            db.flush(wait=True)
            emit("W1 set (staged)", n, staged)
            emit("W1 set + flush", n, time.perf_counter() - start)
            db.close()


if __name__ == "__main__":
    main()
