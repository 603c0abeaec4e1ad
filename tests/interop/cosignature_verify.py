"""Checks a C2SP tlog-cosignature/v1 (v1.0.1) cosignature on a checkpoint note, written from the
spec alone with the stock `cryptography` package (OpenSSL's Ed25519). Run by
tests/it/interop.rs; usable by hand:

    python3 cosignature_verify.py WITNESS_VKEY NOTE

WITNESS_VKEY is a file holding `<name>+<hex8 key id>+<base64(0x04 || public key)>`. The key id
is recomputed from the name and key; the note's body (everything before its last blank line)
is what each line by that name and key id must sign, as
`cosignature/v1\\ntime <T>\\n<body>`. Prints "ok <name> <T>" for each such line and exits 0;
prints "FAIL <reason>" and exits 1 when one does not verify or none is there.
"""
import base64
import hashlib
import struct
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

EM_DASH = "\u2014"


def fail(reason):
    print(f"FAIL {reason}")
    sys.exit(1)


def main():
    vkey_path, note_path = sys.argv[1:3]
    with open(vkey_path, encoding="utf-8") as f:
        vkey = f.read().strip()
    name, key_id_hex, key_b64 = vkey.split("+", 2)
    key = base64.b64decode(key_b64, validate=True)
    if len(key) != 33 or key[0] != 0x04:
        fail("not a cosignature/v1 vkey (type 0x04, 32-byte Ed25519 key)")
    key_id = hashlib.sha256(name.encode() + b"\n" + key).digest()[:4]
    if key_id.hex() != key_id_hex:
        fail(f"the vkey's key id {key_id_hex} is not SHA-256(name || 0x0A || 0x04 || key)[:4] = {key_id.hex()}")
    public = Ed25519PublicKey.from_public_bytes(key[1:])

    with open(note_path, "rb") as f:
        note = f.read()
    at = note.rfind(b"\n\n")
    if at < 0 or not note.endswith(b"\n"):
        fail("not a signed note")
    body, signatures = note[: at + 1], note[at + 2 :].decode("utf-8")

    found = 0
    for line in signatures.splitlines():
        prefix = f"{EM_DASH} {name} "
        if not line.startswith(prefix):
            continue
        payload = base64.b64decode(line[len(prefix) :], validate=True)
        if payload[:4] != key_id:
            continue
        if len(payload) != 4 + 8 + 64:
            fail(f"a cosignature of {len(payload)} bytes, not 76")
        (time,) = struct.unpack(">Q", payload[4:12])
        if time > 2**63 - 1:
            fail(f"time {time} past 2^63 - 1")
        message = b"cosignature/v1\ntime %d\n" % time + body
        try:
            public.verify(payload[12:], message)
        except InvalidSignature:
            fail(f"{name}'s cosignature at time {time} does not verify")
        print(f"ok {name} {time}")
        found += 1
    if not found:
        fail(f"no cosignature by {name}+{key_id_hex}")


main()
