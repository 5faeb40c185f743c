#!/usr/bin/env python3
"""How autopilot code consumes jetseg results at its own pace.

The camera loop runs in jetseg's threads at camera speed. The autopilot runs its own
control loop (here 10 Hz) and reads only the newest result: no backlog ever builds up, and
a result's ``latency_ms`` says how old its frame is (capture to result).

    python3 examples/stream_latest.py --engine engines/camvid.onnx samples/camvid-demo.mp4
    python3 examples/stream_latest.py --engine engines/camvid.onnx csi://0 --seconds 30
"""
import argparse
import time

import jetseg


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engine", required=True, help="model file")
    p.add_argument("source", nargs="?", default="csi://0")
    p.add_argument("--rate", type=float, default=10.0, help="control loop rate, Hz")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--class", dest="watch", default="Road", help="class to steer by")
    args = p.parse_args()

    stream = jetseg.stream(args.source, args.engine)
    last_id = None
    end = time.time() + args.seconds
    try:
        while time.time() < end:
            tick = time.time()
            res = stream.latest()                 # newest result, never blocks
            if res is None or res.frame_id == last_id:
                if not stream.running:
                    break                         # the source ended
            else:
                last_id = res.frame_id
                share = res.class_fractions().get(args.watch, 0.0)
                print("frame {:>5}  age {:6.1f} ms  {} {:5.1%}".format(
                    res.frame_id, res.latency_ms or 0.0, args.watch, share))
            time.sleep(max(0.0, 1.0 / args.rate - (time.time() - tick)))
    finally:
        stream.close()
    print(stream.stats.summary())


if __name__ == "__main__":
    main()
