"""GGUF: bounded header parsing and chat-template injection checks (never rendered)."""

from __future__ import annotations

import builtins
import resource

import pytest

from fixtures.builders.gguf import BASE, LLAMA3_TEMPLATE, gguf, kv_str
from scanner.analyzers.gguf.template import indicators
from tests.conftest import rule_ids, scan_paths

# Chat templates as published by popular model families (shapes that must stay clean).
REAL_TEMPLATES = {
    "llama3": LLAMA3_TEMPLATE,
    "chatml_qwen2": (
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
        "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
        "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"),
    "qwen25_tools": (
        "{%- if tools %}{{- '<|im_start|>system\\n' }}{%- for tool in tools %}{{- '\\n' }}"
        "{{- tool | tojson }}{%- endfor %}{{- '<|im_end|>\\n' }}{%- endif %}"
        "{%- for message in messages %}{%- if message.role == 'assistant' and message.tool_calls %}"
        "{%- for tool_call in message.tool_calls %}{%- if tool_call.function is defined %}"
        "{%- set tool_call = tool_call.function %}{%- endif %}{{- '<tool_call>\\n{\"name\": \"' }}"
        "{{- tool_call.name }}{{- '\", \"arguments\": ' }}{{- tool_call.arguments | tojson }}"
        "{%- endfor %}{%- else %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
        "{%- endif %}{%- endfor %}"),
    "mistral": (
        "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
        "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
        "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% endif %}{% endfor %}"),
    "llama31_namespace": (
        "{%- set ns = namespace(found=false) -%}{%- for message in messages -%}"
        "{%- if message['role'] == 'system' -%}{%- set ns.found = true -%}{%- endif -%}{%- endfor -%}"
        "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content']|trim %}"
        "{%- set messages = messages[1:] %}{%- else %}{%- set system_message = '' %}{%- endif %}"
        "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' + system_message + '<|eot_id|>' }}"),
    "gemma": (
        "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}{% for message in messages %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}"
        "{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\\n' + "
        "message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}"),
    "phi3_zephyr": (
        "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\\n' + message['content'] + "
        "'<|end|>\\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\\n' + message['content'].strip() + "
        "'<|end|>\\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"),
}


@pytest.mark.parametrize("name", sorted(REAL_TEMPLATES))
def test_real_chat_templates_do_not_fire(name):
    found, error = indicators(REAL_TEMPLATES[name])
    assert (found, error) == ([], None)


@pytest.mark.parametrize("template", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ self._TemplateReference__context.cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum|attr('__globals__') }}",
    "{{ request['__cla' ~ 'ss__'] }}",
    "{{ x|map(attribute='__class__')|list }}",
])
def test_injection_indicators_fire(template):
    found, _ = indicators(template)
    assert found


def test_text_fallback_without_jinja2(monkeypatch):
    real_import = builtins.__import__

    def no_jinja(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name.startswith("jinja2"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_jinja)
    assert indicators("{{ ''.__class__ }}")[0]
    assert indicators(LLAMA3_TEMPLATE)[0] == []


def test_unparseable_template_is_medium_and_still_text_scanned(tmp_path):
    path = tmp_path / "m.gguf"
    path.write_bytes(gguf([*BASE, kv_str("tokenizer.chat_template", "{% for x in %}{{ x.__class__ }}")]))
    assert {"MLS-GGF-011", "MLS-GGF-010"} <= rule_ids(scan_paths(path))


def test_billion_entry_claims_cost_no_memory(tmp_path):
    path = tmp_path / "m.gguf"
    path.write_bytes(gguf(BASE, n_kv=(1 << 40)))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert "MLS-GGF-002" in rule_ids(scan_paths(path))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000
