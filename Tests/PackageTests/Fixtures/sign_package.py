#!/usr/bin/env python3
"""Packs and signs a mini-program with nothing but Python, `openssl` and `zip`, following
spec/package-format.md literally (the partner-side interop reference).

usage: sign_package.py SRC_DIR PRIVATE_KEY_PEM OUT_ZIP
"""
import base64, hashlib, json, os, shutil, subprocess, sys, tempfile

src, key, out = sys.argv[1:4]
with open(os.path.join(src, "manifest.json"), encoding="utf-8") as f:
    manifest = json.load(f)
manifest.pop("signature", None)
lines = []
for root, _dirs, files in os.walk(src):
    for name in files:
        path = os.path.relpath(os.path.join(root, name), src)
        if path == "manifest.json":
            continue
        with open(os.path.join(root, name), "rb") as f:
            data = f.read()
        lines.append((path.encode(), hashlib.sha256(data).hexdigest(), len(data)))
lines.sort()
statement = b"miniapp-package-v1\n"
statement += json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
statement += b"".join(b"%s %d %s\n" % (h.encode(), n, p) for p, h, n in lines)
work = tempfile.mkdtemp()
try:
    with open(os.path.join(work, "statement"), "wb") as f:
        f.write(statement)
    sig = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", key, "-sigopt", "rsa_padding_mode:pss",
         "-sigopt", "rsa_pss_saltlen:32", os.path.join(work, "statement")],
        capture_output=True, check=True).stdout
    manifest["signature"] = "rsa-pss-sha256:" + base64.b64encode(sig).decode()
    tree = os.path.join(work, "tree")
    shutil.copytree(src, tree)
    with open(os.path.join(tree, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False)
    out = os.path.abspath(out)
    if os.path.exists(out):
        os.remove(out)
    subprocess.run(["zip", "-q", "-r", out, "."], cwd=tree, check=True)
finally:
    shutil.rmtree(work)
