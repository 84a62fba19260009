"""Resource limits. Exceeding one is a fail-closed finding (MLS-GEN-*), never a crash."""

from __future__ import annotations

from dataclasses import dataclass

GiB = 1 << 30
MiB = 1 << 20


@dataclass(frozen=True)
class Limits:
    archive_depth: int = 8
    archive_members: int = 100_000
    member_size: int = 64 * GiB
    compression_ratio: float = 200.0
    # Total bytes a single top-level artifact may expand to through all nested containers.
    total_expanded: int = 256 * GiB
    # Pickle: opcodes are unbounded; the VM's memo and stack are not.
    pickle_memo_entries: int = 1_000_000
    pickle_stack_depth: int = 1_000_000
    pickle_max_findings: int = 200
    # Bytes of a decompressed member kept in memory before it spills to a temporary file.
    spool_in_memory: int = 16 * MiB
    # Headers and metadata blobs parsed into memory (safetensors JSON, npy header, GGUF KV...).
    header_bytes: int = 100 * MiB
    # Recursion in structured data (JSON configs, protobuf nesting, Jinja ASTs).
    nesting_depth: int = 64
    # ONNX: the protobuf is parsed whole (protobuf caps a message at 2 GiB anyway); larger files
    # are reported, not loaded. Node visits bound the graph walk and the dataflow analysis
    # (model-local function bodies count once per call site).
    onnx_model_bytes: int = 2 * GiB
    onnx_nodes: int = 1_000_000
