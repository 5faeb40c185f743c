"""ONNX facts read from the raw protobuf bytes, without the onnx package.

A Jetson has TensorRT but rarely the ``onnx`` package, and the TensorRT side needs only a
few facts: the model's ``metadata_props``, the node names and types (for parser messages and
the Q/DQ check) and the float type its weights are stored in (what a strongly typed
TensorRT builds). Field numbers are from onnx.proto (ModelProto.graph = 7,
ModelProto.metadata_props = 14, GraphProto.node = 1, GraphProto.initializer = 5,
NodeProto.name = 3, NodeProto.op_type = 4, TensorProto.dims = 1, TensorProto.data_type = 2;
for pruning GraphProto.output = 12, ValueInfoProto.name = 1, NodeProto.input = 1, output = 2).
"""
from jetseg.errors import JetsegError

FLOAT, FLOAT16, DOUBLE, BFLOAT16 = 1, 10, 11, 16     # TensorProto.DataType


def _varint(buf, i):
    shift = result = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf, start=0, end=None):
    """Yield (field number, wire type, value) of one protobuf message; a length-delimited
    value is given as (start, end) offsets so big blobs (weights) are skipped, not copied."""
    i, end = start, len(buf) if end is None else end
    while i < end:
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = None, i + 8
        elif wire == 5:
            value, i = None, i + 4
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = (i, i + n), i + n
        else:
            raise ValueError("unsupported wire type {}".format(wire))
        if i > end:
            raise ValueError("field runs past the message")
        yield field, wire, value


def _text(buf, span):
    return bytes(buf[span[0]:span[1]]).decode("utf-8", "replace")


def _buffer(data_or_path):
    if isinstance(data_or_path, (bytes, bytearray, memoryview)):
        return memoryview(data_or_path), None
    with open(str(data_or_path), "rb") as f:
        return memoryview(f.read()), str(data_or_path)


def _unreadable(path, e):
    return JetsegError("not a readable ONNX file ({})".format(e), path=path,
                       fix="copy or export the model again")


def _graph_messages(buf, field_wanted):
    """Spans of GraphProto field ``field_wanted`` in the main graph."""
    for field, wire, value in _fields(buf):
        if field == 7 and wire == 2:
            for f2, w2, v2 in _fields(buf, value[0], value[1]):
                if f2 == field_wanted and w2 == 2:
                    yield v2


def read_onnx_metadata(data_or_path):
    """ONNX ``metadata_props`` as a dict."""
    buf, path = _buffer(data_or_path)
    out = {}
    try:
        for field, wire, value in _fields(buf):
            if field == 14 and wire == 2:
                key = val = None
                for f2, w2, v2 in _fields(buf, value[0], value[1]):
                    if f2 == 1 and w2 == 2:
                        key = _text(buf, v2)
                    elif f2 == 2 and w2 == 2:
                        val = _text(buf, v2)
                if key is not None:
                    out[key] = val if val is not None else ""
    except ValueError as e:
        raise _unreadable(path, e)
    return out


def list_onnx_nodes(data_or_path):
    """[(node name, op type)] of the main graph."""
    buf, path = _buffer(data_or_path)
    nodes = []
    try:
        for span in _graph_messages(buf, 1):
            name = op = ""
            for f3, w3, v3 in _fields(buf, span[0], span[1]):
                if f3 == 3 and w3 == 2:
                    name = _text(buf, v3)
                elif f3 == 4 and w3 == 2:
                    op = _text(buf, v3)
            nodes.append((name, op))
    except ValueError as e:
        raise _unreadable(path, e)
    return nodes


def has_qdq(data_or_path):
    """True when the graph carries QuantizeLinear/DequantizeLinear (explicit INT8)."""
    return any(op in ("QuantizeLinear", "DequantizeLinear")
               for _, op in list_onnx_nodes(data_or_path))


