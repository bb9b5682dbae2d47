"""hb serve end to end: the real server on a loopback port with tiny random-weight models, driven by Python's
http.client and by curl. T2V, I2V by multipart upload, XTX with SSE chunk events, cancel, delete, list
pagination, auth, 429, every bad-input class, kill -9 mid-job then restart with nothing lost, SIGTERM."""
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from serve_client import Server, check, done, mkmodel, multipart, png, sse, tmpdir  # noqa: E402

T0 = time.time()
TMP = tmpdir()
XT = mkmodel(os.path.join(TMP, "xt"), "hummingbird-xt")
XTX = mkmodel(os.path.join(TMP, "xtx"), "hummingbird-xtx")
XTX5 = mkmodel(os.path.join(TMP, "xtx5"), "hummingbird-xtx-5b")
TINY = {"prompt": "a red kite over a beach", "size": "64x64", "num_frames": 5}
SLOW = {"prompt": "a slow one", "size": "256x256", "num_frames": 49}  # a few seconds: time to cancel or kill


def timed(fn):
    def run(*a):
        t = time.time()
        fn(*a)
        print(f"  {fn.__name__}: {time.time() - t:.1f} s", flush=True)
    return run


def error_of(body):
    return (body or {}).get("error") or {}


def wait_status(s, vid, status, timeout=60, headers=None):
    t0 = time.time()
    while time.time() - t0 < timeout:
        st, _, v = s.json("GET", f"/v1/videos/{vid}", headers=headers)
        if st == 200 and v["status"] == status:
            return v
        time.sleep(0.02)
    return None


def read_ffprobe_frames(path):
    if not shutil.which("ffprobe"):
        return None
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                          "stream=nb_read_frames,width,height", "-of", "csv=p=0", path], capture_output=True, text=True)
    return out.stdout.strip()


@timed
def test_t2v(s):
    st, h, v = s.create(dict(TINY, seed=7))
    check(st == 200 and v["object"] == "video" and v["status"] == "queued" and v["id"].startswith("video_"), f"create: {st} {v}")
    check(h.get("openai-poll-after-ms", "").isdigit(), "openai-poll-after-ms header")
    check(v["size"] == "64x64" and v["num_frames"] == 5 and v["seed"] == 7 and v["model"] == "xt", f"video object {v}")
    st, v = s.wait(v["id"])
    check(st == 200 and v["status"] == "completed" and v["progress"] == 100 and v["completed_at"] and v["expires_at"], f"{v}")
    check(v["expires_at"] - v["completed_at"] == 3600, "expires_at = completed_at + --keep")
    st, h, mp4 = s.request("GET", f"/v1/videos/{v['id']}/content")
    check(st == 200 and h.get("content-type") == "video/mp4" and mp4[4:8] == b"ftyp", f"content: {st} {h}")
    path = os.path.join(TMP, "t2v.mp4")
    open(path, "wb").write(mp4)
    probe = read_ffprobe_frames(path)
    check(probe is None or probe == "64,64,5", f"ffprobe {probe}")
    st, h, part = s.request("GET", f"/v1/videos/{v['id']}/content?variant=video", headers={"Range": "bytes=10-109"})
    check(st == 206 and part == mp4[10:110] and h.get("content-range", "").startswith("bytes 10-109/"), f"range: {st} {h}")
    st, h, jpg = s.request("GET", f"/v1/videos/{v['id']}/content?variant=thumbnail")
    check(st == 200 and jpg[:2] == b"\xff\xd8" and h.get("content-type") == "image/jpeg", f"thumbnail {st} {h}")
    st, _, b = s.json("GET", f"/v1/videos/{v['id']}/content?variant=spritesheet")
    check(st == 400 and error_of(b).get("param") == "variant", f"spritesheet: {st} {b}")
    # the same seed and settings give the same video
    st, _, v2 = s.create(dict(TINY, seed=7))
    st, v2 = s.wait(v2["id"])
    st, _, mp4b = s.request("GET", f"/v1/videos/{v2['id']}/content")
    check(mp4b == mp4, "same seed, same bytes")


