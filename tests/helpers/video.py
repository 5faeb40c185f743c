"""Reading recordings back with independent decoders (PyAV and OpenCV), and MP4 boxes."""
import struct


def decode(path):
    """(frames PyAV decodes, codec name, [BGR frames of the first few]); a damaged tail (a
    killed recording) ends the count instead of failing it."""
    import av
    n, first = 0, []
    with av.open(str(path)) as c:
        codec = c.streams.video[0].codec_context.name
        try:
            for frame in c.decode(video=0):
                if len(first) < 3:
                    first.append(frame.to_ndarray(format="bgr24"))
                n += 1
        except Exception:
            pass
    return n, codec, first


def frame_times(path):
    """Presentation times (s) of every frame PyAV decodes."""
    import av
    with av.open(str(path)) as c:
        return [float(f.time) for f in c.decode(video=0)]


def top_boxes(path):
    """The top-level ISO-BMFF boxes of an MP4: a normal file has ftyp, moov, mdat; a
    fragmented one moof/mdat pairs."""
    out = []
    with open(str(path), "rb") as f:
        while True:
            head = f.read(8)
            if len(head) < 8:
                return out
            size, kind = struct.unpack(">I4s", head)
            skip = size - 8
            if size == 1:
                skip = struct.unpack(">Q", f.read(8))[0] - 16
            out.append(kind.decode("latin-1"))
            if size == 0:
                return out
            f.seek(skip, 1)