def weight_elements(data_or_path):
    """{TensorProto data type: number of elements} over the main graph's initializers."""
    buf, path = _buffer(data_or_path)
    counts = {}
    try:
        for span in _graph_messages(buf, 5):
            dims, dtype = [], 0
            for f3, w3, v3 in _fields(buf, span[0], span[1]):
                if f3 == 1 and w3 == 0:
                    dims.append(v3)
                elif f3 == 1 and w3 == 2:               # packed repeated int64
                    i = v3[0]
                    while i < v3[1]:
                        d, i = _varint(buf, i)
                        dims.append(d)
                elif f3 == 2 and w3 == 0:
                    dtype = v3
            n = 1
            for d in dims:
                n *= d
            counts[dtype] = counts.get(dtype, 0) + n
    except ValueError as e:
        raise _unreadable(path, e)
    return counts


def graph_precision(data_or_path):
    """What the graph's own types say: "int8" (Q/DQ nodes), "fp16" (most float weights
    stored as float16, as ``jetseg export --precision fp16`` writes them) or "fp32".
    A strongly typed TensorRT (11+) builds exactly this."""
    if has_qdq(data_or_path):
        return "int8"
    counts = weight_elements(data_or_path)
    half = counts.get(FLOAT16, 0) + counts.get(BFLOAT16, 0)
    full = counts.get(FLOAT, 0) + counts.get(DOUBLE, 0)
    return "fp16" if half > full else "fp32"


def _varint_bytes(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _strings(buf, span, field):
    return [_text(buf, v) for f, w, v in _fields(buf, span[0], span[1]) if f == field and w == 2]


SUBGRAPH_OPS = ("If", "Loop", "Scan")     # their bodies may read outer names implicitly


def prune_outputs(data_or_path, keep):
    """The model's bytes with only the graph outputs ``keep`` and the nodes they need
    (ONNX Runtime runs every node of a graph, also those no fetched output needs), or None
    when there is nothing to prune or the graph has subgraphs (If/Loop/Scan)."""
    buf, path = _buffer(data_or_path)
    keep = set(keep)
    try:
        graph = None
        for field, wire, value in _fields(buf):
            if field == 7 and wire == 2:
                graph = value
        if graph is None:
            return None
        entries = list(_fields(buf, graph[0], graph[1]))
        nodes = [(v, _strings(buf, v, 1), _strings(buf, v, 2))
                 for f, w, v in entries if f == 1 and w == 2]
        if any(op in SUBGRAPH_OPS for _, op in list_onnx_nodes(buf)):
            return None
        need, drop = set(keep), set()
        for span, ins, outs in reversed(nodes):
            if need.intersection(outs):
                need.update(i for i in ins if i)
            else:
                drop.add(span)
        drop.update(v for f, w, v in entries
                    if f == 12 and w == 2 and _strings(buf, v, 1)[0] not in keep)
        if not drop:
            return None
        # re-encode the graph message without the dropped node and output entries
        parts, i = [], graph[0]
        for field, wire, value in _fields(buf, graph[0], graph[1]):
            start = i
            i = value[1] if wire == 2 else _skip_end(buf, i, wire)
            if not (wire == 2 and field in (1, 12) and value in drop):
                parts.append(bytes(buf[start:i]))
        body = b"".join(parts)
        out, i = [], 0
        for field, wire, value in _fields(buf):
            start = i
            i = value[1] if wire == 2 else _skip_end(buf, i, wire)
            if field == 7 and wire == 2:
                out.append(_varint_bytes((7 << 3) | 2) + _varint_bytes(len(body)) + body)
            else:
                out.append(bytes(buf[start:i]))
        return b"".join(out)
    except (ValueError, IndexError) as e:
        raise _unreadable(path, e)


def _skip_end(buf, i, wire):
    """Offset after the field that starts at ``i`` (key included), for non-length wires."""
    _, i = _varint(buf, i)
    if wire == 0:
        return _varint(buf, i)[1]
    return i + (8 if wire == 1 else 4)