@timed
def test_curl(s):
    out = subprocess.run(["curl", "-sS", "-X", "POST", f"http://127.0.0.1:{s.port}/v1/videos", "-H",
                          "Content-Type: application/json", "-d", '{"prompt": "curl cat", "size": "64x64", "seconds": "0.2"}'],
                         capture_output=True, text=True)
    import json
    v = json.loads(out.stdout)
    check(v.get("status") == "queued" and v.get("seconds") == "0.2" and v.get("num_frames") == 5, f"curl create {out.stdout}")
    s.wait(v["id"])
    path = os.path.join(TMP, "curl.mp4")
    r = subprocess.run(["curl", "-sS", "-f", "-o", path, f"http://127.0.0.1:{s.port}/v1/videos/{v['id']}/content"])
    check(r.returncode == 0 and open(path, "rb").read()[4:8] == b"ftyp", "curl download")
    # multipart by curl -F, as the official SDKs send it: numbers as text, the image as a file part
    img = os.path.join(TMP, "in.png")
    open(img, "wb").write(png(80, 48, 3))
    out = subprocess.run(["curl", "-sS", f"http://127.0.0.1:{s.port}/v1/videos", "-F", "prompt=a dog", "-F", "size=64x64",
                          "-F", "num_frames=5", "-F", "seed=11", "-F", f"input_reference=@{img};type=image/png"],
                         capture_output=True, text=True)
    v = json.loads(out.stdout)
    check(v.get("status") == "queued" and v.get("seed") == 11, f"curl -F: {out.stdout}")
    st, v = s.wait(v["id"])
    check(v["status"] == "completed", f"curl I2V {v}")


@timed
def test_i2v(s):
    body, ct = multipart({"prompt": "a boat", "size": "64x96", "num_frames": "9", "seed": "5", "fps": "12"},
                         {"input_reference": ("boat.png", png(90, 120, 9), "image/png")})
    st, _, v = s.create(body, {"Content-Type": ct})
    check(st == 200 and v["size"] == "64x96" and v["num_frames"] == 9 and v["fps"] == 12, f"i2v create {st} {v}")
    st, v = s.wait(v["id"])
    check(v["status"] == "completed", f"i2v {v}")
    st, _, mp4 = s.request("GET", f"/v1/videos/{v['id']}/content")
    path = os.path.join(TMP, "i2v.mp4")
    open(path, "wb").write(mp4)
    probe = read_ffprobe_frames(path)
    check(probe is None or probe == "64,96,9", f"i2v ffprobe {probe}")


@timed
def test_sizes(s):
    # OpenAI's standard sizes map to the native size of the same orientation; cancelled before they run
    for size, want in (("1280x720", "1280x704"), ("720x1280", "704x1280"), ("1792x1024", "1280x704"), ("1024x1792", "704x1280")):
        st, _, v = s.create({"prompt": "x", "size": size, "num_frames": 1})
        check(st == 200 and v["size"] == want, f"{size} -> {v.get('size')}")
        s.json("POST", f"/v1/videos/{v['id']}/cancel")
        s.wait(v["id"])
    st, _, v = s.create({"prompt": "x", "size": "1000x500", "num_frames": 1})
    check(st == 400 and "nearest valid size is 992x512" in error_of(v).get("message", "") and error_of(v).get("param") == "size",
          f"nearest size: {v}")
    st, _, v = s.create({"prompt": "x", "seconds": "4", "size": "64x64"})  # 4 s at 24 fps: 97 frames
    check(st == 200 and v["num_frames"] == 97 and v["seconds"] == "4", f"seconds -> frames {v}")
    s.json("DELETE", f"/v1/videos/{v['id']}")


