"""Extract the BIG-bench task files swarmrank evaluates on from the bigbench sdist.

Usage: extract_bigbench.py SDIST.tar.gz DEST

The bigbench package installs 1.8 GB and imports TensorFlow; swarmrank only reads a few
task.json files, so scripts/setup downloads the sdist once and keeps just those (~6 MB).
"""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

TASKS = ("truthful_qa", "strategyqa", "logical_deduction", "arithmetic")


def main(sdist: str, dest: str) -> int:
    target = Path(dest)
    partial = target.with_name(target.name + ".partial")
    count = 0
    with tarfile.open(sdist) as archive:
        for member in archive:
            parts = member.name.split("/")
            # bigbench-1.0.0/bigbench/benchmark_tasks/<task>/.../*.json
            if (len(parts) >= 5 and parts[1:3] == ["bigbench", "benchmark_tasks"] and parts[3] in TASKS
                    and member.isfile() and member.name.endswith(".json")):
                member.name = "/".join(parts[2:])
                archive.extract(member, partial, filter="data")
                count += 1
    if count == 0:
        print(f"extract_bigbench: no task files found in {sdist}", file=sys.stderr)
        return 1
    (partial / ".complete").write_text(f"{count} files\n")
    if target.exists():
        import shutil

        shutil.rmtree(target)
    partial.rename(target)
    print(f"extract_bigbench: {count} task files in {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
