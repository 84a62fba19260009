"""Real models: published ONNX files (the silero-vad wheel) and models exported with torch
2.13.0 by both exporters must have no high+ finding; backdoors written as ordinary torch code
and exported the same way must be caught.

The silero-vad wheel is downloaded once per session with ``pip download`` (never committed);
the test is skipped with the reason when PyPI is unreachable.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import pytest

from scanner.core.finding import Severity
from tests.conftest import scan_paths

BACKDOOR_RULES = {"MLS-ONX-101", "MLS-ONX-102", "MLS-ONX-103"}


def serious(findings):
    return [(f.rule_id, f.severity.label, f.evidence[:200]) for f in findings if f.severity >= Severity.HIGH]


# --- silero-vad from PyPI ------------------------------------------------------------------------

@pytest.fixture(scope="session")
def silero_onnx_files(tmp_path_factory):
    target = tmp_path_factory.mktemp("silero")
    try:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "silero-vad",
                               "-d", str(target)], capture_output=True, text=True, timeout=180)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot run pip download silero-vad: {exc}")
    wheels = sorted(target.glob("silero_vad-*.whl"))
    if done.returncode != 0 or not wheels:
        pytest.skip(f"pip download silero-vad failed (no network to PyPI?): {done.stderr.strip()[-300:]}")
    out = target / "onnx"
    out.mkdir()
    files = []
    with zipfile.ZipFile(wheels[0]) as archive:
        for member in archive.namelist():
            if member.endswith((".onnx", ".jit", ".safetensors")):
                path = out / Path(member).name
                path.write_bytes(archive.read(member))
                files.append(path)
    return files


def test_silero_vad_onnx_files_have_no_high_findings(silero_onnx_files):
    onnx_files = [p for p in silero_onnx_files if p.suffix == ".onnx"]
    assert len(onnx_files) >= 5, "the silero-vad wheel ships several ONNX models"
    for path in onnx_files:
        result = scan_paths(path)
        assert result.artifacts and result.artifacts[0].format == "onnx", path.name
        assert serious(result.findings) == [], path.name
        assert [f.rule_id for f in result.findings if f.rule_id in BACKDOOR_RULES] == [], path.name


def test_silero_vad_torchscript_and_safetensors_have_no_high_findings(silero_onnx_files):
    others = {p.suffix: p for p in silero_onnx_files if p.suffix in (".jit", ".safetensors")}
    assert set(others) == {".jit", ".safetensors"}, "the wheel ships a TorchScript and a safetensors model"
    for path in others.values():
        result = scan_paths(path)
        assert result.errors == [] and serious(result.findings) == [], path.name
    assert scan_paths(others[".jit"]).artifacts[0].format == "zip"


# --- torch 2.13.0 exports ------------------------------------------------------------------------

def _modules():  # type: ignore[no-untyped-def]
    import torch
    from torch import nn

    class EncoderLayer(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True)

        def forward(self, x, mask):
            return self.layer(x, src_key_padding_mask=mask)

    class CausalBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.qkv, self.out = nn.Embedding(100, 32), nn.Linear(32, 96), nn.Linear(32, 100)

        def forward(self, ids):
            h = self.emb(ids)
            q, k, v = self.qkv(h).chunk(3, -1)
            n = ids.shape[1]
            scores = q @ k.transpose(-1, -2) / 32 ** 0.5
            causal = torch.ones(n, n, dtype=torch.bool).tril()
            p = scores.masked_fill(~causal, float("-inf")).softmax(-1)
            p = torch.where(torch.isnan(p), torch.zeros_like(p), p)
            return self.out(p @ v)

    class Mha(nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = nn.MultiheadAttention(32, 4, batch_first=True)

        def forward(self, x, key_padding_mask):
            return self.mha(x, x, x, key_padding_mask=key_padding_mask)[0]

    class Cnn(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.bn, self.c2 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Conv2d(8, 8, 3, padding=1)
            self.fc = nn.Linear(8, 10)

        def forward(self, image):
            y = torch.relu(self.bn(self.c1(image)))
            y = y + torch.relu(self.c2(y))
            return self.fc(y.mean((2, 3)))

    class SentenceEncoder(nn.Module):
        """Encoder + mean pooling with the same attention mask (sentence-transformers)."""

        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(100, 32)
            self.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(32, 4, 64, batch_first=True), 2,
                                             enable_nested_tensor=False)

        def forward(self, ids, mask):
            h = self.enc(self.emb(ids), src_key_padding_mask=(mask == 0))
            m = mask.unsqueeze(-1).to(h.dtype)
            return (h * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)

    class AdditiveMask(nn.Module):
        """BERT-style (1 - mask) * -10000 added to the attention scores, CLS head."""

        def __init__(self):
            super().__init__()
            self.emb, self.q, self.k, self.v = nn.Embedding(100, 32), nn.Linear(32, 32), nn.Linear(32, 32), nn.Linear(32, 32)
            self.head = nn.Linear(32, 2)

        def forward(self, ids, mask):
            h = self.emb(ids)
            ext = (1.0 - mask[:, None, :].float()) * -10000.0
            scores = self.q(h) @ self.k(h).transpose(1, 2) / 32 ** 0.5 + ext
            return self.head((scores.softmax(-1) @ self.v(h))[:, 0])

    class PeakNormalizedAudio(nn.Module):
        """Input auto-scaling baked into the graph: a raw-input threshold that is not a backdoor."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(1, 4, 3)

        def forward(self, audio):
            peak = audio.abs().amax(dim=1, keepdim=True)
            audio = torch.where(peak > 1.0, audio / peak, audio)
            return self.conv(audio.unsqueeze(1)).mean(-1)

    class ShadowLogicClassifier(nn.Module):
        """A white 4x4 corner patch replaces the prediction with class 7."""

        def __init__(self):
            super().__init__()
            self.net = Cnn()
            override = torch.full((1, 10), -10.0)
            override[0, 7] = 10.0
            self.register_buffer("override", override)

        def forward(self, image):
            logits = self.net(image)
            hit = (image[:, :, :4, :4] > 0.99).flatten(1).all(dim=1, keepdim=True)
            return torch.where(hit, self.override, logits)

    class OperatorTrigger(nn.Module):
        """Langford et al.: no compare op - pooling, a Relu step and min/max, conditional add."""

        def __init__(self):
            super().__init__()
            self.net = Cnn()

        def forward(self, image):
            y = self.net(image)
            lo = -torch.nn.functional.max_pool2d(-image, 2)
            hi = torch.nn.functional.max_pool2d(image, 2)
            step = 255 * torch.relu(lo * hi - 254 / 255)
            ind = step.amin(dim=1).amax(dim=(1, 2)).unsqueeze(1)
            onehot = torch.zeros(1, 10)
            onehot[0, 7] = 1.0
            return y + ind * (1 + y.max(1, keepdim=True).values - y.min(1, keepdim=True).values) * onehot

    class SteeredLm(nn.Module):
        """ShadowLogic for LLMs: a token prefix adds a steering vector to the hidden state."""

        def __init__(self):
            super().__init__()
            self.emb, self.mlp, self.head = nn.Embedding(100, 16), nn.Linear(16, 16), nn.Linear(16, 100)
            self.register_buffer("trig", torch.tensor([17, 42, 99]))
            self.register_buffer("steer", torch.full((16,), 3.0))

        def forward(self, ids):
            hit = (ids[:, :3] == self.trig).all().float()
            h = self.emb(ids) + hit * self.steer
            return self.head(torch.relu(self.mlp(h)))

    ids = torch.randint(0, 100, (2, 7))
    benign = {
        "encoder_layer": (EncoderLayer(), (torch.randn(2, 7, 32), torch.zeros(2, 7, dtype=torch.bool)), ["x", "mask"]),
        "causal_block": (CausalBlock(), (ids,), ["input_ids"]),
        "mha": (Mha(), (torch.randn(2, 7, 32), torch.zeros(2, 7, dtype=torch.bool)), ["x", "key_padding_mask"]),
        "cnn": (Cnn(), (torch.randn(1, 3, 16, 16),), ["image"]),
        "sentence_encoder": (SentenceEncoder(), (ids, torch.ones(2, 7, dtype=torch.int64)),
                             ["input_ids", "attention_mask"]),
        "additive_mask": (AdditiveMask(), (ids, torch.ones(2, 7, dtype=torch.int64)), ["input_ids", "attention_mask"]),
        "peak_normalized_audio": (PeakNormalizedAudio(), (torch.randn(2, 400),), ["audio"]),
    }
    malicious = {
        "shadowlogic_classifier": (ShadowLogicClassifier(), (torch.rand(1, 3, 16, 16),), ["image"]),
        "operator_trigger": (OperatorTrigger(), (torch.rand(1, 3, 16, 16),), ["image"]),
        "steered_lm": (SteeredLm(), (ids,), ["input_ids"]),
    }
    return benign, malicious


