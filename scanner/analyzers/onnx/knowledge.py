"""ONNX operator knowledge (domains, op lists, thresholds) loaded from ``signatures/onnx.toml``.

Keeping these lists as data means a new custom-op library, network operator or learned-op type
is a reviewable data change, not a code change.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from scanner.core.finding import Severity
from scanner.core.tomlcompat import load_toml


@dataclass(frozen=True)
class OpRule:
    """Operators matched by (domain, op_type) with a reason and the attributes worth quoting."""

    domains: frozenset[str]
    op_types: frozenset[str]
    why: str
    attributes: tuple[str, ...] = ()
    severity: Severity = Severity.HIGH

    def matches(self, domain: str, op_type: str) -> bool:
        return domain in self.domains and op_type in self.op_types


@dataclass(frozen=True)
class BackdoorKnowledge:
    learned_ops: frozenset[str]
    table_ops: frozenset[str]
    threshold_ops: frozenset[str]
    guard_ops: frozenset[str]
    shape_ops: frozenset[str]
    logic_combine_ops: frozenset[str]
    trigger_carry_ops: frozenset[str]
    arith_gates: frozenset[str]
    merge_ops: frozenset[str]
    gate_to_merge_hops: int
    merge_to_output_hops: int
    window_ops: frozenset[str]
    window_passthrough_ops: frozenset[str]
    window_min_input_elements: int
    window_max_elements: int
    window_max_fraction: float
    window_merge_to_output_hops: int


@dataclass(frozen=True)
class OnnxKnowledge:
    standard_domains: frozenset[str]
    runtime_domains: frozenset[str]
    library_domains: dict[str, str]
    network_ops: tuple[OpRule, ...]
    python_ops: tuple[OpRule, ...]
    ep_context: OpRule
    ep_path_attribute: str
    ep_mode_attribute: str
    external_keys: frozenset[str]
    device_names: frozenset[str]
    max_location_length: int
    checksum_algorithm: str
    memory_bomb_elements: int
    memory_bomb_scale: float
    max_graph_depth: int
    protobuf_max_depth: int
    long_string_chars: int
    backdoor: BackdoorKnowledge


def normalise_domain(domain: str | bytes) -> str:
    """``ai.onnx`` and ``""`` are the same default domain (bytes: a non-UTF-8 domain, as text)."""
    if isinstance(domain, bytes):
        domain = domain.decode("utf-8", "backslashreplace")
    return "" if domain == "ai.onnx" else domain


def _ops(entry: dict[str, Any], with_severity: bool = False) -> OpRule:
    return OpRule(
        domains=frozenset(normalise_domain(d) for d in entry["domain"]),
        op_types=frozenset(entry["op_type"]),
        why=entry.get("why", ""),
        attributes=tuple(entry.get("attributes", ())),
        severity=Severity.parse(entry["severity"]) if with_severity else Severity.HIGH,
    )


@lru_cache(maxsize=1)
def knowledge() -> OnnxKnowledge:
    from signatures import data_dir

    data = load_toml(data_dir() / "onnx.toml")
    domains = data["domains"]
    bd = data["backdoor"]
    an = data["anomalies"]
    ext = data["external_data"]
    epc = data["ep_context"]
    return OnnxKnowledge(
        standard_domains=frozenset(normalise_domain(d) for d in domains["standard"]),
        runtime_domains=frozenset(domains["runtime"]),
        library_domains={e["domain"]: e["library"] for e in domains.get("library", [])},
        network_ops=tuple(_ops(e, with_severity=True) for e in data.get("network_ops", [])),
        python_ops=tuple(_ops(e) for e in data.get("python_ops", [])),
        ep_context=_ops(epc),
        ep_path_attribute=epc["path_attribute"],
        ep_mode_attribute=epc["mode_attribute"],
        external_keys=frozenset(ext["known_keys"]),
        device_names=frozenset(n.upper() for n in ext["device_names"]),
        max_location_length=int(ext["max_location_length"]),
        checksum_algorithm=ext["checksum_algorithm"],
        memory_bomb_elements=int(an["memory_bomb_elements"]),
        memory_bomb_scale=float(an["memory_bomb_scale"]),
        max_graph_depth=int(an["max_graph_depth"]),
        protobuf_max_depth=int(an["protobuf_max_depth"]),
        long_string_chars=int(an["long_string_chars"]),
        backdoor=BackdoorKnowledge(
            learned_ops=frozenset(bd["learned_ops"]),
            table_ops=frozenset(bd["table_ops"]),
            threshold_ops=frozenset(bd["threshold_ops"]),
            guard_ops=frozenset(bd["guard_ops"]),
            shape_ops=frozenset(bd["shape_ops"]),
            logic_combine_ops=frozenset(bd["logic_combine_ops"]),
            trigger_carry_ops=frozenset(bd["trigger_carry_ops"]),
            arith_gates=frozenset(bd["arith_gates"]),
            merge_ops=frozenset(bd["merge_ops"]),
            gate_to_merge_hops=int(bd["gate_to_merge_hops"]),
            merge_to_output_hops=int(bd["merge_to_output_hops"]),
            window_ops=frozenset(bd["window_ops"]),
            window_passthrough_ops=frozenset(bd["window_passthrough_ops"]),
            window_min_input_elements=int(bd["window_min_input_elements"]),
            window_max_elements=int(bd["window_max_elements"]),
            window_max_fraction=float(bd["window_max_fraction"]),
            window_merge_to_output_hops=int(bd["window_merge_to_output_hops"]),
        ),
    )
