"""Legacy model-zoo manifests are imported and graded; hashing agrees with standard tools."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integrity_helpers import cli, ids, make_model, verify_json


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_hashing_matches_coreutils_and_hashlib(tmp_path: Path) -> None:
    from scanner.integrity.hashing import hash_file

    path = tmp_path / "big.bin"
    path.write_bytes(bytes(range(256)) * 20_000 + b"tail")  # > several 1 MiB chunks
    digests = hash_file(path, ["sha256", "sha512", "blake2b", "md5", "git-sha1"])
    data = path.read_bytes()
    assert digests["sha512"] == hashlib.sha512(data).hexdigest()
    assert digests["blake2b"] == hashlib.blake2b(data).hexdigest()
    assert digests["md5"] == hashlib.md5(data).hexdigest()
    if shutil.which("sha256sum"):
        out = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True)
        assert digests["sha256"] == out.stdout.split()[0]
    if shutil.which("git"):
        out = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True,
                             check=True)
        assert digests["git-sha1"] == out.stdout.strip()


def test_sha256sums_and_bsd_tags(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m")
    lines = [f"{sha256(p)}  {p.relative_to(model).as_posix()}" for p in sorted(model.rglob("*"))
             if p.is_file()]
    (tmp_path / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    code, report = verify_json(model, "--manifest", tmp_path / "SHA256SUMS")
    assert code == 0 and ids(report) == {"MLS-INT-010": "info"}
    bsd = [f"SHA256 ({p.relative_to(model).as_posix()}) = {sha256(p)}"
           for p in sorted(model.rglob("*")) if p.is_file()]
    (tmp_path / "CHECKSUMS").write_text("\n".join(bsd) + "\n")
    code, report = verify_json(model, "--manifest", tmp_path / "CHECKSUMS")
    assert code == 0 and "MLS-INT-010" in ids(report)
    (model / "config.json").write_text("{}")
    code, report = verify_json(model, "--manifest", tmp_path / "SHA256SUMS")
    assert code == 1 and ids(report)["MLS-INT-001"] == "critical"


def test_manifest_inside_the_model_is_discovered_and_excluded(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m")
    sums = cli("manifest", "create", model, "--format", "sha256sum").stdout
    (model / "SHA256SUMS").write_text(sums)
    code, report = verify_json(model)
    assert code == 0, report["findings"]
    assert report["metadata"]["integrity"]["manifest"]["kind"] == "checksums"


def test_sha1_sums_are_weak_never_verified(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m")
    lines = [f"{hashlib.sha1(p.read_bytes()).hexdigest()} *{p.relative_to(model).as_posix()}"
             for p in sorted(model.rglob("*")) if p.is_file()]
    (tmp_path / "SHA1SUMS").write_text("\n".join(lines) + "\n")
    code, report = verify_json(model, "--manifest", tmp_path / "SHA1SUMS")
    assert code == 0
    found = ids(report)
    assert found["MLS-INT-005"] == "low" and "MLS-INT-010" not in found
    assert {f["status"] for f in report["metadata"]["integrity"]["files"]} == {"weak-match"}


def test_caffe_model_zoo_readme(tmp_path: Path) -> None:
    model = tmp_path / "bvlc_alexnet"
    model.mkdir()
    weights = model / "bvlc_alexnet.caffemodel"
    weights.write_bytes(b"\x0a\x07AlexNet" + bytes(1000))
    (model / "deploy.prototxt").write_text('name: "AlexNet"\n')
    readme = model / "readme.md"
    readme.write_text(
        "---\nname: BAIR/BVLC AlexNet Model\ncaffemodel: bvlc_alexnet.caffemodel\n"
        "caffemodel_url: http://dl.caffe.berkeleyvision.org/bvlc_alexnet.caffemodel\n"
        "license: unrestricted\n"
        f"sha1: {hashlib.sha1(weights.read_bytes()).hexdigest()}\n"
        "caffe_commit: 709dc15af4a06bebda027c1eb2b3f3e3375d5077\n---\n\nThis model is...\n")
    code, report = verify_json(model, "--manifest", readme)
    assert code == 0 and ids(report) == {"MLS-INT-005": "low"}
    code, report = verify_json(model)  # discovered
    assert report["metadata"]["integrity"]["manifest"]["kind"] == "caffe-readme"
    weights.write_bytes(b"tampered")
    code, report = verify_json(model, "--manifest", readme)
    assert code == 1 and ids(report)["MLS-INT-001"] == "critical"


def test_torch_hub_filename_prefix_is_partial(tmp_path: Path) -> None:
    data = b"PK\x03\x04 pretend checkpoint" + bytes(4096)
    digest = hashlib.sha256(data).hexdigest()
    good = tmp_path / f"resnet18-{digest[:8]}.pth"
    good.write_bytes(data)
    code, report = verify_json(good)
    partial = [f for f in report["findings"] if f["rule_id"] == "MLS-INT-006"]
    assert code == 0 and partial and partial[0]["severity"] == "medium"
    assert digest in partial[0]["evidence"], "the full digest is shown so the user can pin it"
    bad = tmp_path / "resnet18-00000000.pth"
    bad.write_bytes(data)
    code, report = verify_json(bad)
    assert code == 1 and "MLS-INT-001" in ids(report)
    empty_prefix = tmp_path / "x-.pth"
    empty_prefix.write_bytes(data)
    result = cli("verify", empty_prefix)
    assert result.exit_code == 2, "an empty prefix must never count as a digest"


def test_keras_file_hash_md5_and_sha256(tmp_path: Path) -> None:
    model = tmp_path / "keras"
    model.mkdir()
    old = model / "resnet50_weights_tf_dim_ordering_tf_kernels.h5"
    new = model / "convnext_tiny.h5"
    old.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    new.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))
    hashes = {old.name: hashlib.md5(old.read_bytes()).hexdigest(),
              new.name: [hashlib.sha256(new.read_bytes()).hexdigest()]}
    (tmp_path / "hashes.json").write_text(json.dumps(hashes))
    code, report = verify_json(model, "--manifest", tmp_path / "hashes.json")
    statuses = {f["path"]: (f["status"], f["algorithm"]) for f in report["metadata"]["integrity"]["files"]}
    assert statuses[old.name] == ("weak-match", "md5")
    assert statuses[new.name] == ("match", "sha256")
    assert code == 0 and ids(report)["MLS-INT-005"] == "low"


def test_onnx_hub_manifest_matches_by_file_name(tmp_path: Path) -> None:
    model = tmp_path / "resnet"
    model.mkdir()
    onnx_file = model / "resnet50-v1-7.onnx"
    onnx_file.write_bytes(b"\x08\x07" + bytes(500))
    manifest = [
        {"model": "ResNet50", "model_path": "vision/classification/resnet/model/resnet50-v1-7.onnx",
         "onnx_version": "1.2.1", "opset_version": 7,
         "metadata": {"model_sha": sha256(onnx_file), "model_bytes": onnx_file.stat().st_size}},
        {"model": "SqueezeNet", "model_path": "vision/classification/squeezenet/model/sq.onnx",
         "metadata": {"model_sha": "ab" * 32, "model_bytes": 10}},
    ]
    (tmp_path / "ONNX_HUB_MANIFEST.json").write_text(json.dumps(manifest))
    code, report = verify_json(model, "--manifest", tmp_path / "ONNX_HUB_MANIFEST.json")
    assert code == 0 and ids(report) == {"MLS-INT-010": "info"}
    assert any("not checked" in n for n in report["metadata"]["integrity"]["notes"])
    with open(onnx_file, "ab") as handle:
        handle.write(b"x")
    code, report = verify_json(model, "--manifest", tmp_path / "ONNX_HUB_MANIFEST.json")
    assert code == 1 and "MLS-INT-001" in ids(report)


def test_hugging_face_tree_listing_and_lfs_pointers(tmp_path: Path) -> None:
    from scanner.integrity.hashing import hash_file

    model = make_model(tmp_path / "m")
    tree = []
    for path in sorted(model.rglob("*")):
        if path.is_file():
            rel = path.relative_to(model).as_posix()
            entry = {"type": "file", "path": rel, "size": path.stat().st_size,
                     "oid": hash_file(path, ["git-sha1"])["git-sha1"]}
            if path.suffix == ".safetensors":
                entry["lfs"] = {"oid": sha256(path), "size": path.stat().st_size, "pointerSize": 134}
            tree.append(entry)
    (tmp_path / "tree.json").write_text(json.dumps(tree))
    code, report = verify_json(model, "--manifest", tmp_path / "tree.json")
    statuses = {f["path"]: f["status"] for f in report["metadata"]["integrity"]["files"]}
    assert statuses["model.safetensors"] == "match"
    assert statuses["config.json"] == "weak-match", "git blob sha1 is graded weak"
    # a clone without git-lfs: the weights are a pointer file
    content = (model / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_text(
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(content).hexdigest()}\n"
        f"size {len(content)}\n")
    code, report = verify_json(model, "--manifest", tmp_path / "tree.json")
    assert code == 1
    assert ids(report)["MLS-INT-011"] == "high" and ids(report)["MLS-INT-001"] == "critical"
    # and the pointer itself works as a manifest for the real file
    pointer = tmp_path / "model.safetensors"
    shutil.copy(model / "model.safetensors", pointer)
    (model / "model.safetensors").write_bytes(content)
    code, report = verify_json(model, "--manifest", pointer)
    assert code == 0 and ids(report) == {"MLS-INT-010": "info"}


def test_duplicate_entries_are_reported(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m")
    digest = sha256(model / "config.json")
    (tmp_path / "SHA256SUMS").write_text(f"{digest}  config.json\n{'0' * 64}  config.json\n")
    code, report = verify_json(model, "--manifest", tmp_path / "SHA256SUMS")
    assert code == 1 and ids(report)["MLS-INT-012"] == "high"


@pytest.mark.parametrize("text", ["zz  file\n", f"{'a' * 63}  file\n", "SHA256 (x) = abc\n"])
def test_malformed_checksum_files_exit_2(tmp_path: Path, text: str) -> None:
    model = make_model(tmp_path / "m")
    (tmp_path / "SUMS").write_text(text)
    result = cli("verify", model, "--manifest", tmp_path / "SUMS")
    assert result.exit_code == 2
