#!/usr/bin/env python3
"""Rebuilds the signed statement of a package with Python's zipfile and writes STATEMENT and the
raw signature bytes to SIG, so `openssl dgst -verify` can check a package made by `miniapp pack`.

usage: statement_from_zip.py PACKAGE_ZIP STATEMENT_OUT SIG_OUT
"""
import base64, hashlib, json, sys, zipfile

pkg, st_out, sig_out = sys.argv[1:4]
with zipfile.ZipFile(pkg) as z:
    manifest = json.loads(z.read("manifest.json").decode("utf-8"))
    sig = manifest.pop("signature")
    assert sig.startswith("rsa-pss-sha256:")
    lines = []
    for info in z.infolist():
        if info.filename.endswith("/") or info.filename == "manifest.json":
            continue
        data = z.read(info)
        lines.append((info.filename.encode(), hashlib.sha256(data).hexdigest(), len(data)))
lines.sort()
st = b"miniapp-package-v1\n"
st += json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
st += b"".join(b"%s %d %s\n" % (h.encode(), n, p) for p, h, n in lines)
open(st_out, "wb").write(st)
open(sig_out, "wb").write(base64.b64decode(sig[len("rsa-pss-sha256:"):]))
