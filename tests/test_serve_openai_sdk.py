"""hb serve with the official OpenAI Node SDK (npm `openai`): tests/serve_openai_sdk.cjs drives a real server.
Skipped (exit 77) when node or the package is not installed; point HB_OPENAI_NODE_MODULES at a node_modules
folder holding `openai` (npm install openai)."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from serve_client import Server, check, done, mkmodel, png, tmpdir  # noqa: E402

env = dict(os.environ)
if os.environ.get("HB_OPENAI_NODE_MODULES"):
    env["NODE_PATH"] = os.environ["HB_OPENAI_NODE_MODULES"]
try:
    ok = subprocess.run(["node", "-e", "require('openai')"], env=env, capture_output=True).returncode == 0
except OSError:
    ok = False
if not ok:
    print("skipped: node with the openai package not found (set HB_OPENAI_NODE_MODULES)")
    sys.exit(77)
tmp = tmpdir()
img = os.path.join(tmp, "in.png")
open(img, "wb").write(png(72, 40, 2))
s = Server(mkmodel(os.path.join(tmp, "xt"), "hummingbird-xt"), os.path.join(tmp, "data"), "--api-key", "sdk-key")
try:
    r = subprocess.run(["node", os.path.join(os.path.dirname(__file__), "serve_openai_sdk.cjs"),
                        f"http://127.0.0.1:{s.port}/v1", "sdk-key", img], env=env, capture_output=True, text=True, timeout=300)
    print(r.stdout + r.stderr)
    check(r.returncode == 0, "the OpenAI SDK checks")
finally:
    s.stop()
done()
