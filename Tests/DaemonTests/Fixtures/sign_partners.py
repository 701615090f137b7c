#!/usr/bin/env python3
"""Signs a registry partners document with nothing but Python and `openssl`, following
spec/registry.md literally (the platform-side interop reference):
statement = "miniapp-partners-v1\n" + RFC 8785 JSON of the document without "signature" + "\n",
signature = "rsa-pss-sha256:" + base64(RSASSA-PSS-SHA256, MGF1-SHA256, 32-byte salt).
(json.dumps with sorted keys and no spaces is RFC 8785 for documents of strings, integers,
arrays and objects with ASCII keys, which is all a partners document holds.)

usage: sign_partners.py PRIVATE_KEY_PEM < unsigned.json > signed.json
"""
import base64, json, subprocess, sys, tempfile

doc = json.load(sys.stdin)
doc.pop("signature", None)
statement = b"miniapp-partners-v1\n"
statement += json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
with tempfile.NamedTemporaryFile() as f:
    f.write(statement)
    f.flush()
    sig = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", sys.argv[1], "-sigopt", "rsa_padding_mode:pss",
         "-sigopt", "rsa_pss_saltlen:32", f.name],
        capture_output=True, check=True).stdout
doc["signature"] = "rsa-pss-sha256:" + base64.b64encode(sig).decode()
json.dump(doc, sys.stdout, indent=2, ensure_ascii=False)
