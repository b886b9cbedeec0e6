"""Python NanaSQLite 1.6.2's AsyncNanaSQLite beside benches/async_store.rs: W1-W3, same data;
and its sync `db[k]` hit on the same file ("W3 hot get (dict)"), the figure the async store's
no-copy hit is held to, measured in the same run.

  python_async.py N REPS
Prints one JSON line per measurement: {"system", "workload", "ops", "seconds"}.
"""

import asyncio
import os
import sys
import tempfile
import time

from bench_data import emitter, value
from nanasqlite import AsyncNanaSQLite, NanaSQLite

emit = emitter("async")
emit_sync = emitter("sync")


async def timed(work):
    start = time.perf_counter()
    await work()
    return time.perf_counter() - start


async def one_round(n, directory):
    keys = [f"key_{i}" for i in range(n)]
    values = [value(i) for i in range(n)]
    path = os.path.join(directory, f"py_async_{time.perf_counter_ns()}.db")
    async with AsyncNanaSQLite(path) as db:

        async def w1():
            for k, v in zip(keys, values):
                await db.aset(k, v)

        emit("W1 set", n, await timed(w1))
    async with AsyncNanaSQLite(path) as db:

        async def gets():
            for k in keys:
                assert await db.aget(k) is not None

        emit("W2 cold get", n, await timed(gets))
        emit("W3 hot get", n, await timed(gets))
    db = NanaSQLite(path)

    def dict_gets():
        for k in keys:
            db[k]

    dict_gets()  # the cold pass, as W2 is for the async store
    start = time.perf_counter()
    dict_gets()
    emit_sync("W3 hot get (dict)", n, time.perf_counter() - start)
    db.close()


def main():
    n, reps = int(sys.argv[1]), int(sys.argv[2])
    with tempfile.TemporaryDirectory() as directory:
        for _ in range(reps):
            asyncio.run(one_round(n, directory))


if __name__ == "__main__":
    main()