@timed
def test_xtx_sse(s):
    st, _, v = s.create({"prompt": "a cat", "size": "64x48", "num_frames": 45, "mode": "ar", "seed": 2,
                         "prompts": [{"frame": 24, "prompt": "a dog"}]})
    check(st == 200 and v["mode"] == "ar", f"xtx create {st} {v}")
    st, events = sse(s, v["id"])
    kinds = [e for e, _, _ in events]
    chunks = [d for e, d, _ in events if e == "chunk"]
    check(st == 200 and kinds and kinds[0] == "status" and kinds[-1] == "status", f"events {kinds}")
    check(events[-1][1]["status"] == "completed", f"last status {events[-1][1]}")
    check(sum(c["frames"] for c in chunks) == 45 and [c["first_frame"] for c in chunks] == sorted(c["first_frame"] for c in chunks)
          and chunks[0]["first_frame"] == 0, f"chunks {chunks}")
    prog = [d["progress"] for e, d, _ in events if e == "progress"]
    check(prog and prog == sorted(prog) and prog[-1] == 99, f"progress {prog}")
    # chunks arrive while the video is made: the first chunk comes before the final status
    t_first = next(t for e, _, t in events if e == "chunk")
    check(t_first <= events[-1][2], "chunk before completion")
    # a stream opened after the end still gives the final Video object and every chunk
    st, late = sse(s, v["id"])
    late_chunks = [d for e, d, _ in late if e == "chunk"]
    check(st == 200 and late and late[0][1]["status"] == "completed" and sum(c["frames"] for c in late_chunks) == 45,
          f"late stream {[e for e, _, _ in late]}")
    st, _, mp4 = s.request("GET", f"/v1/videos/{v['id']}/content")
    path = os.path.join(TMP, "xtx.mp4")
    open(path, "wb").write(mp4)
    probe = read_ffprobe_frames(path)
    check(probe is None or probe == "64,48,45", f"xtx ffprobe {probe}")
    st, _, b = s.create({"prompt": "x", "mode": "xt"})
    check(st == 400 and error_of(b).get("param") == "mode", f"xt mode on xtx {b}")
    # a running XTX job stops at its next chunk; its partial file goes
    st, _, v = s.create({"prompt": "a long one", "size": "128x128", "num_frames": 241})
    check(wait_status(s, v["id"], "in_progress") is not None, "xtx job runs")
    t = time.time()
    s.json("POST", f"/v1/videos/{v['id']}/cancel")
    st, v = s.wait(v["id"])
    check(v["status"] == "failed" and v["error"]["code"] == "cancelled" and time.time() - t < 15, f"xtx cancel {v}")
    check(not any(f.startswith(v["id"]) for f in os.listdir(os.path.join(s.data, "videos")) if not f.endswith(".jpg")),
          "no partial xtx file")
    body, ct = multipart({"prompt": "x"}, {"input_reference": ("a.png", png(8, 8), "image/png")})
    st, _, b = s.create(body, {"Content-Type": ct})
    check(st == 400 and error_of(b).get("param") == "input_reference", f"image on xtx {b}")


@timed
def test_cancel_delete(s):
    st, _, a = s.create(SLOW)
    st, _, b = s.create(SLOW)
    check(wait_status(s, a["id"], "in_progress") is not None, "a runs")
    st, _, vb = s.json("GET", f"/v1/videos/{b['id']}")
    check(vb["status"] == "queued" and vb["queue_position"] == 1, f"queue position {vb}")
    # a queued job: failed/cancelled at once
    st, _, cb = s.json("POST", f"/v1/videos/{b['id']}/cancel")
    check(st == 200 and cb["status"] == "failed" and cb["error"]["code"] == "cancelled", f"cancel queued {cb}")
    # the running job stops at its next step
    t = time.time()
    st, _, ca = s.json("POST", f"/v1/videos/{a['id']}/cancel")
    st, va = s.wait(a["id"])
    check(va["status"] == "failed" and va["error"]["code"] == "cancelled" and time.time() - t < 15, f"cancel running {va}")
    st, _, x = s.json("POST", f"/v1/videos/{a['id']}/cancel")
    check(st == 409, f"cancel a finished job: {st}")
    st, _, x = s.json("GET", f"/v1/videos/{a['id']}/content")
    check(st == 409 and error_of(x).get("code") == "video_not_ready", f"content of a cancelled job {st} {x}")
    # delete: a finished job's files go, a running job stops and goes
    st, _, c = s.create(TINY)
    s.wait(c["id"])
    st, _, d = s.json("DELETE", f"/v1/videos/{c['id']}")
    check(st == 200 and d == {"id": c["id"], "object": "video.deleted", "deleted": True}, f"delete {d}")
    check(s.json("GET", f"/v1/videos/{c['id']}")[0] == 404, "deleted: 404")
    check(s.request("GET", f"/v1/videos/{c['id']}/content")[0] == 404, "deleted content: 404")
    check(not any(f.startswith(c["id"]) for f in os.listdir(os.path.join(s.data, "videos"))), "files removed")
    st, _, e = s.create(SLOW)
    wait_status(s, e["id"], "in_progress")
    st, _, d = s.json("DELETE", f"/v1/videos/{e['id']}")
    check(st == 200 and d["deleted"] is True, f"delete running {d}")
    t = time.time()
    while time.time() - t < 10 and s.json("GET", f"/v1/videos/{e['id']}")[0] != 404:
        time.sleep(0.05)
    check(s.json("GET", f"/v1/videos/{e['id']}")[0] == 404, "deleted running job gone")
    st, _, h = s.json("GET", "/health")
    check(h["queue"]["running"] is None, f"worker idle after delete {h}")