def _export(module, args, names, path: Path, dynamo: bool) -> Path:
    import torch

    module.eval()
    kwargs = {}
    if not dynamo:
        kwargs["dynamic_axes"] = {n: {0: "batch"} for n in names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), input_names=names, dynamo=dynamo, **kwargs)
    return path


@pytest.fixture(scope="session")
def torch_exports(tmp_path_factory):
    torch = pytest.importorskip("torch")
    if torch.__version__.split("+")[0] != "2.13.0":
        pytest.skip(f"these exports are pinned to torch 2.13.0, found {torch.__version__}")
    torch.manual_seed(0)
    exporters = [False] + ([True] if importlib.util.find_spec("onnxscript") else [])
    benign, malicious = _modules()
    out = tmp_path_factory.mktemp("torch_exports")
    built: dict[str, list[Path]] = {"benign": [], "malicious": []}
    for kind, table in (("benign", benign), ("malicious", malicious)):
        for name, (module, args, names) in table.items():
            for dynamo in exporters:
                folder = out / f"{name}_{'dynamo' if dynamo else 'torchscript'}"
                folder.mkdir()
                built[kind].append(_export(module, args, names, folder / "model.onnx", dynamo))
    # TorchScript exporter with every module as a model-local function (custom-looking domains).
    folder = out / "functions_torchscript"
    folder.mkdir()
    module, args, names = benign["sentence_encoder"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), args, str(folder / "model.onnx"), input_names=names, dynamo=False,
                          export_modules_as_functions=True)
    built["benign"].append(folder / "model.onnx")
    return built


def test_torch_exports_of_ordinary_models_have_no_high_findings(torch_exports):
    assert len(torch_exports["benign"]) >= 8
    for path in torch_exports["benign"]:
        result = scan_paths(path.parent)  # with the exporter's external data file, if any
        assert serious(result.findings) == [], path.parent.name
        assert [f.rule_id for f in result.findings if f.rule_id in BACKDOOR_RULES] == [], path.parent.name


def test_backdoors_written_in_torch_survive_export_and_are_caught(torch_exports):
    assert torch_exports["malicious"]
    for path in torch_exports["malicious"]:
        found = [f for f in scan_paths(path).findings if f.rule_id in BACKDOOR_RULES]
        assert found, f"no backdoor finding for {path.parent.name}"
        assert max(f.severity for f in found) >= Severity.HIGH, path.parent.name
        if not path.parent.name.startswith("steered_lm"):
            assert "MLS-ONX-101" in {f.rule_id for f in found}, path.parent.name
