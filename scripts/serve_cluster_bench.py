#!/usr/bin/env python3
"""Throughput of an hb serve cluster: a redis-server on a loopback port, one API process and N workers (one thread
each) on a tiny random-weight XT model; JOBS jobs of one size submitted at once, timed from the first create to
the last completion. Prints one line per worker count.

  scripts/serve_cluster_bench.py [--hb build/hb] [--workers 1,2] [--jobs 40] [--size 128x128] [--frames 33]"""
import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))


def run(sc, workers, jobs, size, frames, tmp, model):
    folder = os.path.join(tmp, f"w{workers}")
    r = sc.Redis(os.path.join(folder, "redis"))
    res = os.path.join(folder, "results")
    api = sc.Node(r.url, "api", res, os.path.join(folder, "api.log"), args=["--queue", str(jobs + 10)])
    ws = [sc.Node(r.url, "worker", res, os.path.join(folder, f"w{k}.log"), model=model) for k in range(workers)]
    t0 = time.time()
    ids = [api.create({"prompt": f"bench {i}", "size": size, "num_frames": frames, "seed": i})[2]["id"] for i in range(jobs)]
    while int(r.cmd("HGET", "hb:stats", "completed") or 0) < jobs and time.time() - t0 < 3600:
        time.sleep(0.05)
    secs = time.time() - t0
    done = int(r.cmd("HGET", "hb:stats", "completed") or 0)
    for n in [api] + ws:
        n.stop()
    r.stop(15)
    print(f"{workers} worker(s), 1 thread each: {done}/{len(ids)} jobs {size} x {frames} frames in {secs:.1f} s = "
          f"{done / secs:.2f} jobs/s", flush=True)
    return done / secs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hb", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "hb"))
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--jobs", type=int, default=40)
    ap.add_argument("--size", default="128x128")
    ap.add_argument("--frames", type=int, default=33)
    a = ap.parse_args()
    os.environ["HB_BIN"] = os.path.abspath(a.hb)
    import serve_client as sc
    sc.free_redis_or_skip()
    tmp = sc.tmpdir()
    model = sc.mkmodel(os.path.join(tmp, "xt"), "hummingbird-xt")
    rates = [run(sc, int(w), a.jobs, a.size, a.frames, tmp, model) for w in a.workers.split(",")]
    if len(rates) == 2:
        print(f"speed-up {rates[1] / rates[0]:.2f}x")
    shutil.rmtree(tmp, ignore_errors=True)


main()
