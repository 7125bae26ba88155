#!/usr/bin/env bash
# The GPU check on a bare CUDA machine without network (CPython 3.12 with torch, torchvision,
# OpenCV and pytest), from the repository root, the wheels of `make gpu-wheels` in .gpu-wheels/:
#
#     bash scripts/gpu_check.sh OUT
#
# installs the wheels into OUT/site (nothing else is touched), then with
# PYTHONPATH=OUT/site:<repository root> runs `pytest -m gpu` and the two GPU benchmarks, each
# with a time limit (6 minutes in all on one H100), and writes OUT/gpu_check.json (versions,
# device, each step's exit status, seconds and printed ratios) and OUT/gpu_check.md. Without
# CUDA the tests skip, the benchmarks are not run, both files say so, and it exits 0. Exits
# non-zero if a step that ran failed.
set -u
OUT=${1:?usage: bash scripts/gpu_check.sh OUT}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-$(command -v python3 || command -v python)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
STEPS="$OUT/steps.tsv"
: >"$STEPS"

# step NAME LIMIT_S CMD...: runs CMD with a time limit, its output in OUT/NAME.log.
step() {
    local name=$1 limit=$2 start status
    shift 2
    echo "== $name (limit ${limit} s): $*"
    start=$(date +%s%N)
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    status=$?
    tail -n 25 "$OUT/$name.log"
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$((($(date +%s%N) - start) / 1000000))" \
        "$limit" >>"$STEPS"
    echo "== $name: exit $status"
}

SITE="$OUT/site"
rm -rf "$SITE"
# The wheels are CPython 3.12's: another Python installs them for 3.12 (to check the set
# installs) but keeps its own packages on its path, since 3.12's binaries cannot load there.
if "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))'; then
    step install 45 "$PYTHON" -m pip --disable-pip-version-check install --no-index --no-deps \
        --target "$SITE" "$ROOT"/.gpu-wheels/*.whl
    export PYTHONPATH="$SITE:$ROOT"
else
    step install 45 "$PYTHON" -m pip --disable-pip-version-check install --no-index --no-deps \
        --python-version 3.12 --implementation cp --abi cp312 --only-binary=:all: \
        --ignore-requires-python \
        --target "$SITE" "$ROOT"/.gpu-wheels/*.whl
    export PYTHONPATH="$ROOT"
fi
export MPLBACKEND=Agg

cd "$ROOT"
step pytest 200 "$PYTHON" -m pytest -p no:cacheprovider -m gpu -q -rs tests
if "$PYTHON" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
    # Sized for well under their limits on one H100 (install + tests + these: 350 s at most).
    step bench_mask_head 45 "$PYTHON" benchmarks/bench_mask_head.py --device cuda \
        --classes 80 1203 --head-classes 80 1203 --losses bce dice --head-losses bce \
        --repeats 5 --head-repeats 5
    step bench_train_iter 60 "$PYTHON" benchmarks/bench_train_iter.py --device cuda \
        --losses bce dice --batches 4 --rounds 3
fi

"$PYTHON" - "$OUT" "$STEPS" "$(command -v "$PYTHON")" "$PYTHONPATH" <<'EOF'
"""OUT/gpu_check.json and OUT/gpu_check.md from the steps' records and logs."""
import json
import platform
from importlib import metadata
import re
import sys
from pathlib import Path

out, steps_file, python, path = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
versions = {"python": platform.python_version(), "executable": python, "PYTHONPATH": path}
device, cuda = "none: torch.cuda.is_available() is False", False
try:
    import torch

    versions["torch"] = torch.__version__
    versions["cuda"] = torch.version.cuda
    cuda = torch.cuda.is_available()
    if cuda:
        device = torch.cuda.get_device_name(0)
        versions["driver_devices"] = torch.cuda.device_count()
except ImportError as error:
    device = f"torch does not import: {error}"
for name in ("torchvision", "numpy", "cv2", "detectron2", "fvcore", "pycocotools",
             "faster_coco_eval", "shapely", "matplotlib"):
    try:
        module = __import__(name)
        versions[name] = getattr(module, "__version__", None) or metadata.version(name)
    except Exception as error:  # noqa: BLE001 - reported, not raised
        versions[name] = f"does not import: {error}"

# The benchmarks' goal lines: "  WHAT: ours / stock = R (goal <= G): met".
GOAL = re.compile(r"^\s+(.+?): (?:ours / stock = |speed-up )([0-9.]+) \(goal ([<>]=) ([0-9.]+)\)"
                  r": (met|NOT met)")
steps = []
for line in steps_file.read_text().splitlines():
    name, status, milliseconds, limit = line.split("\t")
    log = (out / f"{name}.log").read_text(errors="replace")
    record = {"step": name, "exit_status": int(status),
              "seconds": round(int(milliseconds) / 1000, 1),
              "limit_s": int(limit), "timed_out": int(status) == 124, "log": f"{name}.log"}
    ratios = [{"what": m[1], "value": float(m[2]), "goal": f"{m[3]} {m[4]}", "met": m[5] == "met"}
              for m in map(GOAL.match, log.splitlines()) if m]
    if ratios:
        record["ratios"] = ratios
    if name == "pytest":
        summary = [l for l in log.splitlines() if re.search(r"\d+ (passed|skipped|failed)", l)]
        record["summary"] = summary[-1].strip("= ") if summary else ""
    steps.append(record)
note = "" if cuda else ("No CUDA here: the gpu tests skip and the benchmarks are not run; "
                        "nothing was checked on a GPU.")
result = {"cuda": cuda, "device": device, "note": note, "versions": versions, "steps": steps,
          "all_exit_zero": all(s["exit_status"] == 0 for s in steps)}
(out / "gpu_check.json").write_text(json.dumps(result, indent=2) + "\n")

md = ["# GPU check", "", f"Device: {device}. torch {versions.get('torch')}, CUDA "
      f"{versions.get('cuda')}, Python {versions['python']}.", ""]
if note:
    md += [f"**{note}**", ""]
md += ["| step | exit | seconds | limit | result |", "|---|---|---|---|---|"]
for s in steps:
    result_text = s.get("summary", "")
    result_text += "; ".join(f"{r['what']}: {r['value']:g} ({r['goal']}, "
                             f"{'met' if r['met'] else 'NOT met'})" for r in s.get("ratios", []))
    md.append(f"| {s['step']} | {s['exit_status']}{' (timed out)' if s['timed_out'] else ''} "
              f"| {s['seconds']} | {s['limit_s']} | {result_text} |")
(out / "gpu_check.md").write_text("\n".join(md) + "\n")
print("\n".join(md))
sys.exit(0 if result["all_exit_zero"] else 1)
EOF
