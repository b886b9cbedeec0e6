#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (fuzz/seeds/<target>/) from the project's hostile tests:
every string literal of the SQL attack tests becomes a fragment in each clause; JSON values and
keys that tests found hard become codec inputs; token-shaped bytes seed the encrypted readers.
Run from the project's root: python3 fuzz/make_seeds.py"""
import hashlib
import json
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
SEEDS = ROOT / "fuzz" / "seeds"
LITERAL = re.compile(r'"((?:[^"\\\n]|\\.)*)"')


def literals(path):
    text = (ROOT / path).read_text(encoding="utf-8")
    for match in LITERAL.finditer(text):
        raw = match.group(1)
        try:
            yield raw.encode("latin-1", "backslashreplace").decode("unicode_escape").encode("latin-1").decode("utf-8")
        except (UnicodeDecodeError, UnicodeEncodeError):
            yield raw


def write(target, data):
    folder = SEEDS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)


def sql_fragments():
    sources = ["tests/hostile_sql.rs", "tests/sql_properties.rs", "nanasqlite-core/tests/sql_validation.rs"]
    fragments = {text for source in sources for text in literals(source) if 0 < len(text) < 400}
    for fragment in sorted(fragments):
        for clause in range(4):
            write("sql_fragment", bytes([clause]) + fragment.encode("utf-8"))


def codec_inputs():
    values = [
        '{"name": "User1", "age": 1, "tags": ["admin", "active"], "active": true}',
        "1.7976931348623157e308", "5e-324", "-0.0", "18446744073709551615", "-9223372036854775808",
        '"\\u0000 \\ud83d\\ude00 \\u2028"', "[" * 200 + "]" * 200, '{"a": {"b": {"c": [1, 2, {"d": null}]}}}',
        '"plain text"', "not json", "", '{"": ""}', '{"a": 1, "a": 2}',
    ]
    keys = ["k", "", "key with spaces", "é日本", "'; DROP TABLE data; --", "a\u0000b", "x" * 300]
    for key in keys:
        encoded = key.encode("utf-8")[:255]
        for value in values:
            write("value_codec", bytes([len(encoded)]) + encoded + value.encode("utf-8"))


def token_inputs():
    tokens = [
        b"gAAAAABhZ2VuZXJhdGVkLWJ5LXRoZS1zZWVkLXNjcmlwdA==",  # Fernet's version byte, base64
        bytes(12) + bytes(16),  # a nonce and an empty ciphertext's tag
        bytes(12) + b"x" * 40,
        b'{"plain": "json"}',
        b"",
        bytes(range(256)),
    ]
    for token in tokens:
        for selector in (0, 1, 2, 3, 0x80, 0x81, 0x82, 0x83):
            write("encrypted_tokens", bytes([selector]) + token)


if __name__ == "__main__":
    sql_fragments()
    codec_inputs()
    token_inputs()
    for target in sorted(SEEDS.iterdir()):
        print(target.name, len(list(target.iterdir())))
