"""hb serve as a cluster (docs/serving.md, "Scaling out"): a real redis-server on a loopback port, two workers and
one API process sharing a results folder. 200 tiny jobs from 8 concurrent clients; one worker is killed with
kill -9 while it runs a job; every job must end completed exactly once (Redis' completion counter and finish
log hold exactly one entry per job, nothing left pending) with its file whole. Then, across processes: queue
positions and 429 from a second API process with a small --queue, cancel and delete of a job running on the
worker, Server-Sent Events through the API, /v1/cluster and /health. Skipped when redis-server is absent."""
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from serve_client import HB, Node, Redis, check, done, failed as _failed, free_redis_or_skip, mkmodel, sse, tmpdir, video_ok  # noqa: E402

free_redis_or_skip()
T0 = time.time()
TMP = tmpdir()
XT = mkmodel(os.path.join(TMP, "xt"), "hummingbird-xt")
XTX = mkmodel(os.path.join(TMP, "xtx"), "hummingbird-xtx")
RES = os.path.join(TMP, "results")
JOBS, CLIENTS = 200, 8
TINY = {"size": "64x64", "num_frames": 5}
SLOWISH = {"size": "128x128", "num_frames": 33}  # long enough that a kill lands inside it
SLOW = {"size": "256x256", "num_frames": 49, "sampler": "euler", "steps": 20}  # seconds of denoising: time to cancel


def log(name):
    return os.path.join(TMP, name + ".log")


def submit_all(api, ids, lock):
    def client(c):
        for i in range(c, JOBS, CLIENTS):
            fields = dict(SLOWISH if i % 10 == 3 else TINY, prompt=f"job {i}", seed=i)
            st, _, v = api.create(fields)
            check(st == 200 and v.get("status") == "queued", f"create {i}: {st} {v}")
            with lock:
                ids[v.get("id")] = fields
    ts = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for t in ts:
        t.start()
    return ts


