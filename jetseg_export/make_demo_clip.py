"""Make the bundled sample clip ``samples/camvid-demo.mp4`` from consecutive CamVid val frames.

    python -m jetseg_export.make_demo_clip --dataset ../shared/datasets/camvid -o samples/camvid-demo.mp4

The CamVid val frames of sequence 0016E5 are consecutive in the video (every 2nd frame of
the 30 Hz recording), so a run of them plays as a short, slightly sped-up drive. Frames are
written as they are (480x360) with OpenCV's ``mp4v`` codec.
"""
import argparse
import os
import sys

DEFAULT_FIRST = "0016E5_08019.jpg"      # cars passing, then pedestrians and a cyclist


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m jetseg_export.make_demo_clip",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True, help="CamVid folder (with val/)")
    ap.add_argument("-o", "--output", default="samples/camvid-demo.mp4")
    ap.add_argument("--first", default=DEFAULT_FIRST, help="first val frame of the clip")
    ap.add_argument("--frames", type=int, default=50, help="how many consecutive val frames")
    ap.add_argument("--fps", type=float, default=10.0)
    args = ap.parse_args(argv)

    import cv2
    val = os.path.join(args.dataset, "val")
    names = sorted(f for f in os.listdir(val) if f.endswith(".jpg"))
    if args.first not in names:
        raise SystemExit("{} is not in {}".format(args.first, val))
    i = names.index(args.first)
    chosen = names[i:i + args.frames]
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    tmp = args.output + ".part.mp4"
    writer = None
    for name in chosen:
        frame = cv2.imread(os.path.join(val, name))
        if frame is None:
            raise SystemExit("cannot read " + os.path.join(val, name))
        if writer is None:
            h, w = frame.shape[:2]
            writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), args.fps, (w, h))
            if not writer.isOpened():
                raise SystemExit("OpenCV cannot write mp4v video to " + tmp)
        writer.write(frame)
    writer.release()
    os.replace(tmp, args.output)
    print("wrote {}: {} frames {} .. {} at {} fps, {:.0f} kB".format(
        args.output, len(chosen), chosen[0], chosen[-1], args.fps,
        os.path.getsize(args.output) / 1024.0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
