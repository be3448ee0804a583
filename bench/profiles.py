"""Where a profiled process spent its time: reads the collapsed stacks py-spy wrote during
``python -m bench --profile DIR`` and prints, per process, the functions with the most samples
on top of the stack (self) and anywhere in it (inclusive), leaving out samples of threads that
wait for work, then the CPU seconds each thread used.

    python -m bench.profiles DIR [--top 15]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_WAITING = {
    ("_connection_worker_thread", "aiosqlite/core.py", "59"),
    ("_worker", "concurrent/futures/thread.py", "81"),
}
"""Frames (function, file, line) where a thread waits for work; samples ending there are not work."""
_WAITING_FUNCTIONS = ("Condition.wait", "Event.wait", "Thread._wait_for_tstate_lock", "select", "sleep", "epoll_wait")
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _short(frame: str) -> str:
    """``function (package/module.py)`` without line numbers and site-packages prefixes."""
    match = _FRAME.match(frame)
    if not match:
        return frame
    file = match.group("file")
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{match.group('function')} ({file})"


def _waiting(frame: str) -> bool:
    match = _FRAME.match(frame)
    if not match:
        return False
    function, file, line = match.group("function"), match.group("file"), match.group("line")
    if function in _WAITING_FUNCTIONS:
        return True
    return any(function == f and file.endswith(suffix) and line == n for f, suffix, n in _WAITING)


def summarize(path: Path, top: int) -> str:
    """The summary of one collapsed-stack file."""
    threads: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if _waiting(frames[-1]):
            continue
        total += count
        threads[frames[0]] += count
        named = [_short(frame) for frame in frames[1:]] or [frames[0]]
        own[named[-1]] += count
        for name in set(named):
            inclusive[name] += count
    if not total:
        return f"{path.name}: no samples"
    lines = [f"{path.name}: {total} samples of work (waits left out)"]
    lines.append("  threads: " + ", ".join(f"{name} {count / total:.0%}" for name, count in threads.most_common(4)))
    lines.append("  self (Runner.run: the event loop in C, waiting for or doing socket I/O):")
    lines.extend(f"    {count / total:6.1%}  {name}" for name, count in own.most_common(top))
    lines.append("  inclusive:")
    lines.extend(f"    {count / total:6.1%}  {name}" for name, count in inclusive.most_common(top))
    return "\n".join(lines)


def _named_threads(listing: str, stacks: str) -> str:
    """The per-thread CPU listing with the Python names py-spy saw (``part-writer_0``, …)."""
    names = dict(re.findall(r"^thread \((\d+)\): ([^;]+);", stacks, re.MULTILINE))
    return re.sub(r"\((\d+)\)$", lambda m: f"({m.group(1)}: {names[m.group(1)]})" if m.group(1) in names else m.group(0),
                  listing, flags=re.MULTILINE)


def main() -> None:
    """Print the summary of every profile under the folder."""
    parser = argparse.ArgumentParser(prog="python -m bench.profiles", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    for path in sorted(args.folder.rglob("*.folded")):
        print(summarize(path, args.top))
        threads = path.with_suffix(".threads")
        if threads.exists():
            print("  " + "\n  ".join(_named_threads(threads.read_text(), path.read_text()).splitlines()[:8]))
        print()


if __name__ == "__main__":
    main()
