"""python-fido2 side of benches/fido2_roundtrip.rs: MakeCredential and GetAssertion round trips
through the SeqpacketConnection adapter on a keygate software key's socket.

Usage: fido2_bench.py SOCKET N  -> prints one JSON line {"mc": [seconds...], "ga": [seconds...]}.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fido2.ctap2 import Ctap2  # noqa: E402

from fido2_softkey import open_device  # noqa: E402


def main():
    path, n = sys.argv[1], int(sys.argv[2])
    dev = open_device(path)
    ctap = Ctap2(dev)
    rp = {"id": "bench.example", "name": "Bench"}
    user = {"id": b"bench-user", "name": "bench"}
    params = [{"type": "public-key", "alg": -7}]
    cdh = b"\x42" * 32
    mc, ga = [], []
    cred_id = None
    for _ in range(n):
        t = time.perf_counter()
        att = ctap.make_credential(cdh, rp, user, params)
        mc.append(time.perf_counter() - t)
        cred_id = att.auth_data.credential_data.credential_id
    allow = [{"type": "public-key", "id": cred_id}]
    for _ in range(n):
        t = time.perf_counter()
        ctap.get_assertion(rp["id"], cdh, allow)
        ga.append(time.perf_counter() - t)
    dev.close()
    print(json.dumps({"mc": mc, "ga": ga}))


if __name__ == "__main__":
    main()
