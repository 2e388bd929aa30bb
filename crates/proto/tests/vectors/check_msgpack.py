#!/usr/bin/env python3
"""Independent check of the golden vectors with Python's `msgpack` (not our Rust codec).

Every `<type>.msgpack` must decode, as exactly one standard MessagePack value with nothing after
it, to the same value as its `<type>.json` twin: same keys, same values, same kinds of number.
That proves the bytes are plain MessagePack any language can read.

Usage: python3 check_msgpack.py [VECTOR_DIR]   (defaults to this file's folder)
Prints 'N passed, N failed' and exits non-zero on any failure.
"""
import json
import pathlib
import sys

try:
    import msgpack
except ImportError:
    sys.exit("python module msgpack is missing: run ./scripts/test.sh (it creates target/py "
             "with msgpack), or: python3 -m pip install msgpack")


def same(a, b, path="$"):
    """Strict equality: bool is not int, int is not float, map keys and list lengths agree."""
    if type(a) is not type(b):
        return f"{path}: {type(a).__name__} {a!r} vs {type(b).__name__} {b!r}"
    if isinstance(a, dict):
        if set(a) != set(b):
            return f"{path}: keys {sorted(a)} vs {sorted(b)}"
        for k in a:
            err = same(a[k], b[k], f"{path}.{k}")
            if err:
                return err
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            err = same(x, y, f"{path}[{i}]")
            if err:
                return err
        return None
    return None if a == b else f"{path}: {a!r} vs {b!r}"


def main():
    folder = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parent)
    packed = sorted(folder.glob("*.msgpack"))
    passed = failed = 0
    if not packed:
        print(f"no .msgpack vectors in {folder}")
        failed += 1
    for mp in packed:
        twin = mp.with_suffix(".json")
        try:
            value = msgpack.unpackb(mp.read_bytes(), raw=False, strict_map_key=True)
            expected = json.loads(twin.read_text(encoding="utf-8"))
            err = same(value, expected)
            if not isinstance(value, dict) or not isinstance(value.get("type"), str):
                err = err or "not a map with a string `type`"
            elif value["type"] != mp.stem:
                err = err or f"`type` is {value['type']!r}, file is {mp.stem!r}"
        except Exception as e:  # noqa: BLE001 - any failure is a failed vector
            err = f"{type(e).__name__}: {e}"
        if err:
            failed += 1
            print(f"FAIL {mp.name}: {err}")
        else:
            passed += 1
    for js in sorted(folder.glob("*.json")):
        if not js.with_suffix(".msgpack").exists():
            failed += 1
            print(f"FAIL {js.name}: no .msgpack twin")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
