"""A member's python-threatexchange (PyPI `threatexchange`) loads a `hashforum export --format
pytx` file as a local file collaboration, the way its fetch does (LocalFileSignalExchangeAPI,
then the API's conversion to signal types, which validates every signal), builds each signal
type's own index and matches queries through it. Prints one JSON object.

usage: pytx_match.py EXPORT_FILE SIGNAL_TYPE:VALUE...
"""
import json
import sys
from importlib.metadata import version

from threatexchange.exchanges.impl.file_api import (
    FileCollaborationConfig,
    LocalFileSignalExchangeAPI,
)
from threatexchange.signal_type.md5 import VideoMD5Signal
from threatexchange.signal_type.pdq.signal import PdqSignal
from threatexchange.signal_type.sha256 import VideoSHA256Signal
from threatexchange.signal_type.url_md5 import UrlMD5Signal

path, queries = sys.argv[1], sys.argv[2:]
types = [PdqSignal, VideoMD5Signal, VideoSHA256Signal, UrlMD5Signal]
collab = FileCollaborationConfig(name="hashforum", filename=path)
api = LocalFileSignalExchangeAPI.for_collab(collab)
fetched = {}
for delta in api.fetch_iter(types, None):
    fetched.update(delta.updates)
# Drops lines of unknown signal types and signals that do not validate.
by_type = LocalFileSignalExchangeAPI.naive_convert_to_signal_type(types, collab, fetched)
# Each entry's metadata is its own signal, so that a match names what it matched.
indexes = {
    st.get_name(): st.get_index_cls().build((s, s) for s in signals)
    for st, signals in by_type.items()
}


def match(query):
    name, _, value = query.partition(":")
    index = indexes.get(name)
    found = index.query(value) if index is not None else []
    return sorted(
        [m.metadata, getattr(m.similarity_info, "distance", None)] for m in found
    )


print(
    json.dumps(
        {
            "threatexchange": version("threatexchange"),
            "lines": len(fetched),
            "signals": {st.get_name(): len(s) for st, s in by_type.items()},
            "matches": {q: match(q) for q in queries},
        }
    )
)