@timed
def test_list(s):
    ids = []
    for i in range(5):
        st, _, v = s.create(dict(TINY, seed=100 + i))
        ids.append(v["id"])
    got, after = [], ""
    while True:
        st, _, page = s.json("GET", f"/v1/videos?limit=2&order=asc" + (f"&after={after}" if after else ""))
        check(st == 200 and page["object"] == "list" and len(page["data"]) <= 2, f"page {st}")
        got += [v["id"] for v in page["data"]]
        if not page["has_more"]:
            break
        after = page["last_id"]
    check([i for i in got if i in ids] == ids, "asc pages give the creation order")
    st, _, page = s.json("GET", "/v1/videos?limit=3")
    check([v["id"] for v in page["data"]] == ids[::-1][:3] and page["has_more"] and page["first_id"] == ids[-1], "desc default")
    for q, param in (("limit=0", "limit"), ("limit=abc", "limit"), ("order=up", "order"), ("after=video_nope", "after"),
                     ("after=video_" + "0" * 32, "after")):
        st, _, b = s.json("GET", f"/v1/videos?{q}")
        check(st == 400 and error_of(b).get("param") == param, f"list ?{q}: {st} {b}")
    for i in ids:
        s.wait(i)


@timed
def test_bad_input(s):
    def bad(body, status, param, code=None, headers=None, raw=False):
        if raw:
            st, _, b = s.json("POST", "/v1/videos", body, headers)
        else:
            st, _, b = s.create(body, headers)
        e = error_of(b)
        ok = st == status and (param is None or e.get("param") == param) and (code is None or e.get("code") == code)
        check(ok and e.get("message") and e.get("type"), f"{str(body)[:80]}: {st} {b}")
    J = {"Content-Type": "application/json"}
    bad(b'{"prompt": "x",', 400, None, "invalid_json", J, raw=True)
    bad(b'[1, 2]', 400, None, "invalid_json", J, raw=True)
    bad(b'{"prompt": "x", "prompt": "y"}', 400, None, "invalid_json", J, raw=True)
    bad({}, 400, "prompt", "missing_required_parameter")
    bad({"prompt": 5}, 400, "prompt", "invalid_type")
    bad({"prompt": "x", "seed": "12"}, 400, "seed", "invalid_type")
    bad({"prompt": "x", "seed": -1}, 400, "seed")
    bad({"prompt": "x", "num_frames": 5.5}, 400, "num_frames", "invalid_type")
    bad({"prompt": "x", "size": 640}, 400, "size", "invalid_type")
    bad({"prompt": "x", "size": "big"}, 400, "size")
    bad({"prompt": "x", "size": "65x64"}, 400, "size", "invalid_size")
    bad({"prompt": "x", "size": "64x64", "num_frames": 6}, 400, "num_frames")
    bad({"prompt": "x", "seconds": "100"}, 400, "seconds")
    bad({"prompt": "x", "seconds": "abc"}, 400, "seconds")
    bad({"prompt": "x", "fps": 0}, 400, "fps")
    bad({"prompt": "x", "model": "sora-2"}, 400, "model", "model_not_found")
    bad({"prompt": "x", "sampler": "ddim"}, 400, "sampler")
    bad({"prompt": "x", "steps": [1000, 2000]}, 400, "steps")
    bad({"prompt": "x", "steps": "many"}, 400, "steps", "invalid_type")
    bad({"prompt": "x", "shift": -1}, 400, "shift")
    bad({"prompt": "x", "mode": "ar"}, 400, "mode")
    bad({"prompt": "x", "prompts": [{"frame": 8, "prompt": "y"}]}, 400, "prompts")
    bad({"prompt": "x", "colour": "red"}, 400, "colour", "unknown_parameter")
    bad({"prompt": "x", "input_reference": {"image_url": "http://example.com/a.png"}}, 400, "input_reference")
    bad({"prompt": "x" * 9000}, 400, "prompt", "string_above_max_length")
    bad(b'{"prompt": "' + b"x" * (1 << 20) + b'"}', 413, None, "request_too_large", J, raw=True)
    bad(b"prompt=x", 415, None, None, {"Content-Type": "application/x-www-form-urlencoded"}, raw=True)
    body, ct = multipart({"prompt": "x", "size": "64x64", "num_frames": "5"}, {"input_reference": ("a.png", b"not an image at all", "image/png")})
    bad(body, 400, "input_reference", "invalid_image", {"Content-Type": ct}, raw=True)
    body, ct = multipart({"prompt": "x"}, {"input_reference": ("a.png", png(64, 64)[:60], "image/png")})
    bad(body, 400, "input_reference", "invalid_image", {"Content-Type": ct}, raw=True)
    body, ct = multipart({"prompt": "x", "seed": "twelve"})
    bad(body, 400, "seed", "invalid_type", {"Content-Type": ct}, raw=True)
    body, ct = multipart({"prompt": "x"})
    bad(body[:-20], 400, None, "invalid_multipart", {"Content-Type": ct}, raw=True)
    bad(body, 400, None, "invalid_multipart", {"Content-Type": "multipart/form-data"}, raw=True)
    big, ct = multipart({"prompt": "x"}, {"input_reference": ("a.png", b"\0" * (2 << 20), "image/png")})
    bad(big, 413, None, "request_too_large", {"Content-Type": ct}, raw=True)
    # routes and methods
    check(s.json("GET", "/v1/videos/video_" + "0" * 32)[0] == 404, "unknown id: 404")
    check(s.json("GET", "/v1/videos/../../etc/passwd")[0] == 404, "path: 404")
    check(s.json("GET", "/nothing")[0] == 404, "unknown route: 404")
    check(s.json("PUT", "/v1/videos")[0] == 405, "PUT: 405")
    st, _, b = s.json("POST", "/v1/videos/video_" + "0" * 32 + "/remix", {"prompt": "y"})
    check(st == 501 and error_of(b).get("code") == "not_implemented", f"remix {st}")
    st, h, body = s.request("HEAD", "/health")
    check(st == 200 and body == b"" and int(h.get("content-length", "0")) > 0, f"HEAD: {st} {h}")
    st, _, m = s.json("GET", "/v1/models")
    check(st == 200 and m["data"][0]["id"] == "xt", f"models {m}")
    # nothing of all that was queued
    st, _, h = s.json("GET", "/health")
    check(st == 200 and h["status"] == "ok" and h["queue"]["queued"] == 0, f"health {h}")


