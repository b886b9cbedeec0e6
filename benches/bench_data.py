"""What the Python sides of the benchmarks share: the workload's value and the sample line.

Each script imports it from its own folder (Python puts a script's folder first on its path).
"""

import json


def value(i):
    """The value stored under key `i` (BENCHMARKS.md)."""
    return {"name": f"User{i}", "age": i, "tags": ["admin", "active"], "active": True}


def emitter(system):
    """A function printing one measurement of `system` as the JSON line the Rust side reads."""

    def emit(workload, ops, seconds):
        print(json.dumps({"system": system, "workload": workload, "ops": ops, "seconds": seconds}))

    return emit
