"""Bad inputs and outputs a user or a fault run meets (issue 18, items 6, 9, 10, 14, 15, 16):
each ends in one line that names the file and the fix, and a bad part of an input (a file of
a folder, frames of a damaged video) is skipped while the rest is processed."""
import os
import struct
import sys
import zlib

import cv2
import onnx
import pytest

from jetseg import JetsegError
from jetseg.files import read_image
from jetseg.imagesize import image_size, max_pixels
from jetseg.io.sources import ImageSource, gstreamer_available, open_source
from jetseg_export.compose import compose
from tests.helpers.common import COLORS5, NAMES5, ROOT, free_port, rng_frame, run_cli
from tests.helpers.tinymodels import TinyNet

LINUX = sys.platform.startswith("linux") and os.path.isdir("/proc/self")


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "net.onnx"
    onnx.save(compose(TinyNet(num_classes=5, width=64, height=48, down=4).onnx(), NAMES5,
                      COLORS5), str(path))
    return str(path)


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "in" / "img.jpg"
    path.parent.mkdir()
    cv2.imwrite(str(path), rng_frame(80, 60))
    return path


def _one_line_error(r, prog="jetseg"):
    """The run ended with exit 2 and its one error line (no traceback); that line."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(prog + ": error: ") and "(fix: " in last, r.stderr
    return last


# ---- item 6: no output, and saying where the files went ---------------------------------
def test_segment_without_output_says_nothing_is_written(model, image, tmp_path):
    before = sorted(os.listdir(str(image.parent)))
    r = run_cli("segment", "--model", model, image)
    assert r.returncode == 0, r.stderr
    assert "no output given: nothing will be written" in r.stderr
    assert "out.jpg" in r.stderr            # and how to write: an output after the input
    assert "wrote" not in r.stdout and "1 frame(s)" in r.stdout
    assert sorted(os.listdir(str(image.parent))) == before


def test_segment_says_what_it_wrote_where(model, image, tmp_path):
    r = run_cli("segment", "--model", model, image, tmp_path / "o.png")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "wrote {}".format(tmp_path / "o.png")
    assert cv2.imread(str(tmp_path / "o.png")).shape == (60, 80, 3)
    for i in range(2):
        cv2.imwrite(str(image.parent / "more{}.png".format(i)), rng_frame(80, 60, seed=i))
    out = str(tmp_path / "outdir") + "/"
    r = run_cli("segment", "--model", model, image.parent, out)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "wrote 3 images into " + out
    assert sorted(os.listdir(out)) == ["img.jpg", "more0.png", "more1.png"]
    pattern = str(tmp_path / "p_%03d.jpg")
    r = run_cli("segment", "--model", model, image.parent, pattern)
    assert r.stdout.splitlines()[-1] == "wrote 3 images as " + pattern
    assert os.path.isfile(pattern % 2) and not os.path.exists(pattern % 3)
    r = run_cli("segment", "--quiet", "--model", model, image, tmp_path / "q.png")
    assert r.returncode == 0 and "wrote" not in r.stdout and os.path.isfile(str(tmp_path / "q.png"))


# ---- item 9: outputs that cannot be written, inputs that cannot be read -----------------
@pytest.mark.skipif(not LINUX, reason="needs Linux's /proc and /sys")
@pytest.mark.parametrize("out, folder", [
    ("/proc/x.jpg", "/proc"), ("/sys/x.jpg", "/sys"), ("/proc/x.mp4", "/proc"),
    ("/sys/x.mp4", "/sys"), ("/sys/o_%03d.png", "/sys"), ("/proc/outdir/", "/proc/outdir"),
])
def test_output_into_proc_or_sys_is_one_line(model, image, out, folder):
    # as root os.access() says yes to /proc and /sys; creating a file there says no
    last = _one_line_error(run_cli("segment", "--model", model, image, out))
    assert folder in last and "folder" in last and "fix: write into a folder" in last


@pytest.mark.skipif(not LINUX, reason="needs /proc/self/mem and mkfifo")
def test_unreadable_inputs_are_one_line(model, tmp_path):
    mem = tmp_path / "mem.jpg"
    os.symlink("/proc/self/mem", str(mem))          # a read gives EIO, for root too
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(str(fifo))                            # reading it would wait forever
    broken = tmp_path / "gone.jpg"
    os.symlink(str(tmp_path / "nowhere.jpg"), str(broken))
    for path, words in [(mem, "cannot read it: Input/output error"),
                        (fifo, "not a regular file"), ("/dev/zero", "not a regular file"),
                        (broken, "no such file (a broken link)")]:
        with pytest.raises(JetsegError) as e:
            read_image(path)
        assert str(path) in str(e.value) and words in str(e.value) and e.value.fix
    last = _one_line_error(run_cli("segment", "--model", model, mem, tmp_path / "o.jpg"))
    assert str(mem) in last and "Input/output error" in last
    assert not (tmp_path / "o.jpg").exists()


# ---- item 15: a folder with bad files ----------------------------------------------------
@pytest.mark.skipif(not LINUX, reason="needs /proc/self/mem")
def test_folder_with_bad_files_processes_the_rest(model, tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    for name in ("a.jpg", "c.jpg", "e.png"):
        cv2.imwrite(str(d / name), rng_frame(80, 60, seed=len(name)))
    (d / "b.jpg").write_text("not a picture")
    os.symlink("/proc/self/mem", str(d / "d.jpg"))
    out = tmp_path / "out"
    r = run_cli("segment", "--model", model, d, str(out) + "/")
    last = _one_line_error(r)
    assert "2 of 5 images could not be read and were skipped" in last and str(d) in last
    skipped = [line for line in r.stderr.splitlines() if "skipped: " in line]
    assert len(skipped) == 2
    assert str(d / "b.jpg") in skipped[0] and "not a readable image" in skipped[0]
    assert str(d / "d.jpg") in skipped[1] and "Input/output error" in skipped[1]
    # the good files, those after the bad ones too, were all written
    assert sorted(os.listdir(str(out))) == ["a.jpg", "c.jpg", "e.png"]
    assert "wrote 3 images into " + str(out) in r.stdout


def test_a_folder_of_only_bad_files_ends_even_when_looping(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    for name in ("x.jpg", "y.png"):
        (d / name).write_bytes(b"\x00" * 10)
    src = open_source(str(d), loop=-1)
    assert isinstance(src, ImageSource)
    assert list(src) == []                   # a pass that reads nothing ends the loop
    assert "2 of 2 images" in str(src.incomplete())


# ---- item 16: pixel limit read from the header ------------------------------------------
def _chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data +
            struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def _png(width, height, idat=b""):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)   # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) +
            _chunk(b"IEND", b""))


def _zero_png(path, side):
    """A valid side x side black PNG, a few hundred KB however big it decodes."""
    z = zlib.compressobj(9)
    row = b"\x00" * (1 + 3 * side)          # filter byte + RGB
    parts = [z.compress(row) for _ in range(side)] + [z.flush()]
    path.write_bytes(_png(side, side, b"".join(parts)))
    return path


def test_header_sizes_of_every_format_opencv_writes(tmp_path):
    img = rng_frame(53, 37)
    for ext, params in [(".png", []), (".jpg", []), (".bmp", []), (".tif", []),
                        (".ppm", []), (".webp", []), (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]),
                        (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])]:
        path = tmp_path / ("i" + ext)
        assert cv2.imwrite(str(path), img, params)
        assert tuple(image_size(path)) == (53, 37), (ext, params)
    cv2.imwrite(str(tmp_path / "g.pgm"), img[:, :, 0])
    assert tuple(image_size(tmp_path / "g.pgm")) == (53, 37)
    # a JPEG with a 60 KB EXIF block before its frame header (as cameras write)
    jpg = (tmp_path / "i.jpg").read_bytes()
    app1 = b"\xff\xe1" + struct.pack(">H", 60002) + b"Exif\x00\x00" + b"\x00" * 59994
    (tmp_path / "exif.jpg").write_bytes(jpg[:2] + app1 + jpg[2:])
    assert tuple(image_size(tmp_path / "exif.jpg")) == (53, 37)
    assert cv2.imread(str(tmp_path / "exif.jpg")).shape == (37, 53, 3)
    (tmp_path / "t.txt").write_text("hello")
    assert image_size(tmp_path / "t.txt") is None


def test_huge_images_are_refused_before_decoding(model, tmp_path, monkeypatch):
    claim = tmp_path / "claims.png"
    claim.write_bytes(_png(100000, 100000, zlib.compress(b"\x00" * 1000)))
    big = _zero_png(tmp_path / "zeros.png", 12000)          # 144 megapixels, 432 MB decoded
    assert big.stat().st_size < 2000000
    for path, size in [(claim, "100000x100000"), (big, "12000x12000")]:
        last = _one_line_error(run_cli("segment", "--model", model, path,
                                       tmp_path / "o.png"))
        assert str(path) in last and size in last and "over the limit of 64 megapixels" in last
        assert "--max-megapixels" in last and "JETSEG_MAX_MEGAPIXELS" in last
    # refused from the header: OpenCV's decoder is never reached
    monkeypatch.setattr(cv2, "imdecode", lambda *a: pytest.fail("decoded"))
    with pytest.raises(JetsegError, match="over the limit"):
        read_image(big)
    with pytest.raises(JetsegError, match="over the limit"):
        list(open_source(str(big)))


def test_pixel_limit_flag_environment_and_python_argument(model, tmp_path):
    small = tmp_path / "s.png"
    cv2.imwrite(str(small), rng_frame(100, 80))                 # 8000 pixels
    assert read_image(small, max_megapixels=0.008).shape == (80, 100, 3)
    with pytest.raises(JetsegError, match="over the limit of 0.0079 megapixels"):
        read_image(small, max_megapixels=0.0079)
    assert read_image(small, max_megapixels=0).shape == (80, 100, 3)   # 0: no limit
    with pytest.raises(JetsegError, match="over the limit"):
        list(open_source(str(small), max_megapixels=0.005))
    assert max_pixels() == 64 * 10 ** 6
    last = _one_line_error(run_cli("segment", "--model", model, "--max-megapixels", "0.005",
                                   small, tmp_path / "o.png"))
    assert "100x80" in last
    last = _one_line_error(run_cli("segment", "--model", model, small, tmp_path / "o.png",
                                   env={"JETSEG_MAX_MEGAPIXELS": "0.005"}))
    assert "over the limit of 0.005 megapixels" in last
    last = _one_line_error(run_cli("segment", "--model", model, small, tmp_path / "o.png",
                                   env={"JETSEG_MAX_MEGAPIXELS": "lots"}))
    assert "JETSEG_MAX_MEGAPIXELS 'lots' is not a number" in last
    r = run_cli("segment", "--model", model, "--max-megapixels", "0.01", small,
                tmp_path / "o.png", env={"JETSEG_MAX_MEGAPIXELS": "0.005"})   # the flag wins
    assert r.returncode == 0, r.stderr
    assert cv2.imread(str(tmp_path / "o.png")).shape == (80, 100, 3)


# ---- item 14: a video with damaged bytes in the middle ------------------------------------
def _h264_clip(path, frames=60, gop=10, size=(160, 120)):
    """An H.264 clip of noise (big frames, so damage hits few of them) with a keyframe every
    ``gop`` frames; skipped unless PyAV has an H.264 encoder."""
    av = pytest.importorskip("av")
    try:
        av.codec.Codec("libx264", "w")
    except Exception:
        pytest.skip("this PyAV has no libx264")
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        s.options = {"preset": "ultrafast", "keyint": str(gop), "min-keyint": str(gop),
                     "scenecut": "0"}
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(rng_frame(size[0], size[1], seed=i), format="bgr24")
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


def _damage(path, start=0.4, end=0.6):
    data = bytearray(path.read_bytes())
    a, b = int(len(data) * start), int(len(data) * end)
    data[a:b] = bytes(b - a)
    path.write_bytes(bytes(data))


def _decodable(path):
    """Frames PyAV decodes packet by packet, skipping what fails (an independent count)."""
    import av
    n = 0
    with av.open(str(path)) as c:
        for packet in c.demux(video=0):
            try:
                n += len(packet.decode())
            except av.error.FFmpegError:
                pass
    return n


@pytest.mark.parametrize("ext", [".mp4", ".mkv", ".avi"])
def test_damaged_video_is_read_past_the_damage(model, tmp_path, ext):
    """MP4 (read on after decoder errors) and Matroska (its demuxer steps over the damage: a
    jump in the timestamps) give the frames after the damage; FFmpeg's AVI demuxer finds none
    after it here, and the frames its index announces are counted as lost."""
    clip = _h264_clip(tmp_path / ("clip" + ext))
    if cv2.VideoCapture(str(clip)).get(cv2.CAP_PROP_FRAME_COUNT) <= 0:
        pytest.skip("this OpenCV cannot read {} files".format(ext))
    r = run_cli("segment", "--model", model, clip, tmp_path / "intact")
    assert r.returncode == 0 and "decoded" not in r.stderr, r.stderr
    assert len(os.listdir(str(tmp_path / "intact"))) == 60
    _damage(clip)
    r = run_cli("segment", "--model", model, clip, tmp_path / "out")
    last = _one_line_error(r)
    assert "[h264 @" not in r.stderr            # FFmpeg's own lines stay out (no --debug)
    written = sorted(os.listdir(str(tmp_path / "out")))
    lost = 60 - len(written)
    assert 0 < lost < 40 and "{} frame(s) could not be decoded".format(lost) in last
    assert str(clip) in last
    if ext != ".avi":
        assert "clip_00059.jpg" in written      # the frames past the damage were processed
    spans = [line for line in r.stderr.splitlines() if "could not be decoded (damaged?)" in line]
    assert spans and all(str(clip) in line for line in spans)
    assert "wrote {} images into".format(len(written)) in r.stdout
    if ext == ".mp4":       # MP4's index is intact: every packet that decodes is read
        assert len(written) == _decodable(clip)


def test_damaged_video_source_names_keep_frame_numbers(tmp_path):
    clip = _h264_clip(tmp_path / "d.mp4")
    _damage(clip)
    src = open_source(str(clip))
    names = [n for n, _ in src]
    assert len(names) + src.lost == 60 and src.lost > 0
    numbers = [int(n.rsplit("_", 1)[1]) for n in names]
    assert numbers == sorted(set(numbers)) and numbers[-1] == 59
    gap = [b - a for a, b in zip(numbers, numbers[1:]) if b - a > 1]
    assert sum(gap) - len(gap) == src.lost          # the gap in the names is what was lost


# ---- item 10: network names, FFmpeg's own lines, jetseg-camera's default ------------------
def test_unresolvable_stream_host_is_one_line(model):
    r = run_cli("segment", "--model", model, "rtsp://cam.invalid/stream")
    last = _one_line_error(r)
    assert "cannot resolve the host name 'cam.invalid'" in last
    assert r.stderr.strip() == last             # nothing from FFmpeg before it


def test_stream_that_refuses_says_so_without_ffmpeg_lines(model):
    uri = "rtsp://127.0.0.1:{}/stream".format(free_port())     # nobody listens there
    r = run_cli("segment", "--model", model, uri)
    last = _one_line_error(r)
    assert uri in last and "[tcp @" not in r.stderr and r.stderr.strip() == last


@pytest.mark.skipif(gstreamer_available(), reason="a CSI camera may really be there")
def test_camera_without_input_says_the_default_was_tried(model):
    import subprocess
    r = subprocess.run([sys.executable, "-m", "jetseg.cli.camera", "--engine", model,
                        "--headless"], capture_output=True, text=True, timeout=120,
                       cwd=str(ROOT))
    last = _one_line_error(r, prog="jetseg-camera")
    assert "no input given, so the default csi://0 (a CSI camera) was tried" in last
    for usual in ("/dev/video0", "rtsp://", ".mp4"):
        assert usual in last
