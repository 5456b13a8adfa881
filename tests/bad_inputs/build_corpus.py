"""Regenerate the bad-input corpus files next to this script (they are committed).

    .venv/bin/python tests/bad_inputs/build_corpus.py

Text cases are written byte-exact here so the encodings (latin-1, UTF-16, NUL bytes,
invalid UTF-8) survive editors.  Files too big to commit (a 17 MiB line) and symlinks are
made at test time by the `setup` hooks in tests/bad_inputs/corpus.py.  `@MODEL@` in a
file is replaced by the tiny model's folder when the corpus is copied for a test.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
PC = '{"prompt": "What is 2+2? ", "completion": "4."}\n'
VERSION = "0.1.0"


def jl(*rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def data_files() -> dict[str, bytes]:
    ok = {"prompt": "What is 2+2? ", "completion": "4."}
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    return {
        "latin1.jsonl": PC.encode() + '{"prompt": "Caf\u00e9 hours? ", "completion": "9 am."}\n'.encode("latin-1"),
        "utf16.jsonl": (PC * 2).encode("utf-16"),
        "nul_bytes.jsonl": PC.encode() + b'{"prompt": "a\x00b", "completion": "c"}\n',
        "invalid_utf8.jsonl": PC.encode() * 2 + b'{"prompt": "\xff\xfe\xc3", "completion": "x"}\n',
        "truncated.jsonl": PC.encode() * 2 + b'{"prompt": "What is 3+3? ", "compl',
        "completion_int.jsonl": PC.encode() + jl({"prompt": "What is 1+1? ", "completion": 2}),
        "prompt_list.jsonl": jl({"prompt": ["a", "b"], "completion": "c"}),
        "empty.jsonl": b"",
        "blank_lines.jsonl": b"\n   \n\t\n",
        "wrong_columns.jsonl": jl({"question": "2+2?", "answer": "4"}),
        "array_line.jsonl": PC.encode() + b"[1, 2, 3]\n",
        "bad_role.jsonl": jl({"messages": msgs}, {"messages": [msgs[0], {"role": "bot", "content": "x"}]}),
        "content_int.jsonl": jl({"messages": [{"role": "user", "content": 7}, msgs[1]]}),
        "messages_str.jsonl": jl({"messages": "user: hi"}),
        "shape_change.jsonl": jl(ok, ok, {"text": "just text"}),
        "empty_completion.jsonl": jl(ok, {"prompt": "Why? ", "completion": "   "}),
        "pref_identical.jsonl": jl({"prompt": "2+2? ", "chosen": "4", "rejected": "4"}),
        "not_array.json": json.dumps({"rows": [ok]}).encode(),
        "truncated.json": b'[\n  {"prompt": "a", "completion": "b"},\n  {"prompt": "c", ',
        "item_not_object.json": json.dumps([ok, 3], indent=1).encode(),
        "extra_values.csv": b"prompt,completion\nWhat is 2+2?,4\nWhat is 3+3?,6,oops\n",
        "wrong_columns.csv": b"a,b\n1,2\n",
        "latin1.csv": b"prompt,completion\nWhat is 2+2?,4\nCaf\xe9?,open\n",
        "header_only.csv": b"prompt,completion\n",
        "empty_cell.csv": b"prompt,completion\nWhat is 2+2?,\n",
        "garbage.parquet": b"PAR1" + bytes(range(256)) * 4 + b"PAR1",
        "truncated.parquet": _parquet([ok] * 50)[:300],
        "wrong_columns.parquet": _parquet([{"x": 1, "y": "z"}]),
        "notes.txt": PC.encode(),
        "deep_nesting.jsonl": PC.encode() + b"[" * 5000 + b"\n",
        "huge_number.jsonl": PC.encode() + b'{"prompt": "a", "completion": "b", "n": ' + b"7" * 5000 + b"}\n",
        "lone_surrogate.jsonl": PC.encode() + jl({"prompt": "\ud800", "completion": "b"}),  # json escapes it
        "lone_surrogate.json": json.dumps([{"messages": msgs}, {"messages": [msgs[0], {
            "role": "assistant", "content": "x\udc00"}]}]).encode(),
    }


def _parquet(rows) -> bytes:
    import pandas as pd

    buf = io.BytesIO()
    pd.DataFrame(rows).to_parquet(buf)
    return buf.getvalue()


def plan(body: str, schema: str = "tunewise/plan/v1") -> bytes:
    return (f"schema: {schema}\n" + body).encode()


def plan_files() -> dict[str, bytes]:
    head = "method: lora\nmodel: @MODEL@\ndata: {train: ../data/ok.jsonl}\n"
    return {
        "bad_yaml.yaml": plan("method: lora\nmodel: [unclosed\ndata: {train: x}\n"),
        "tabs.yaml": plan("method: lora\nsettings:\n\tbatch_size: 2\n"),
        "unknown_key.yaml": plan(head + "settings: {batch_size: 2, learning_rat: 0.1}\n"),
        "unknown_top_key.yaml": plan(head + "modle: typo\n"),
        "wrong_type.yaml": plan(head + "settings:\n  batch_size: four\n"),
        "bool_batch.yaml": plan(head + "settings:\n  batch_size: true\n"),
        "missing_model.yaml": plan("method: lora\ndata: {train: ../data/ok.jsonl}\n"),
        "duplicate_keys.yaml": plan(head + "settings:\n  seed: 1\n  seed: 2\n"),
        "negative_steps.yaml": plan(head + "settings: {max_steps: -5}\n"),
        "zero_seq_len.yaml": plan(head + "settings: {seq_len: 0}\n"),
        "lr_too_big.yaml": plan(head + "settings: {learning_rate: 5}\n"),
        "nan_epochs.yaml": plan(head + "settings: {epochs: .nan}\n"),
        "inf_replay.yaml": plan(head + "settings: {replay: .inf}\n"),
        "python_object.yaml": plan(head + "name: !!python/object/apply:os.system ['echo owned']\n"),
        "wrong_schema.yaml": plan(head, schema="tunewise/plan/v9"),
        "list.yaml": b"- method: lora\n- model: x\n",
        "empty.yaml": b"",
        "unknown_method.yaml": plan("method: lorax\nmodel: @MODEL@\ndata: {train: ../data/ok.jsonl}\n"),
        "hardware_count.yaml": plan(head + "hardware: {name: cpu, count: 0}\n"),
        "bad_precision.yaml": plan(head + "settings: {precision: fp8}\n"),
        "utf16.yaml": plan(head).decode().encode("utf-16"),
        "name_escape.yaml": plan(head + "name: ../../escaped\n"),
        "settings_list.yaml": plan(head + "settings: [1, 2]\n"),
        "deep_nesting.yaml": plan(head + "estimate: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n"),
        "huge_number.yaml": plan(head + "settings: {batch_size: " + "9" * 5000 + "}\n"),
        "missing_data.yaml": plan("method: lora\nmodel: @MODEL@\ndata: {train: no_such_file.jsonl}\n"),
    }


def hardware_files() -> dict[str, bytes]:
    row = "  - {name: my-gpu, memory_gib: 24, bf16_tflops: 100, usd_per_hour: 1.0"
    return {
        "hw_list.yaml": b"- name: my-gpu\n",
        "hw_no_name.yaml": b"hardware:\n  - {memory_gib: 24}\n",
        "hw_bad_memory.yaml": (f"hardware:\n{row.replace('24', 'lots')}}}\n").encode(),
        "hw_unknown_field.yaml": (f"hardware:\n{row}, colour: red}}\n").encode(),
        "hw_prices_list.yaml": b"prices: [1.5, 2.0]\n",
        "hw_price_negative.yaml": b"prices: {rtx-4090: -1}\n",
        "hw_price_unknown_gpu.yaml": b"prices: {warp-drive-9000: 3}\n",
        "hw_bad_yaml.yaml": b"hardware: [{name: x\n",
        "hw_python_tag.yaml": b"hardware: !!python/name:os.system\n",
        "hw_rows_not_list.yaml": b"hardware: 12\n",
        "hw_bad_pattern.yaml": (f"hardware:\n{row}, patterns: ['[unclosed']}}\n").encode(),
        "hw_nan_memory.yaml": (f"hardware:\n{row.replace('24', '.nan')}}}\n").encode(),
        "hw_price_inf.yaml": b"prices: {rtx-4090: .inf}\n",
        "hw_negative_overhead.yaml": (f"hardware:\n{row}, step_overhead_s: -1000}}\n").encode(),
        "tokenizer_empty.json": b"{}",
        "tokenizer_truncated.json": b'{"version": "1.0", "truncation": null, "model": {"type": "BPE", "vocab": {"a"',
    }


def eval_files() -> dict[str, bytes]:
    mc = {"prompt": "2+2=", "choices": ["3", "4", "5"], "answer": 1}
    return {
        "mc_answer_range.jsonl": jl(mc, {**mc, "answer": 7}),
        "mc_choices_str.jsonl": jl({**mc, "choices": "3,4,5"}),
        "mc_bad_json.jsonl": jl(mc) + b'{"prompt": "1+1=", "choices": ["2"\n',
        "pref_missing_rejected.jsonl": jl({"prompt": "hi", "chosen": "hello"}),
        "eval_empty.jsonl": b"",
        "ok_mc.jsonl": jl(mc, {**mc, "prompt": "2+3=", "answer": 2}),
        "mc_lone_surrogate.jsonl": jl({**mc, "choices": ["3", "\udfff", "5"]}),
    }


def run_record(**changes) -> dict:
    record = {
        "schema": "tunewise/run/v1", "tunewise_version": VERSION, "name": "lora", "method": "lora",
        "base_model": "@MODEL@", "status": "completed", "steps": 3, "planned_steps": 3,
        "artifacts": {"adapter": "adapter", "metrics": "metrics.jsonl"},
    }
    record.update(changes)
    return record


def run_folders() -> dict[str, bytes]:
    dump = lambda obj: json.dumps(obj, indent=2).encode()  # noqa: E731
    return {
        "no_record/adapter/adapter_config.json": b"{}",
        "corrupt_record/record.json": dump(run_record())[:120],
        "wrong_schema/record.json": dump(run_record(schema="tunewise/run/v7")),
        "wrong_types/record.json": dump(run_record(steps="many")),
        "unknown_key/record.json": dump(run_record(stepz=3)),
        "missing_adapter/record.json": dump(run_record()),
        "failed_run/record.json": dump(run_record(status="failed", error="boom", artifacts={})),
        "latin1_record/record.json": json.dumps(run_record(name="caf\u00e9"), ensure_ascii=False).encode("latin-1"),
        "record_is_list/record.json": b"[]",
        "empty/.keep": b"",
        "bad_eval/eval.json": b'{"schema": "tunewise/eval/v1", "base_model": ',
        "eval_wrong_schema/eval.json": dump({"schema": "tunewise/advice/v1"}),
        "advice_bad.json": dump({"schema": "tunewise/advice/v0"}),
        "running_run/record.json": dump(run_record(status="running", artifacts={})),
        "corrupt_adapter/record.json": dump(run_record()),
        "corrupt_adapter/adapter/adapter_config.json": b"{}",
        "corrupt_adapter/adapter/adapter_model.safetensors": safetensors_file()[:-8],
    }


def safetensors_file() -> bytes:
    """One float32 tensor in the safetensors layout: 8-byte header length, JSON header, data."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    return len(header).to_bytes(8, "little") + header + bytes(16)


def main() -> None:
    groups = {"data": data_files(), "plans": plan_files(), "config": hardware_files(), "eval": eval_files(),
              "runs": run_folders()}
    for folder, files in groups.items():
        for name, content in files.items():
            path = HERE / folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
    (HERE / "data" / "ok.jsonl").write_bytes(jl(*[{"prompt": f"What is {i}+1? ", "completion": f"{i + 1}."}
                                                  for i in range(8)]))
    (HERE / "data" / "pc_for_dpo.jsonl").write_bytes(jl(*[{"prompt": "2+2? ", "completion": "4."}] * 4))


if __name__ == "__main__":
    main()
