"""hb serve under load: 1000 mixed good and bad requests from 8 concurrent clients (Python http.client) in four
rounds of 250. Every good job must complete, every bad request must get its own 4xx with an error object, and
the server's resident memory must stay flat: measured after each round (all its jobs finished) and compared
with the first round; the numbers are printed."""
import json
import os
import shutil
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from serve_client import Server, check, done, mkmodel, multipart, png, tmpdir  # noqa: E402

CLIENTS, ROUNDS, PER_ROUND = 8, 4, 250
GROWTH_LIMIT_KIB = 24 * 1024  # RSS growth allowed after the first round (allocator noise, SQLite page cache)

TINY_PNG = png(40, 24, 5)


def make_request(i, known):
    """Request i of the mix: (method, path, body, headers, expected status, expected error param or None)."""
    k = i % 20
    if k in (0, 10):  # good: a tiny T2V job (10 %)
        return "POST", "/v1/videos", {"prompt": f"load {i}", "size": "64x64", "num_frames": 5, "seed": i}, None, 200, None
    if k == 5:  # good: a tiny I2V job by multipart (5 %)
        body, ct = multipart({"prompt": f"load {i}", "size": "64x64", "num_frames": "5", "seed": str(i)},
                             {"input_reference": ("a.png", TINY_PNG, "image/png")})
        return "POST", "/v1/videos", body, {"Content-Type": ct}, 200, None
    bad = [
        ("POST", "/v1/videos", b'{"prompt": ', {"Content-Type": "application/json"}, 400, None),
        ("POST", "/v1/videos", {"prompt": "x", "size": "65x64"}, None, 400, "size"),
        ("POST", "/v1/videos", {"prompt": "x", "model": "sora-2"}, None, 400, "model"),
        ("POST", "/v1/videos", {"prompt": 3}, None, 400, "prompt"),
        ("POST", "/v1/videos", {"prompt": "x", "seed": "7"}, None, 400, "seed"),
        ("POST", "/v1/videos", {"prompt": "x", "num_frames": 8}, None, 400, "num_frames"),
        ("POST", "/v1/videos", {"size": "64x64"}, None, 400, "prompt"),
        ("POST", "/v1/videos", b"x" * (1 << 20 | 7), {"Content-Type": "application/json"}, 413, None),
        ("POST", "/v1/videos", b"prompt=x", {"Content-Type": "text/plain"}, 415, None),
        ("GET", "/v1/videos/video_" + "0" * 32, None, None, 404, "id"),
        ("GET", "/v1/videos?limit=1000", None, None, 400, "limit"),
        ("POST", "/v1/videos/video_" + "1" * 32 + "/remix", {"prompt": "x"}, None, 501, None),
    ]
    body, ct = multipart({"prompt": "x", "size": "64x64"}, {"input_reference": ("a.png", b"\x89PNG broken", "image/png")})
    bad.append(("POST", "/v1/videos", body, {"Content-Type": ct}, 400, "input_reference"))
    if k in (1, 3, 7, 9, 11, 13, 15, 17, 19, 2, 4):  # bad (55 %)
        return bad[(i // 20 + k) % len(bad)]
    # reads (30 %): a known video, a page of the list, health, models
    reads = [("GET", "/health", None, None, 200, None), ("GET", "/v1/models", None, None, 200, None),
             ("GET", "/v1/videos?limit=5&order=desc", None, None, 200, None)]
    if known:
        reads.append(("GET", f"/v1/videos/{known[i % len(known)]}", None, None, 200, None))
    return reads[(i // 20 + k) % len(reads)]


def run_round(s, base, known, results, lock):
    def client(c):
        for i in range(base + c, base + PER_ROUND, CLIENTS):
            method, path, body, headers, want, param = make_request(i, list(known))
            try:
                st, _, data = s.request(method, path, body, headers)
            except OSError as e:
                st, data = -1, str(e).encode()
            with lock:
                results.append((i, method, path, st, want, param, data))
                if want == 200 and method == "POST" and st == 200:
                    known.append(json.loads(data)["id"])
    ts = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def wait_all(s, ids, timeout=300):
    t0 = time.time()
    pending = set(ids)
    while pending and time.time() - t0 < timeout:
        for vid in list(pending):
            st, _, v = s.json("GET", f"/v1/videos/{vid}")
            if st == 200 and v["status"] in ("completed", "failed"):
                check(v["status"] == "completed", f"{vid}: {v['status']} {v.get('error')}")
                pending.discard(vid)
        time.sleep(0.1)
    check(not pending, f"{len(pending)} jobs not finished")


def main():
    t0 = time.time()
    tmp = tmpdir()
    xt = mkmodel(os.path.join(tmp, "xt"), "hummingbird-xt")
    s = Server(xt, os.path.join(tmp, "data"), "--queue", "1000", "--max-upload-mb", "1")
    rss, known, results, lock = [], [], [], threading.Lock()
    try:
        for r in range(ROUNDS):
            n0 = len(known)
            tr = time.time()
            run_round(s, r * PER_ROUND, known, results, lock)
            wait_all(s, known[n0:])
            rss.append(s.rss_kib())
            print(f"round {r + 1}: {PER_ROUND} requests, {len(known) - n0} jobs, {time.time() - tr:.1f} s, "
                  f"server RSS {rss[-1] / 1024:.1f} MiB", flush=True)
        good = sum(1 for x in results if x[4] == 200 and x[1] == "POST")
        wrong = [x for x in results if x[3] != x[4]]
        for i, method, path, st, want, param, data in wrong[:10]:
            print(f"request {i} {method} {path}: {st}, expected {want}: {data[:200]}", file=sys.stderr)
        check(len(results) == ROUNDS * PER_ROUND and not wrong, f"{len(wrong)} of {len(results)} answers wrong")
        for i, method, path, st, want, param, data in results:
            if 400 <= want < 600 and st == want:
                e = json.loads(data).get("error", {})
                check(e.get("message") and e.get("type") and (param is None or e.get("param") == param),
                      f"request {i}: error object {e}")
        check(good == len(known) and good >= 100, f"{good} good jobs, {len(known)} accepted")
        growth = max(rss[1:]) - rss[0]
        print(f"load: {len(results)} requests ({good} jobs), RSS after each round (MiB): "
              f"{', '.join(f'{x / 1024:.1f}' for x in rss)}; growth after round 1: {growth / 1024:.1f} MiB")
        check(growth <= GROWTH_LIMIT_KIB, f"RSS grew by {growth / 1024:.1f} MiB")
        st, _, h = s.json("GET", "/health")
        check(st == 200 and h["queue"]["queued"] == 0, f"health after load {h}")
    finally:
        check(s.stop() == 0, "exit 0")
    print(f"test_serve_load: {time.time() - t0:.1f} s")
    shutil.rmtree(tmp, ignore_errors=True)
    done()


if __name__ == "__main__":
    main()
