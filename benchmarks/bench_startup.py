"""Start-up time of the command line: ``chainrule --help`` against Python and argparse alone.

    python benchmarks/bench_startup.py               # 30 rounds
    python benchmarks/bench_startup.py --rounds 60

Each round runs every command once, in rotating order, as a fresh process (the console script
beside this Python, else ``python -m chainrule``), and times it from start to exit. Python's own
start-up differs from machine to machine (and with the load), so the baselines are printed
beside it: ``python -c pass`` and ``python -c "import argparse"``, which no command line built
on argparse can beat. Bytecode is written on the first run (as an installed package has it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import argparse'": [sys.executable, "-c", "import argparse"],
}


def chainrule() -> list[str]:
    script = Path(sys.executable).parent / "chainrule"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "chainrule"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=30, help="runs of every command (default 30)")
    args = ap.parse_args()
    commands = dict(COMMANDS)
    for sub in (None, "train", "approx", "optimize"):
        name = "chainrule --help" if sub is None else f"chainrule {sub} --help"
        commands[name] = chainrule() + ([] if sub is None else [sub]) + ["--help"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for cmd in commands.values():  # writes the bytecode
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)
    times: dict[str, list[float]] = {k: [] for k in commands}
    names = list(commands)
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            subprocess.run(commands[name], env=env, stdout=subprocess.DEVNULL, check=True)
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["python -c 'import argparse'"])
    print(f"{args.rounds} rounds; load average {os.getloadavg()[0]:.2f}")
    print(f"{'command':<30} {'median s':>9} {'min s':>7} {'over argparse':>14}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<30} {med:9.3f} {min(ts):7.3f} {1e3 * (med - base):+11.1f} ms")


if __name__ == "__main__":
    main()
