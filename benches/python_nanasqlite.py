"""Python NanaSQLite 1.6.2's side of benches/sync_store.rs: W1-W4 and W7, same data, same rules.

  python_nanasqlite.py N REPS W7_DB
Prints one JSON line per measurement: {"system", "workload", "ops", "seconds"}.
"""

import os
import sys
import tempfile
import time

from bench_data import emitter, value
from nanasqlite import NanaSQLite

emit = emitter("sync")


def timed(work):
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def one_round(n, directory, big):
    keys = [f"key_{i}" for i in range(n)]
    values = [value(i) for i in range(n)]
    path = os.path.join(directory, f"py_{time.perf_counter_ns()}.db")
    db = NanaSQLite(path)

    def w1():
        for k, v in zip(keys, values):
            db[k] = v

    emit("W1 set", n, timed(w1))
    db.close()
    db = NanaSQLite(path)

    def gets():
        for k in keys:
            db[k]

    emit("W2 cold get", n, timed(gets))
    emit("W3 hot get", n, timed(gets))
    db.close()
    batch_db = NanaSQLite(path + ".batch")
    data = dict(zip(keys, values))
    emit("W4 batch", n, timed(lambda: batch_db.batch_update(data)))
    batch_db.close()

    opened = []  # closing is not part of opening: keep the instance alive past the timer

    def open_get():
        db = NanaSQLite(big)
        db["key_7"]
        opened.append(db)

    emit("W7 open+get", 1, timed(open_get))
    emit("W7 bulk_load", 1, timed(lambda: opened.append(NanaSQLite(big, bulk_load=True))))
    for db in opened:
        db.close()


def main():
    n, reps, big = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    with tempfile.TemporaryDirectory() as directory:
        for _ in range(reps):
            one_round(n, directory, big)


if __name__ == "__main__":
    main()