def kill_mid_job(worker, ids, timeout=40):
    """kill -9 the worker while it runs one of the slower jobs; the id it was running."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        running = worker.health().get("queue", {}).get("running_here")
        if running and ids.get(running) is not None and ids[running]["size"] == SLOWISH["size"]:
            worker.proc.send_signal(signal.SIGKILL)
            worker.proc.wait()
            return running
        time.sleep(0.01)
    return None


def wait_all(api, ids, timeout=60):
    t0, pending, final = time.time(), set(ids), {}
    while pending and time.time() - t0 < timeout:
        for vid in list(pending):
            st, _, v = api.json("GET", f"/v1/videos/{vid}")
            if st == 200 and v["status"] in ("completed", "failed"):
                final[vid] = v
                pending.discard(vid)
        time.sleep(0.2)
    return final


def test_kill_worker(r, api, w1, w2):
    ids, lock = {}, threading.Lock()
    t = time.time()
    clients = submit_all(api, ids, lock)
    w1_name, w2_name = w1.health().get("worker"), w2.health().get("worker")
    killed = kill_mid_job(w1, ids)
    for c in clients:
        c.join()
    check(killed is not None, "worker 1 was killed while running a job")
    final = wait_all(api, ids)
    secs = time.time() - t
    check(len(ids) == JOBS and len(final) == JOBS, f"{len(final)} of {len(ids)} jobs finished")
    bad = [v for v in final.values() if v["status"] != "completed" or v["progress"] != 100]
    check(not bad, f"not completed: {bad[:2]}")
    # every file whole; ffprobe decodes every 10th and the killed worker's job
    files_bad = [vid for k, (vid, f) in enumerate(ids.items())
                 if not video_ok(os.path.join(RES, vid + ".mp4"), *map(int, f["size"].split("x")), f["num_frames"],
                                 probe=k % 10 == 0 or vid == killed)]
    check(not files_bad, f"{len(files_bad)} files missing or not whole: {files_bad[:3]}")
    # exactly once: one completion record per job, nothing left unacknowledged
    check(int(r.cmd("HGET", "hb:stats", "completed")) == JOBS, f"completion records: {r.cmd('HGET', 'hb:stats', 'completed')}")
    check(r.cmd("ZCARD", "hb:done") == JOBS, f"finish log: {r.cmd('ZCARD', 'hb:done')}")
    check(r.cmd("XPENDING", "hb:q:xt", "workers")[0] == 0, f"pending entries: {r.cmd('XPENDING', 'hb:q:xt', 'workers')}")
    check(r.cmd("XLEN", "hb:q:xt") == 0, "every stream entry acknowledged and removed")
    check(int(r.cmd("HGET", f"hb:job:{killed}", "attempts") or 0) >= 2, f"the killed worker's job {killed} ran again")
    workers = {r.cmd("HGET", f"hb:job:{vid}", "worker") for vid in ids}
    # worker 1 ran the killed job first (it was running it when killed); worker 2 completed it
    check(w1_name != w2_name and workers <= {w1_name, w2_name} and r.cmd("HGET", f"hb:job:{killed}", "worker") == w2_name,
          f"workers {workers}, killed job's {r.cmd('HGET', f'hb:job:{killed}', 'worker')}, w1 {w1_name}, w2 {w2_name}")
    print(f"  200 jobs, 2 workers (one killed mid-job): {secs:.1f} s, {JOBS / secs:.1f} jobs/s; killed job {killed}", flush=True)


def wait_status(api, vid, pred, timeout=30):
    t0 = time.time()
    while time.time() - t0 < timeout:
        st, _, v = api.json("GET", f"/v1/videos/{vid}")
        if st != 200 or pred(v):
            return st, v
        time.sleep(0.05)
    return 0, None


def test_across_processes(r, api, api2, w2):
    st, _, b = w2.json("GET", "/v1/videos")
    check(st == 404, f"a worker answers no video requests: {st} {b}")
    # a slow job occupies the one worker left; tiny ones queue behind it
    st, _, slow = api.create(dict(SLOW, prompt="slow"))
    st, v = wait_status(api, slow["id"], lambda v: v["status"] == "in_progress" and v["progress"] >= 10)
    check(st == 200 and v["status"] == "in_progress", f"slow job runs: {v}")
    queued = [api.create(dict(TINY, prompt=f"q{i}"))[2]["id"] for i in range(4)]
    pos = [api2.json("GET", f"/v1/videos/{vid}")[2]["queue_position"] for vid in queued]
    check(pos == [0, 1, 2, 3], f"queue positions seen by another API process: {pos}")
    # a job whose workers died SRV_MAX_ATTEMPTS (3) times (as if it crashed them) fails instead of running again
    poison = api.create(dict(TINY, prompt="poison"))[2]["id"]
    r.cmd("HSET", f"hb:job:{poison}", "attempts", 3)
    st, h, b = api2.create(dict(TINY, prompt="one too many"))
    check(st == 429 and h.get("retry-after", "").isdigit() and b["error"]["code"] == "queue_full", f"429 across the cluster: {st} {h} {b}")
    # a queued job deleted through one API process is never run; an SSE stream through it follows another
    st, _, b = api2.json("DELETE", f"/v1/videos/{queued[3]}")
    check(st == 200 and b["deleted"] is True, f"delete queued: {st} {b}")
    check(api.json("GET", f"/v1/videos/{queued[3]}")[0] == 404, "the deleted job is gone for every API process")
    stream = {}
    follower = threading.Thread(target=lambda: stream.update(r=sse(api2, queued[2], timeout=60)))
    follower.start()
    time.sleep(0.3)
    # cancel reaches the worker running the job, through the other API process
    t = time.time()
    st, _, v = api2.json("POST", f"/v1/videos/{slow['id']}/cancel")
    check(st == 200 and v["status"] == "in_progress", f"cancel accepted: {st} {v}")
    st, v = wait_status(api, slow["id"], lambda v: v["status"] != "in_progress")
    check(v and v["status"] == "failed" and v["error"]["code"] == "cancelled", f"cancelled on the worker: {v}")
    print(f"  cancel reached the worker in {time.time() - t:.2f} s", flush=True)
    for vid in queued[:3]:
        st, v = wait_status(api, vid, lambda v: v["status"] == "completed")
        check(v and v["status"] == "completed", f"queued job ran: {v}")
    st, v = wait_status(api, poison, lambda v: v["status"] != "queued")
    check(v and v["status"] == "failed" and v["error"]["code"] == "worker_lost", f"attempts exhausted: {v}")
    follower.join()
    st, events = stream.get("r", (0, []))
    kinds = [e for e, _, _ in events]
    check(st == 200 and kinds and kinds[-1] == "status" and events[-1][1]["status"] == "completed" and "progress" in kinds, f"SSE {kinds}")
    check(not os.path.exists(os.path.join(RES, queued[3] + ".mp4")), "the deleted job never ran")
    # delete of a running job: stopped on its worker, record and files gone
    st, _, s2 = api.create(dict(SLOW, prompt="slow 2"))
    wait_status(api, s2["id"], lambda v: v["status"] == "in_progress" and v["progress"] >= 10)
    st, _, b = api2.json("DELETE", f"/v1/videos/{s2['id']}")
    check(st == 200 and b["deleted"] is True, f"delete running: {st} {b}")
    st, _ = wait_status(api, s2["id"], lambda v: False, timeout=20)
    check(st == 404, f"the running job is removed once its worker stops it: {st}")
    check(not [f for f in os.listdir(RES) if f.startswith(s2["id"])], "no file of the deleted job remains")
    # the cluster summary: the killed worker is gone (its heartbeat expired), the live one listed
    st, _, c = api.json("GET", "/v1/cluster")
    check(st == 200 and c["workers_alive"] == 1 and c["models"] == ["xt"] and c["jobs"]["completed"] >= JOBS + 3, f"cluster: {c}")
    check(c["throughput"]["completed_last_hour"] >= JOBS and c["throughput"]["mean_job_seconds"] > 0, f"throughput: {c}")
    h = api.health()
    check(h.get("status") == "ok" and h.get("role") == "api", f"health {h}")


def test_bad_flags(r):
    """Bad cluster flags: one clear line naming the flag, non-zero exit, before anything starts."""
    cases = [(["--store", "redis://127.0.0.1:99999", "--role", "api"], "port"),
             (["--store", "rediss://127.0.0.1:6379", "--role", "api"], "TLS"),
             (["--store", "http://127.0.0.1", "--role", "api"], "redis://"),
             (["--store", "redis://:@127.0.0.1", "--role", "api"], "password"),
             (["--store", r.url, "--role", "boss"], "--role"),
             (["--store", r.url, "--role", "api", "-m", XT], "-m"),
             (["--store", r.url, "--role", "worker"], "-m"),
             (["--role", "api"], "--store"),
             (["--store", f"redis://:wrong@127.0.0.1:{r.port}", "--role", "api"], "redis")]
    for args, word in cases:
        p = subprocess.run([HB, "serve", "--port", "1"] + args, capture_output=True, text=True, timeout=30)
        check(p.returncode != 0 and word in p.stderr and "\n" in p.stderr, f"{args}: {p.returncode} {p.stderr!r}")


def test_models(r, api, w2):
    """A worker of a second model: its jobs go to it only (their own stream), XT jobs never; each model's rules
    are checked by the API process; SSE carries the XTX chunk events from the worker."""
    w3 = Node(r.url, "worker", RES, log("w3"), model=XTX, args=["--lease", "2"])
    st, _, m = api.json("GET", "/v1/models")
    check(st == 200 and sorted(d["id"] for d in m["data"]) == ["xt", "xtx"], f"models {m}")
    st, _, b = api.create(dict(TINY, prompt="which model?"))
    check(st == 400 and b["error"]["param"] == "model", f"two models, none named: {st} {b}")
    st, _, b = api.create({"prompt": "x", "model": "xt", "size": "64x48", "num_frames": 5})
    check(st == 400 and b["error"]["param"] == "size", f"the XT worker's rules (multiples of 32): {st} {b}")
    st, _, b = api.create({"prompt": "x", "model": "xtx", "mode": "xt", "size": "64x48", "num_frames": 5})
    check(st == 400 and b["error"]["param"] == "mode", f"the XTX worker's rules (no xt mode): {st} {b}")
    st, _, ar = api.create({"prompt": "a cat", "model": "xtx", "mode": "ar", "size": "64x48", "num_frames": 45, "seed": 2})
    xts = [api.create(dict(TINY, model="xt", prompt=f"xt {i}"))[2]["id"] for i in range(3)]
    check(st == 200 and ar["model"] == "xtx", f"xtx create {st} {ar}")
    st, events = sse(api, ar["id"], timeout=60)
    chunks = [d for e, d, _ in events if e == "chunk"]
    check(events and events[-1][1]["status"] == "completed" and sum(c["frames"] for c in chunks) == 45, f"XTX SSE {[(e, d) for e, d, _ in events if e != 'progress']}")
    check(video_ok(os.path.join(RES, ar["id"] + ".mp4"), 64, 48, 45), "the XTX file")
    st, late = sse(api, ar["id"], timeout=30)  # opened after the end: the final Video object and every chunk
    check(late and late[0][1]["status"] == "completed" and sum(d["frames"] for e, d, _ in late if e == "chunk") == 45,
          f"late XTX SSE {[e for e, _, _ in late]}")
    for vid in xts:
        wait_status(api, vid, lambda v: v["status"] == "completed")
    w3name = w3.health()["worker"]
    check(r.cmd("HGET", f"hb:job:{ar['id']}", "worker") == w3name, "the XTX job ran on the XTX worker")
    check(all(r.cmd("HGET", f"hb:job:{v}", "worker") == w2.health()["worker"] for v in xts), "XT jobs ran on the XT worker")
    # SIGTERM while a job runs: it stops at its next step and goes back to the queue for any worker
    st, _, ar2 = api.create({"prompt": "a long cat", "model": "xtx", "mode": "ar", "size": "64x48", "num_frames": 45})
    wait_status(api, ar2["id"], lambda v: v["status"] == "in_progress" and v["progress"] > 0)
    check(w3.stop() == 0, "clean stop")
    st, _, v = api.json("GET", f"/v1/videos/{ar2['id']}")
    check(st == 200 and v["status"] == "queued" and v["queue_position"] == 0, f"requeued on shutdown: {v}")
    check(r.cmd("XLEN", "hb:q:xtx") == 1 and r.cmd("XPENDING", "hb:q:xtx", "workers")[0] == 0, "one fresh entry, none pending")
    st, _, c = api.json("GET", "/v1/cluster")
    check(st == 200 and [w["name"] for w in c["workers"]] == [w2.health()["worker"]], f"a stopped worker leaves at once: {c}")


def main():
    r = Redis(os.path.join(TMP, "redis"))
    test_bad_flags(r)
    api = Node(r.url, "api", RES, log("api"), args=["--queue", "1000"])
    w1 = Node(r.url, "worker", RES, log("w1"), model=XT, args=["--lease", "2"])
    w2 = Node(r.url, "worker", RES, log("w2"), model=XT, args=["--lease", "2"])
    api2 = Node(r.url, "api", RES, log("api2"), args=["--queue", "3"])
    print(f"  started: {time.time() - T0:.1f} s", flush=True)
    try:
        test_kill_worker(r, api, w1, w2)
        print(f"  checked: {time.time() - T0:.1f} s", flush=True)
        test_across_processes(r, api, api2, w2)
        test_models(r, api, w2)
    finally:
        for n in (api, api2, w2):
            check(n.stop() == 0, f"clean stop on SIGTERM (log {n.data})")
        w1.stop(9)  # killed in the test; only a failure before that leaves it running
        r.stop()
    print(f"total {time.time() - T0:.1f} s")
    if not _failed():
        shutil.rmtree(TMP, ignore_errors=True)
    done()


main()
