"""``jetseg segment``: images, folders, globs or a video in; overlays, masks, class-id PNGs or
a video out. It runs the same Pipeline as jetseg-camera (a file source loses no frame and
keeps their order) with the same --stats and --legend (see jetseg.cli.frontend). Without an
output it writes nothing and says so (a dry run: timings and --stats); with one it ends by
saying what it wrote where."""
from jetseg.cli.common import add_model_args, segmenter_from_args
from jetseg.cli.frontend import add_input_args
from jetseg.errors import log


def register(sub, common):
    s = sub.add_parser("segment", parents=[common], help="segment images, folders or videos",
                       description="Segment an image, a folder, a quoted glob or a video; "
                                   "write overlays, masks, class-id PNGs or a video.")
    add_model_args(s)
    s.add_argument("input", help="image, folder, quoted glob (\"imgs/*.jpg\") or video file")
    s.add_argument("output", nargs="?", help="image, folder, %%d pattern or .mp4/.avi "
                   "(none: nothing is written, only timings and --stats)")
    add_input_args(s)
    s.set_defaults(func=cmd_segment)


def cmd_segment(args):
    from jetseg.cli.frontend import open_pipeline, run_pipeline
    from jetseg.io.pipeline import Stats
    from jetseg.io.sources import open_source

    source = open_source(args.input, max_megapixels=args.max_megapixels)
    seg = segmenter_from_args(args)
    if not args.output:
        log.warning("no output given: nothing will be written (fix: name one after the input, "
                    "e.g. %s out.jpg, or a folder such as out/)", args.input)
    pipe, report = open_pipeline(args, seg, source, [args.output] if args.output else [])
    log.info("%r", seg)
    return run_pipeline(pipe, report, "jetseg", args, summary=Stats.brief)
