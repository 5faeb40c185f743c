"""Bring a model exported by an older jetseg up to the current graph conventions, in place
or to a new file, without the PyTorch checkpoint:

    python3 -m jetseg_export.upgrade engines/camvid.onnx [-o OUT.onnx] [--target trt8.5]

- the uint8 class map goes ArgMax -> Cast FLOAT -> Cast UINT8 (TensorRT casts to uint8 only
  from float: targets.Target.classes_cast_via); exact, class ids are small integers;
- the metadata says what its mIoU figures mean (jetseg.eval.metrics.MIOU_DEFINITION).

The graph is then checked against the target's TensorRT parser rules and written
atomically; nothing is written when a rule still fails.
"""
import argparse
import json

from jetseg.errors import JetsegError
from jetseg.eval.metrics import MIOU_DEFINITION


def route_classes_through_float(model):
    """Insert Cast(to=FLOAT) between ArgMax and a direct Cast to UINT8; returns the count."""
    from onnx import TensorProto, helper
    graph = model.graph
    producers = dict((o, n) for n in graph.node for o in n.output)
    changed = 0
    for i, node in enumerate(list(graph.node)):
        to = [a.i for a in node.attribute if a.name == "to"]
        src = producers.get(node.input[0]) if node.op_type == "Cast" else None
        if to != [TensorProto.UINT8] or src is None or src.op_type not in ("ArgMax", "ArgMin"):
            continue
        mid = node.input[0] + "_float32"
        cast = helper.make_node("Cast", [node.input[0]], [mid], to=TensorProto.FLOAT,
                                name=(node.name or "classes") + "_via_float")
        graph.node.insert(list(graph.node).index(node), cast)
        node.input[0] = mid
        changed += 1
    return changed


def upgrade(path, out=None, target=None):
    import onnx
    from jetseg.files import write_atomic
    from .targets import check_target
    model = onnx.load(str(path))
    meta = dict((p.key, p.value) for p in model.metadata_props)
    target = target or json.loads(meta.get("jetseg.target", '"trt8.5"'))
    casts = route_classes_through_float(model)
    facts = {}
    if any(k in meta for k in ("jetseg.miou", "jetseg.val_miou")) and \
            "jetseg.miou_definition" not in meta:
        facts["jetseg.miou_definition"] = json.dumps(MIOU_DEFINITION)
    for k, v in sorted(facts.items()):
        model.metadata_props.add(key=k, value=v)
    check_target(model, target, source=str(path))
    write_atomic(out or path, model.SerializeToString())
    return casts, sorted(facts)


def main(argv=None, prog="python3 -m jetseg_export.upgrade"):
    from jetseg.cli.common import run_guarded
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="a jetseg .onnx export")
    p.add_argument("-o", "--output", help="write here instead of replacing the model")
    p.add_argument("--target", help="check against this target (default: the model's own)")
    p.add_argument("--debug", action="store_true")

    def run(args):
        import os
        if not os.path.isfile(args.model):
            raise JetsegError("no such file", path=args.model, fix="check the model path")
        casts, keys = upgrade(args.model, args.output, args.target)
        print("{}: {} class-map cast(s) routed through float, metadata added: {}".format(
            args.output or args.model, casts, ", ".join(keys) or "none"))
        return 0
    return run_guarded(p, run, argv, prog=prog)


if __name__ == "__main__":
    import sys
    sys.exit(main())
