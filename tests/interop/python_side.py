"""Python NanaSQLite 1.6.2's half of the interop tests (driven by tests/interop_python.rs).

  python_side.py write DB DATASET.json [--no-orjson]
      writes every (key, value) of DATASET into table "data" and into the sub-table "sub",
      plus the special values Python can hold and JSON cannot (NaN, infinities, huge ints).
  python_side.py read DB OUT.json [--bulk-load] [--no-orjson]
      ...
  python_side.py set DB KEY VALUE_JSON
      stores one key, as another process writing the file would.
      reads tables "data" and "sub" (key by key, or all at once with bulk_load=True)
      and dumps {"data": {...}, "sub": {...}, "orjson": bool} to OUT.json.
"""

import json
import sys

if "--no-orjson" in sys.argv:
    sys.modules["orjson"] = None  # makes `import orjson` fail: the stdlib json path

from nanasqlite import NanaSQLite  # noqa: E402
from nanasqlite.compat import HAS_ORJSON  # noqa: E402


def nested_lists(depth):
    value = 1
    for _ in range(depth):
        value = [value]
    return value


def special_values():
    values = {"nan": float("nan"), "inf": float("inf"), "ninf": float("-inf"), "list_nan": [1.5, float("nan")]}
    if HAS_ORJSON:
        values["deep"] = nested_lists(250)  # orjson writes at most 254 levels
    else:
        values["huge_int"] = 10**30  # orjson refuses integers wider than 64 bits
        values["big_obj"] = {"huge": 2**70, "n": 1}
        values["deep"] = nested_lists(900)  # the stdlib json writes about as deep as Python recurses
    return values


def write(db_path, dataset_path):
    with open(dataset_path, encoding="utf-8") as f:
        dataset = json.load(f)
    db = NanaSQLite(db_path)
    for key, value in dataset.items():
        db[key] = value
    for key, value in special_values().items():
        db["special:" + key] = value
    sub = db.table("sub")
    sub.batch_update(dataset)
    db.close()


def read_table(db, bulk):
    if bulk:
        return db.to_dict()
    return {key: db[key] for key in db.keys()}


def read(db_path, out_path, bulk):
    db = NanaSQLite(db_path, bulk_load=bulk)
    sub = db.table("sub")
    if bulk:
        sub.load_all()
    result = {"data": read_table(db, bulk), "sub": read_table(sub, bulk), "orjson": HAS_ORJSON}
    db.close()
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False)


def main(argv):
    command, db_path, path = argv[1:4]
    if command == "set":
        db = NanaSQLite(db_path)
        db[path] = json.loads(argv[4])
        db.close()
    elif command == "write":
        write(db_path, path)
    elif command == "read":
        read(db_path, path, "--bulk-load" in argv)
    else:
        raise SystemExit("unknown command " + command)


if __name__ == "__main__":
    main(sys.argv)