@timed
def test_auth_429():
    data = os.path.join(TMP, "auth")
    s = Server(XT, data, "--api-key", "s3cret-key", "--queue", "2", "--keep", "1")
    try:
        check(s.json("GET", "/health")[0] == 200, "health needs no key")
        for hdr in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer s3cret-ke"},
                    {"Authorization": "Bearer s3cret-keyy"}, {"Authorization": "s3cret-key"}):
            st, h, b = s.json("GET", "/v1/videos", headers=hdr)
            check(st == 401 and error_of(b).get("code") == "invalid_api_key", f"auth {hdr}: {st}")
        ok = {"Authorization": "Bearer s3cret-key"}
        check(s.json("GET", "/v1/videos", headers=ok)[0] == 200, "right key")
        check(s.create(TINY)[0] == 401, "create without key")
        # 429: one running, two queued, the next refused with Retry-After
        ids = [s.create(SLOW, ok)[2]["id"]]
        check(wait_status(s, ids[0], "in_progress", headers=ok) is not None, "first job runs")
        ids += [s.create(SLOW, ok)[2]["id"] for _ in range(2)]
        st, h, b = s.create(TINY, ok)
        check(st == 429 and h.get("retry-after", "").isdigit() and error_of(b).get("code") == "queue_full", f"429: {st} {h} {b}")
        for i in ids:
            s.json("DELETE", f"/v1/videos/{i}", headers=ok)
    finally:
        s.stop()


