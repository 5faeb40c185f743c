"""Video out: H.264 (default), H.265 or MJPEG into a file that survives a hard kill, or into
RTP packets (jetseg.io.rtp).

Encoders, chosen once per output (``backend``; "auto" takes the first that can):
  gstreamer  NVIDIA's nvv4l2h264enc / nvv4l2h265enc through JetPack's OpenCV (jetseg.io.gst)
  pyav       PyAV (pip install 'jetseg[video]'; its wheels carry FFmpeg with libx264/libx265)
  gstreamer  GStreamer's software encoders (x264enc, x265enc, jpegenc) when there is no PyAV
  opencv     OpenCV's own writer (MPEG-4 Part 2 or MJPG), with a warning: not H.264, and a
             killed recording is lost

A file is written at the path the user gave from the first frame on, never under another
name, in a form whose every complete part plays if the process dies:
  .mp4 .m4v .mov  fragmented MP4 (a fragment per keyframe) while recording; a clean stop
                  remuxes it, without re-encoding, into a normal MP4 (if that fails, the
                  fragmented file stays: it plays too)
  .mkv            Matroska in clusters of about a second
  .avi            AVI, a chunk per frame
A keyframe at least every second (of video or of wall time) and the file fsync'ed after it:
a hard kill or a power cut loses about the last second.
"""
import os
import time
from fractions import Fraction

from jetseg.errors import JetsegError, log
from jetseg.files import check_writable as probe_folder, publish, temp_path_for

CODECS = {"h264": "h264", "avc": "h264", "h265": "h265", "hevc": "h265", "mjpeg": "mjpeg",
          "mjpg": "mjpeg"}
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}
# software encoders only: a generic name may pick a hardware one (h264_nvenc) that fails
# only when the first frame comes
AV_ENCODERS = {"h264": ("libx264", "libopenh264"), "h265": ("libx265",), "mjpeg": ("mjpeg",)}
BACKENDS = ("auto", "gstreamer", "pyav", "opencv")
KEY_INTERVAL = 1.0          # seconds between keyframes (and fsyncs) at most
HW_KBPS = 4000              # bitrate when one is needed and not given (jetson-utils' default)
INSTALL_PYAV = ("pip install 'jetseg[video]' (PyAV); on a Jetson use JetPack's OpenCV with "
                "GStreamer (apt-get install python3-opencv)")


def check_codec(codec, path=None):
    name = CODECS.get(str(codec or "h264").lower())
    if name is None:
        raise JetsegError("unknown --output-codec {!r}".format(codec), path=path,
                          fix="use h264, h265 or mjpeg")
    return name


def check_bitrate(kbps, path=None):
    """``--bitrate`` in kbit/s (None: the encoder's quality default)."""
    if kbps is None:
        return None
    if not 10 <= kbps <= 100000:
        raise JetsegError("--bitrate {} is out of range".format(kbps), path=path,
                          fix="give kbit/s between 10 and 100000, e.g. --bitrate 4000 for "
                              "4 Mbit/s (jetson-utils counts bit/s: divide by 1000)")
    return int(kbps)


def container_for(path):
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in CONTAINERS:
        raise JetsegError("cannot record video into {!r} files".format(ext), path=path,
                          fix="use .mp4, .mkv, .mov or .avi")
    return CONTAINERS[ext]


def check_writable(path):
    """The folder of ``path`` exists (made if need be) and a file can be made in it (tried:
    root passes ``os.access`` on /proc and /sys); nothing is created at ``path`` itself
    until the first frame."""
    if os.path.isdir(str(path)):
        raise JetsegError("is a folder", path=path, fix="give a file name such as out.mp4")
    probe_folder(path)
    if os.path.exists(str(path)) and not os.access(str(path), os.W_OK):
        raise JetsegError("cannot write here (permission denied)", path=path,
                          fix="record into a folder you can write")


