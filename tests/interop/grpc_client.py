"""A member's Python client, from proto/ alone: stubs generated with grpcio-tools, calls made
with grpcio over mTLS. Prints one JSON object with what the server answered.

usage: grpc_client.py PROTO_DIR OUT_DIR IDENTITY_DIR HOST:PORT STORED_PDQ NEAR_PDQ
"""
import json
import os
import sys

from grpc_tools import protoc

proto_dir, out_dir, identity, addr, stored, near = sys.argv[1:7]
files = [
    os.path.join(proto_dir, "hashforum", "v1", name)
    for name in ("entry.proto", "registry.proto", "admin.proto", "log.proto")
]
code = protoc.main(
    ["protoc", f"-I{proto_dir}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}"] + files
)
if code != 0:
    sys.exit(f"protoc failed: {code}")
for d in (os.path.join(out_dir, "hashforum"), os.path.join(out_dir, "hashforum", "v1")):
    open(os.path.join(d, "__init__.py"), "a").close()
sys.path.insert(0, out_dir)

import grpc  # noqa: E402
from hashforum.v1 import entry_pb2, registry_pb2, registry_pb2_grpc  # noqa: E402


def read(name):
    with open(os.path.join(identity, name), "rb") as f:
        return f.read()


creds = grpc.ssl_channel_credentials(read("ca.crt"), read("tls.key"), read("tls.crt"))
channel = grpc.secure_channel(addr, creds, options=[("grpc.ssl_target_name_override", "localhost")])
stub = registry_pb2_grpc.RegistryServiceStub(channel)
out = {}

reply = stub.MatchHashes(
    registry_pb2.MatchHashesRequest(
        hash_type=entry_pb2.HASH_TYPE_PDQ,
        queries=[registry_pb2.MatchQuery(value=near)],
        max_distance=31,
    ),
    timeout=20,
)
out["matches"] = [
    {
        "value": m.record.value,
        "distance": m.distance,
        "variant": registry_pb2.Dihedral.Name(m.variant),
        "submitter": m.record.submissions[0].member_id,
        "status": registry_pb2.RecordStatus.Name(m.record.status),
    }
    for m in reply.results[0].matches
]

record = stub.LookupHash(
    registry_pb2.LookupHashRequest(
        query=registry_pb2.HashQuery(hash_type=entry_pb2.HASH_TYPE_PDQ, value=stored)
    ),
    timeout=20,
).record
out["lookup"] = {"value": record.value, "submitters": [s.member_id for s in record.submissions]}

try:
    stub.MatchHashes(
        registry_pb2.MatchHashesRequest(
            hash_type=entry_pb2.HASH_TYPE_PDQ,
            queries=[registry_pb2.MatchQuery(value=near.upper())],
        ),
        timeout=20,
    )
    out["refused"] = None
except grpc.RpcError as e:
    out["refused"] = {"code": e.code().name, "details": e.details()}

print(json.dumps(out))
