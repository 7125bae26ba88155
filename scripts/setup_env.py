#!/usr/bin/env python3
"""Set up `.venv`: torch, detectron2 and noisy_mask (editable, with its test extras).

Run as `python3 scripts/setup_env.py` (the Makefile does so when `.venv` is not ready).

Idempotent: every step checks before it installs, so a second run only verifies. Safe to
interrupt: `.venv` is marked ready only after the last step, and downloaded or rewritten files
are moved into place only when complete.

detectron2 is not on PyPI. The routes, in order:
  1. keep a detectron2 that already imports in `.venv`;
  2. build upstream from source (`pip install git+...`), as users with internet access do;
  3. otherwise, PyPI's `sal-detectron2` wheel: upstream detectron2's Python sources with a
     CUDA-only `_C` binary and a cp310 tag. It is checked against a known sha256, rewritten as a
     pure-Python `py3-none-any` wheel without `detectron2/_C*` and its top-level `tools/` package,
     and installed. detectron2 then runs in pure-Python mode (no deformable convolution, rotated
     boxes or C++ COCO evaluator; Mask R-CNN trains and evaluates).
"""
import base64
import csv
import hashlib
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
READY_STAMP = VENV / ".noisy-mask-ready"
CACHE = ROOT / ".cache" / "setup"

TORCH_REQUIREMENTS = ["torch==2.14.1", "torchvision==0.29.1"]
DETECTRON2_GIT = "git+https://github.com/facebookresearch/detectron2.git"
DETECTRON2_GIT_TIMEOUT_S = 3600  # a real build of the C++/CUDA ops takes minutes
FALLBACK_NAME, FALLBACK_VERSION = "sal-detectron2", "0.7.2"
FALLBACK_WHEEL = "sal_detectron2-0.7.2-cp310-none-any.whl"
FALLBACK_SHA256 = "491af0c7f79bdb2d178e46f6cb16a97c4ac968d45c41ea3f6b6435d59bbee561"
PURE_WHEEL = "sal_detectron2-0.7.2-py3-none-any.whl"
# Its model zoo imports pkg_resources (gone in setuptools 81); newer fvcore/iopath break it.
FALLBACK_COMPANIONS = ["fvcore<0.1.6", "iopath<0.1.10", "setuptools<81"]


def log(message: str) -> None:
    print(f"[setup] {message}", flush=True)


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    log("$ " + " ".join(str(c) for c in cmd))
    return subprocess.run([str(c) for c in cmd], **kwargs)


def pip(*args, python: Path = VENV_PYTHON, **kwargs) -> subprocess.CompletedProcess:
    return run([python, "-m", "pip", "--disable-pip-version-check", *args], **kwargs)


