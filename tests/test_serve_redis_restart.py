"""hb serve as a cluster across a Redis restart: redis-server with AOF (appendfsync always) on a loopback port, two
workers and one API process. 120 tiny jobs from 4 concurrent clients; in the middle Redis is killed with kill -9
and started again on the same port and folder while clients keep submitting and polling. The API and the workers
reconnect with backoff; every accepted job must end completed exactly once with its file whole, and nothing may
be lost: every create answered 200 is in Redis after the restart. Skipped when redis-server is absent."""
import os
import shutil
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from serve_client import Node, Redis, check, done, failed, free_redis_or_skip, mkmodel, tmpdir, video_ok  # noqa: E402

free_redis_or_skip()
T0 = time.time()
TMP = tmpdir()
XT = mkmodel(os.path.join(TMP, "xt"), "hummingbird-xt")
RES = os.path.join(TMP, "results")
JOBS, CLIENTS = 120, 4
TINY = {"size": "64x64", "num_frames": 5}


def submit_all(api, ids, lock, restarted):
    def client(c):
        for i in range(c, JOBS, CLIENTS):
            if i >= JOBS // 2:
                restarted.wait(60)  # the second half goes in after the restart
            st, _, v = api.create(dict(TINY, prompt=f"job {i}", seed=i))
            check(st == 200 and v.get("status") == "queued", f"create {i}: {st} {v}")
            if st == 200:
                with lock:
                    ids.append(v["id"])
            time.sleep(0.01)
    ts = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for t in ts:
        t.start()
    return ts


def completed(r):
    return int(r.cmd("HGET", "hb:stats", "completed") or 0)


def wait_all(api, ids, timeout=60):
    t0, pending = time.time(), set(ids)
    while pending and time.time() - t0 < timeout:
        for vid in list(pending):
            st, _, v = api.json("GET", f"/v1/videos/{vid}")
            if st == 200 and v["status"] in ("completed", "failed"):
                check(v["status"] == "completed", f"{vid}: {v}")
                pending.discard(vid)
        time.sleep(0.2)
    return pending


def main():
    r = Redis(os.path.join(TMP, "redis"))
    api = Node(r.url, "api", RES, os.path.join(TMP, "api.log"), args=["--queue", "1000"])
    workers = [Node(r.url, "worker", RES, os.path.join(TMP, f"w{k}.log"), model=XT, args=["--lease", "2"]) for k in (1, 2)]
    try:
        run(r, api, workers)
    finally:
        for n in [api] + workers:
            check(n.stop() == 0, f"clean stop on SIGTERM (log {n.data})")
        r.stop(15)
    print(f"total {time.time() - T0:.1f} s")
    if not failed():
        shutil.rmtree(TMP, ignore_errors=True)
    done()


def run(r, api, workers):
    ids, lock, restarted = [], threading.Lock(), threading.Event()
    clients = submit_all(api, ids, lock, restarted)
    t = time.time()
    while completed(r) < 20 and time.time() - t < 30:
        time.sleep(0.02)
    before = completed(r)
    r.stop(9)  # kill -9 mid-run: jobs queued, one running on each worker
    t_down = time.time()
    # while Redis is away a read waits for it (the API retries with backoff), then answers
    probe = {}
    reader = threading.Thread(target=lambda: probe.update(r=api.json("GET", f"/v1/videos/{ids[0]}")))
    reader.start()
    time.sleep(1.0)
    r.start()
    restarted.set()
    reader.join()
    print(f"  Redis down {time.time() - t_down:.1f} s with {before} of the first {len(ids)} jobs completed", flush=True)
    check(probe.get("r", (0,))[0] == 200, f"a request made while Redis was down answered after it came back: {probe}")
    for c in clients:
        c.join()
    pending = wait_all(api, ids)
    check(len(ids) == JOBS and not pending, f"{len(ids)} accepted, {len(pending)} not finished: {list(pending)[:3]}")
    check(completed(r) == JOBS, f"completion records: {completed(r)} for {JOBS} jobs")
    check(r.cmd("ZCARD", "hb:done") == JOBS, f"finish log: {r.cmd('ZCARD', 'hb:done')}")
    check(r.cmd("XPENDING", "hb:q:xt", "workers")[0] == 0, f"pending: {r.cmd('XPENDING', 'hb:q:xt', 'workers')}")
    bad = [vid for k, vid in enumerate(ids) if not video_ok(os.path.join(RES, vid + ".mp4"), 64, 64, 5, probe=k % 10 == 0)]
    check(not bad, f"{len(bad)} files missing or not whole: {bad[:3]}")
    h = api.health()
    check(h.get("status") == "ok", f"health after the restart: {h}")


main()
