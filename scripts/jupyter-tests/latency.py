"""Measure the TileLab kernel's latency with jupyter_client, as a notebook server would see it.

  start -> ready    KernelManager.start_kernel() through BlockingKernelClient.wait_for_ready()
                    (a fresh process each time; includes jupyter_client's own 0.2 s IOPub flush)
  execute -> reply  kc.execute(code) until its execute_reply is read from the shell socket

Prints the median, 10th and 90th percentiles. Run with Debian's python:
  JUPYTER_PATH=... /usr/bin/python3 latency.py [--kernel tilelab] [--starts 300] [--executes 1000]
"""

import argparse
import statistics
import sys
import time

from jupyter_client.manager import KernelManager


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def report(name, xs, unit, scale):
    print(
        f"{name}: median {statistics.median(xs) * scale:.3f} {unit}  "
        f"p10 {pct(xs, 10) * scale:.3f}  p90 {pct(xs, 90) * scale:.3f}  (n={len(xs)})",
        flush=True,
    )


def start_ready(kernel, n):
    times = []
    for _ in range(n):
        km = KernelManager(kernel_name=kernel)
        t0 = time.perf_counter()
        km.start_kernel()
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=30)
        times.append(time.perf_counter() - t0)
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return times


def execute_reply(kernel, n, code):
    km = KernelManager(kernel_name=kernel)
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=30)
    times = []
    try:
        for i in range(n + 20):
            t0 = time.perf_counter()
            msg_id = kc.execute(code)
            while True:
                reply = kc.get_shell_msg(timeout=10)
                if reply["parent_header"].get("msg_id") == msg_id:
                    break
            dt = time.perf_counter() - t0
            if reply["content"]["status"] != "ok":
                sys.exit(f"execute failed: {reply['content']}")
            if i >= 20:  # warm-up
                times.append(dt)
            # Drain IOPub so it cannot back up (the kernel never waits for it, but a client would read it).
            while True:
                try:
                    kc.get_iopub_msg(timeout=0)
                except Exception:
                    break
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kernel", default="tilelab")
    ap.add_argument("--starts", type=int, default=300)
    ap.add_argument("--executes", type=int, default=1000)
    ap.add_argument("--code", default="get threads")
    a = ap.parse_args()
    if a.executes:
        report(f"{a.kernel} execute -> reply", execute_reply(a.kernel, a.executes, a.code), "ms", 1e3)
    if a.starts:
        report(f"{a.kernel} start -> ready", start_ready(a.kernel, a.starts), "s", 1)


if __name__ == "__main__":
    main()