@timed
def test_kill9_restart():
    data = os.path.join(TMP, "kill")
    s = Server(XT, data)
    st, _, done_v = s.create(dict(TINY, seed=3))
    s.wait(done_v["id"])
    mp4 = s.request("GET", f"/v1/videos/{done_v['id']}/content")[2]
    st, _, a = s.create(SLOW)
    b = s.create(dict(TINY, seed=4))[2]
    c = s.create(dict(TINY, seed=5))[2]
    check(wait_status(s, a["id"], "in_progress") is not None, "a runs")
    time.sleep(0.3)
    s.stop(signal.SIGKILL)
    s = Server(XT, data)
    try:
        st, _, v = s.json("GET", f"/v1/videos/{done_v['id']}")
        check(v["status"] == "completed" and s.request("GET", f"/v1/videos/{done_v['id']}/content")[2] == mp4,
              "the finished video survives kill -9")
        for j in (a, b, c):
            st, v = s.wait(j["id"])
            check(st == 200 and v["status"] == "completed", f"{j['id']} after restart: {v}")
        check(not any(".partial" in f or f.endswith(".tmp") for f in os.listdir(os.path.join(data, "videos"))), "no leftovers")
        # SIGTERM: the running job is put back in the queue, exit 0, and done after the next start
        st, _, g = s.create(SLOW)
        wait_status(s, g["id"], "in_progress")
        t = time.time()
        rc = s.stop(signal.SIGTERM)
        check(rc == 0 and time.time() - t < 20, f"SIGTERM exit {rc} in {time.time() - t:.1f} s")
        s = Server(XT, data)
        st, v = s.wait(g["id"])
        check(v["status"] == "completed", f"requeued job after SIGTERM: {v}")
    finally:
        s.stop()


@timed
def test_expiry():
    data = os.path.join(TMP, "expiry")
    s = Server(XT, data, "--keep", "0.0005")  # 1.8 s
    try:
        st, _, v = s.create(TINY)
        st, v = s.wait(v["id"])
        check(v["status"] == "completed" and v["expires_at"] - v["completed_at"] in (1, 2), f"expires_at {v}")
        check(any(f.startswith(v["id"]) for f in os.listdir(os.path.join(data, "videos"))), "files before expiry")
        t = time.time()
        while time.time() - t < 10 and s.json("GET", f"/v1/videos/{v['id']}")[0] == 200:
            time.sleep(0.1)
        check(s.json("GET", f"/v1/videos/{v['id']}")[0] == 404, "expired job deleted")
        check(not any(f.startswith(v["id"]) for f in os.listdir(os.path.join(data, "videos"))), "expired files deleted")
    finally:
        s.stop()


@timed
def test_xtx_5b_sizes(s):
    """The 48-channel XTX: sizes in multiples of 32 (16x latent, patch 2), its own native size."""
    st, _, b = s.create({"prompt": "a fox", "size": "48x32", "seconds": "1"})
    check(st == 400 and "multiples of 32" in error_of(b).get("message", ""), f"5b xtx size 48x32 {st} {b}")
    st, _, v = s.create({"prompt": "a fox", "size": "64x32", "seconds": "1"})
    check(st == 200 and v["mode"] == "ar", f"5b xtx create {st} {v}")
    v = wait_status(s, v["id"], "completed")
    check(v is not None and v["size"] == "64x32", f"5b xtx completes {v}")


def main():
    s = Server(XT, os.path.join(TMP, "data"), "--keep", "1", "--max-upload-mb", "1")
    try:
        test_t2v(s)
        test_curl(s)
        test_i2v(s)
        test_sizes(s)
        test_cancel_delete(s)
        test_list(s)
        test_bad_input(s)
    finally:
        check(s.stop() == 0, "exit 0 on SIGTERM")
    x = Server(XTX, os.path.join(TMP, "xtx-data"))
    try:
        test_xtx_sse(x)
    finally:
        x.stop()
    x = Server(XTX5, os.path.join(TMP, "xtx5-data"))
    try:
        test_xtx_5b_sizes(x)
    finally:
        x.stop()
    test_auth_429()
    test_expiry()
    test_kill9_restart()
    print(f"test_serve: {time.time() - T0:.1f} s")
    shutil.rmtree(TMP, ignore_errors=True)
    done()


if __name__ == "__main__":
    main()
