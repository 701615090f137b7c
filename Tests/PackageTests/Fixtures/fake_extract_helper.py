#!/usr/bin/python3
"""A compromised extraction helper, for the daemon's check of what a helper wrote: speaks the
helper wire (Sources/MiniAppModel/Helper), reports the digests the partner signed, and writes
something else into the staging directory (fd 5) as FAKE_MODE says:
  tamper   main.js holds other bytes
  symlink  an extra symlink `evil` -> /etc
  extra    an extra regular file `evil.js`
  hardlink main.js is a hard link to a second name inside the tree"""
import hashlib, io, os, struct, sys, zipfile

def readn(n):
    b = b""
    while len(b) < n:
        c = os.read(3, n - len(b))
        if not c:
            sys.exit(0)
        b += c
    return b

def read_frame():
    plen, ver, kind, count, fid = struct.unpack("<IBBHQ", readn(16))
    readn(plen)
    return kind, fid

def send(kind, fid, fields):
    payload = b"".join(struct.pack("<HI", t, len(v)) + v for t, v in fields)
    os.write(3, struct.pack("<IBBHQ", len(payload), 1, kind, len(fields), fid) + payload)

mode = os.environ.get("FAKE_MODE", "tamper")
read_frame()                                                   # hello
send(2, 0, [(1, struct.pack("<Q", 0)), (2, struct.pack("<Q", os.getpid()))])  # ready
_, fid = read_frame()                                          # extract request
z = zipfile.ZipFile(io.BytesIO(os.pread(4, os.fstat(4).st_size, 0)))
os.mkdir("tree", dir_fd=5)
root = os.open("tree", os.O_RDONLY | os.O_DIRECTORY, dir_fd=5)
fields = []
for info in z.infolist():
    if info.is_dir():
        os.makedirs(f"/proc/self/fd/{root}/{info.filename}", exist_ok=True)
        continue
    data = z.read(info)
    os.makedirs(os.path.dirname(f"/proc/self/fd/{root}/{info.filename}"), exist_ok=True)
    written = b"alert('owned')\n" if (mode == "tamper" and info.filename == "main.js") else data
    with open(f"/proc/self/fd/{root}/{info.filename}", "wb") as f:
        f.write(written)
    if info.filename == "manifest.json":
        fields.append((1, data))
    fields.append((2, struct.pack("<Q", len(data)) + hashlib.sha256(data).digest() + info.filename.encode()))
if mode == "symlink":
    os.symlink("/etc", f"/proc/self/fd/{root}/evil")
elif mode == "extra":
    open(f"/proc/self/fd/{root}/evil.js", "w").write("x")
elif mode == "hardlink":
    os.link(f"/proc/self/fd/{root}/main.js", f"/proc/self/fd/{root}/lib/again.js")
send(6, fid, fields)
read_frame()