def fsync_dir(path):
    """Make a new or renamed file's name durable too (its folder's entry), best effort."""
    try:
        fd = os.open(os.path.dirname(os.path.abspath(str(path))), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def av_encoder(codec):
    """The PyAV encoder name for ``codec``, or None (no PyAV, or a build without it)."""
    try:
        import av
    except ImportError:
        return None
    for name in AV_ENCODERS[codec]:
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:
            continue
    return None


def choose_backend(codec, path, network=False, backend="auto"):
    """(backend, encoder) for ``codec`` on this machine, or a JetsegError saying what to
    install. ``network``: RTP (OpenCV's own writer cannot)."""
    from jetseg.io import gst
    from jetseg.io.sources import gstreamer_available
    backend = backend or "auto"
    if backend not in BACKENDS:
        raise JetsegError("unknown video backend {!r}".format(backend), path=path,
                          fix="use one of " + ", ".join(BACKENDS))
    has_gst = backend in ("auto", "gstreamer") and _cv2_has_gstreamer(gstreamer_available)
    if backend == "auto" and has_gst and gst.find_encoder(codec, hardware_only=True):
        return "gstreamer", gst.find_encoder(codec, hardware_only=True)
    if backend in ("auto", "pyav") and av_encoder(codec):
        return "pyav", av_encoder(codec)
    if has_gst and gst.find_encoder(codec):
        return "gstreamer", gst.find_encoder(codec)
    if backend in ("auto", "opencv") and not network and codec != "h265":
        return "opencv", None
    what = {"auto": "no {} encoder here".format(codec.upper()),
            "pyav": "PyAV with a {} encoder is not installed".format(codec.upper()),
            "gstreamer": "this OpenCV has no GStreamer {} encoder".format(codec.upper()),
            "opencv": "OpenCV's own writer cannot do this"}[backend]
    raise JetsegError(what, path=path, fix=INSTALL_PYAV + (
        "; or use --output-codec h264" if codec != "h264" else ""))


def fit_frame(frame, size):
    """``frame`` at ``size`` (w, h: the first frame's), padded to even sides for 4:2:0."""
    from jetseg.errors import need_cv2
    if (frame.shape[1], frame.shape[0]) != size:
        cv2 = need_cv2("writing video")
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    h, w = frame.shape[:2]
    if w % 2 or h % 2:
        cv2 = need_cv2("writing video")
        frame = cv2.copyMakeBorder(frame, 0, h % 2, 0, w % 2, cv2.BORDER_REPLICATE)
    return frame


def _cv2_has_gstreamer(gstreamer_available):
    try:
        return gstreamer_available()
    except JetsegError:
        return False


def _av_error(e, path, frames):
    """A PyAV write error as the one line a user reads."""
    reason = getattr(e, "strerror", None) or str(e)
    return JetsegError("recording stopped after {} frames: {}; what was written so far "
                       "plays".format(frames, reason), path=path,
                       fix="free space on the disk, check that the folder still exists and "
                           "is writable, or record somewhere else")


class AvEncoder(object):
    """One PyAV video stream in an open container: BGR frames in, packets muxed, timestamps in
    ms (``cfr``: in frames, for AVI), a keyframe at least every KEY_INTERVAL seconds of video
    or of wall time."""

    def __init__(self, container, encoder, codec, size, fps=None, bitrate_kbps=None,
                 cfr=False):
        import av
        self.av = av
        rate = Fraction(fps or 30).limit_denominator(1001)
        s = container.add_stream(encoder, rate=rate)
        s.width, s.height = size
        s.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        cc = s.codec_context
        self.time_base = 1 / rate if cfr else Fraction(1, 1000)
        cc.time_base = self.time_base
        cc.gop_size = max(1, int(10 * rate))        # keyframes come from encode() below
        opts = {}
        if encoder == "libx264":
            opts = {"preset": "ultrafast", "tune": "zerolatency"}
        elif encoder == "libx265":
            opts = {"preset": "ultrafast", "tune": "zerolatency", "x265-params": "log-level=error"}
        if bitrate_kbps:
            cc.bit_rate = bitrate_kbps * 1000
            opts.update(maxrate=str(bitrate_kbps * 1000), bufsize=str(bitrate_kbps * 1000))
        elif codec == "mjpeg":
            cc.qmin, cc.qmax = 2, 5
        s.options = opts
        self.container, self.stream = container, s
        pt = getattr(av.video.frame, "PictureType", None)
        self.key_type = pt.I if pt is not None else "I"
        self.last_pts = -1
        self.key_media = None
        self.key_wall = 0.0

    def encode(self, frame, t):
        """Encode a BGR frame at ``t`` seconds of video; True when it starts a keyframe."""
        pts = max(int(round(t / self.time_base)), self.last_pts + 1)
        self.last_pts = pts
        f = self.av.VideoFrame.from_ndarray(frame, format="bgr24")
        f.pts = pts
        f.time_base = self.time_base
        now = time.time()
        key = (self.key_media is None or t - self.key_media >= KEY_INTERVAL
               or now - self.key_wall >= KEY_INTERVAL)
        if key:
            f.pict_type = self.key_type
            self.key_media, self.key_wall = t, now
        for packet in self.stream.encode(f):
            self.container.mux(packet)
        return key

    def flush(self):
        for packet in self.stream.encode(None):
            self.container.mux(packet)


class AvFile(object):
    """A crash-safe recording with PyAV (see the module doc)."""

    def __init__(self, path, encoder, codec, size, fps=None, bitrate_kbps=None):
        import av
        self.path = str(path)
        self.fmt = container_for(path)
        opts = {"flush_packets": "1"}           # each packet to the OS as the muxer ends it
        if self.fmt in ("mp4", "mov"):
            opts["movflags"] = "frag_keyframe+empty_moov+default_base_moof"
        elif self.fmt == "matroska":
            opts["cluster_time_limit"] = str(int(KEY_INTERVAL * 1000))
        self.frames = 0
        self.fd = self.container = None
        try:
            open(self.path, "wb").close()           # FFmpeg opens it at the first packet
            self.fd = os.open(self.path, os.O_RDONLY)    # fsync, and notice a deleted file
            fsync_dir(self.path)
            self.container = av.open(self.path, "w", format=self.fmt, options=opts)
            self.enc = AvEncoder(self.container, encoder, codec, size, fps, bitrate_kbps,
                                 cfr=self.fmt == "avi")
        except Exception as e:
            if self.fd is not None:
                os.close(self.fd)
            raise JetsegError("cannot record with {}: {}".format(
                encoder, getattr(e, "strerror", None) or e), path=path,
                fix="check that the folder is writable" + (
                    "; or try --output-codec h264" if codec != "h264" else ""))
        self.synced = time.time()

    def write(self, frame, t):
        try:
            key = self.enc.encode(frame, t)
        except Exception as e:
            raise _av_error(e, self.path, self.frames)
        self.frames += 1
        if key and time.time() - self.synced >= 0.5 * KEY_INTERVAL:
            self.sync()

    def sync(self):
        """fsync what the muxer has written; a file deleted under us is an error (its data
        would vanish at close), after its frames are saved again at the path."""
        os.fsync(self.fd)
        self.synced = time.time()
        if os.fstat(self.fd).st_nlink == 0:
            raise self._rescue()

    def _rescue(self):
        self._finish_container()
        try:
            d = os.path.dirname(os.path.abspath(self.path))
            if not os.path.isdir(d):
                os.makedirs(d)
            with open(self.path, "wb") as out:
                os.lseek(self.fd, 0, os.SEEK_SET)
                while True:
                    chunk = os.read(self.fd, 1 << 20)
                    if not chunk:
                        break
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            saved = "the {} frames so far were saved again there".format(self.frames)
        except (IOError, OSError) as e:
            saved = "the recording is lost ({})".format(e.strerror or e)
        return JetsegError("the file was deleted while recording (its folder removed?); "
                           "recording stopped; " + saved, path=self.path,
                           fix="keep the output folder while recording")

    def _finish_container(self):
        if self.container is None:
            return
        container, self.container = self.container, None
        try:
            self.enc.flush()
        finally:
            container.close()

    def close(self):
        if self.fd is None:
            return
        try:
            self._finish_container()
            os.fsync(self.fd)
        except Exception as e:
            raise _av_error(e, self.path, self.frames)
        finally:
            deleted = os.fstat(self.fd).st_nlink == 0
            os.close(self.fd)
            self.fd = None
        if self.fmt in ("mp4", "mov") and not deleted:
            remux(self.path, self.fmt)


def remux(path, fmt):
    """Fragmented MP4 -> a normal MP4 (moov with the whole index), packets copied; the
    fragmented file stays if this fails (it plays too)."""
    import av
    size = os.path.getsize(path)
    if size > 100e6:
        log.info("%s: indexing %.0f MB", path, size / 1e6)
    tmp = None
    try:
        tmp = temp_path_for(path)
        with av.open(path) as src, av.open(tmp, "w", format=fmt) as dst:
            ins = src.streams.video[0]
            outs = (dst.add_stream_from_template(ins) if hasattr(dst, "add_stream_from_template")
                    else dst.add_stream(template=ins))
            for packet in src.demux(ins):
                if packet.dts is None:
                    continue
                packet.stream = outs
                dst.mux(packet)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        publish(tmp, path)
        fsync_dir(path)
    except Exception as e:
        log.warning("%s: kept as fragmented MP4 (it plays; some tools show no duration): %s",
                    path, getattr(e, "strerror", None) or e)
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)


class OpenCvFile(object):
    """OpenCV's own writer, when neither PyAV nor GStreamer can: MPEG-4 Part 2 (.mp4, .mov)
    or MJPG (.avi, .mkv); not crash-safe."""

    FOURCC = {"mp4": "mp4v", "mov": "mp4v", "matroska": "MJPG", "avi": "MJPG"}

    def __init__(self, path, codec, size, fps=None):
        from jetseg.errors import need_cv2
        cv2 = need_cv2("writing video")
        fmt = container_for(path)
        fourcc = "MJPG" if codec == "mjpeg" else self.FOURCC[fmt]
        self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc),
                                      float(fps or 30.0), size)
        if not self.writer.isOpened():
            raise JetsegError("OpenCV cannot write {} video".format(fourcc), path=path,
                              fix=INSTALL_PYAV)

    def write(self, frame, t=None):
        self.writer.write(frame)

    def close(self):
        self.writer.release()
