"""Python NanaSQLite 1.6.2's half of the encryption interop tests (driven by tests/encryption.rs).

A KEY is hex for "aes-gcm" and "chacha20" (the raw key bytes) and the base64 text for "fernet".

  python_encrypted.py write DB MODE KEY DATASET.json
      writes every (key, value) of DATASET into table "data" and into the child table "sub".
  python_encrypted.py read DB MODE KEY OUT.json [--allow-legacy]
      reads every key of "data" and "sub"; dumps {"data": {key: value}, "sub": {...}} to OUT.json,
      where a key that fails to read maps to {"error": "<the exception's type and message>"}.
  python_encrypted.py plain DB KEY VALUE_JSON
      stores one key without encryption (a legacy plaintext row).
"""

import json
import sys

from nanasqlite import NanaSQLite


def key_bytes(mode, key):
    return key if mode == "fernet" else bytes.fromhex(key)


def open_store(db_path, mode, key, **options):
    return NanaSQLite(db_path, encryption_key=key_bytes(mode, key), encryption_mode=mode, **options)


def write(db_path, mode, key, dataset_path):
    with open(dataset_path, encoding="utf-8") as f:
        dataset = json.load(f)
    db = open_store(db_path, mode, key)
    for name, value in dataset.items():
        db[name] = value
    db.table("sub").batch_update(dataset)
    db.close()


def read_all(table):
    result = {}
    for name in table.keys():
        try:
            result[name] = table[name]
        except Exception as error:  # noqa: BLE001 - the test compares the failure's text
            result[name] = {"error": f"{type(error).__name__}: {error}"}
    return result


def read(db_path, mode, key, out_path, allow_legacy):
    db = open_store(db_path, mode, key, allow_legacy_plaintext=allow_legacy)
    result = {"data": read_all(db), "sub": read_all(db.table("sub"))}
    db.close()
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False)


def main(argv):
    command = argv[1]
    if command == "write":
        write(*argv[2:6])
    elif command == "read":
        read(*argv[2:6], allow_legacy="--allow-legacy" in argv)
    elif command == "plain":
        db = NanaSQLite(argv[2])
        db[argv[3]] = json.loads(argv[4])
        db.close()
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv)