def venv_imports(code: str) -> bool:
    result = subprocess.run(
        [str(VENV_PYTHON), "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return result.returncode == 0


def ensure_venv() -> None:
    if VENV_PYTHON.exists():
        return
    run([sys.executable, "-m", "venv", VENV], check=True)


def ensure_torch() -> None:
    versions = "import torch, torchvision as tv; assert (torch.__version__.split('+')[0], "
    versions += "tv.__version__.split('+')[0]) == ('2.14.1', '0.29.1')"
    if venv_imports(versions):
        log("torch 2.14.1 and torchvision 0.29.1 present")
        return
    pip("install", *TORCH_REQUIREMENTS, check=True)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def is_dropped(name: str) -> bool:
    """The CUDA-only extension and the top-level `tools` package (a name too generic to own)."""
    return name.startswith("detectron2/_C") or name.startswith("tools/")


def rewrite_as_pure_wheel(source: Path, target: Path) -> None:
    """Write `source` as a py3-none-any wheel without the binary and `tools/`, with a new RECORD."""
    partial = target.with_suffix(".partial")
    records = []
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as dst:
        record_name = next(n for n in src.namelist() if n.endswith(".dist-info/RECORD"))
        for info in src.infolist():
            name = info.filename
            if name == record_name or is_dropped(name) or name.endswith("/"):
                continue
            data = src.read(info)
            if name.endswith(".dist-info/WHEEL"):
                lines = data.decode().splitlines()
                lines = [line for line in lines if not line.startswith(("Tag:", "Root-Is-Purelib:"))]
                lines += ["Root-Is-Purelib: true", "Tag: py3-none-any"]
                data = ("\n".join(lines) + "\n").encode()
            elif name.endswith(".dist-info/top_level.txt"):
                data = b"detectron2\n"
            dst.writestr(name, data)
            records.append((name, record_hash(data), str(len(data))))
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(records + [(record_name, "", "")])
        dst.writestr(record_name, buffer.getvalue())
    os.replace(partial, target)


def pure_detectron2_wheel(python: Path = VENV_PYTHON) -> Path:
    """The fallback detectron2 as a pure-Python wheel, `.cache/setup/PURE_WHEEL`: PyPI's wheel
    downloaded by `python`'s pip (once), its sha256 checked, rewritten without the binary.
    Installs nothing (scripts/gpu_wheels.py ships the same wheel)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    original = CACHE / FALLBACK_WHEEL
    if not original.exists() or sha256_of(original) != FALLBACK_SHA256:
        download_dir = CACHE / "download"
        download_dir.mkdir(exist_ok=True)
        pip(
            "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.10",
            "--dest", download_dir, f"{FALLBACK_NAME}=={FALLBACK_VERSION}", check=True,
            python=python,
        )
        os.replace(download_dir / FALLBACK_WHEEL, original)
    actual = sha256_of(original)
    if actual != FALLBACK_SHA256:
        original.unlink()
        sys.exit(f"[setup] {FALLBACK_WHEEL}: sha256 {actual} != expected {FALLBACK_SHA256}")
    pure = CACHE / PURE_WHEEL
    rewrite_as_pure_wheel(original, pure)
    return pure


def install_fallback_detectron2() -> None:
    pip("install", pure_detectron2_wheel(), *FALLBACK_COMPANIONS, check=True)


def ensure_detectron2() -> None:
    if venv_imports("import detectron2"):
        log("route: detectron2 already importable, kept")
        return
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
    try:
        built = pip(
            "install", "--no-build-isolation", DETECTRON2_GIT, env=env,
            timeout=DETECTRON2_GIT_TIMEOUT_S,
        ).returncode == 0
    except subprocess.TimeoutExpired:
        built = False
    if built and venv_imports("import detectron2"):
        log("route: detectron2 built from upstream source")
        return
    log(f"upstream source unreachable: falling back to PyPI's {FALLBACK_NAME}=={FALLBACK_VERSION}")
    install_fallback_detectron2()
    if not venv_imports("import detectron2.modeling, detectron2.engine"):
        sys.exit("[setup] detectron2 does not import after installing the fallback wheel")
    log(f"route: {FALLBACK_NAME}=={FALLBACK_VERSION} as a pure-Python wheel (no detectron2._C)")


def keep_installed(names) -> Path:
    """A pip constraints file pinning what is installed, so later steps never replace it."""
    script = (
        "import importlib.metadata as m, sys\n"
        "for n in sys.argv[1:]:\n"
        "    try: print(f'{n}=={m.version(n)}')\n"
        "    except m.PackageNotFoundError: pass\n"
    )
    pins = subprocess.run(
        [str(VENV_PYTHON), "-c", script, *names], capture_output=True, text=True, check=True
    ).stdout
    path = CACHE / "keep-installed.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(pins)
    return path


def ensure_project() -> None:
    constraints = keep_installed(["torch", "torchvision", "numpy", FALLBACK_NAME, "detectron2"])
    pip("install", "-c", constraints, "-e", f"{ROOT}[test]", check=True)


def inputs_digest() -> str:
    """What the stamp vouches for: a change to the set-up or the dependencies redoes the steps."""
    digest = hashlib.sha256()
    for path in (ROOT / "setup.py", Path(__file__).resolve()):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def main() -> None:
    digest = inputs_digest()
    ready = READY_STAMP.exists() and READY_STAMP.read_text().strip() == digest
    if ready and venv_imports("import noisy_mask, detectron2, torch"):
        log(f"{VENV} is ready")
        return
    READY_STAMP.unlink(missing_ok=True)
    ensure_venv()
    ensure_torch()
    ensure_detectron2()
    ensure_project()
    READY_STAMP.write_text(digest + "\n")
    log(f"done: {VENV} is ready")


if __name__ == "__main__":
    main()
