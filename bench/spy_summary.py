"""Where a py-spy speedscope file (`python -m bench.e2e --py-spy FILE`) spends its samples.

Samples are 10 ms of one thread on CPU; threads whose name contains FILTER (default: all) are added
up, then the functions with the most samples of their own and the most under them are listed.

    .venv/bin/python -m bench.spy_summary FILE [--thread FILTER] [--top 40]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path


def _where(frame: dict[str, str]) -> str:
    file = frame.get("file", "").split("site-packages/")[-1].split("/lib/python3")[-1]
    return f"{frame['name']} {file}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path)
    parser.add_argument("--thread", default="", help="only threads whose name contains this")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    data = json.loads(args.file.read_text())
    frames = data["shared"]["frames"]
    own: Counter[str] = Counter()
    under: Counter[str] = Counter()
    total = 0
    for profile in data["profiles"]:
        if args.thread not in profile["name"]:
            continue
        print(f"{len(profile['samples']):6d} samples  {profile['name']}")
        for stack in profile["samples"]:
            total += 1
            if stack:
                own[_where(frames[stack[-1]])] += 1
            under.update({_where(frames[f]) for f in stack})
    if not total:
        raise SystemExit(f"no thread's name contains {args.thread!r}")
    for title, counts in (("own", own), ("own and below", under)):
        print(f"-- {title} ({total} samples)")
        for where, n in counts.most_common(args.top):
            print(f"{n:6d} {100 * n / total:5.1f}%  {where}")


if __name__ == "__main__":
    main()
