"""The data profile: formats, token statistics, duplicates, bad rows, overlap, verdicts.

    .venv/bin/python -m pytest tests/unit/test_data_profile.py
"""

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advisor import dedup
from advisor.data_profile import MESSAGE_OVERHEAD, profile_data
from tunewise.errors import InputError
from tunewise.methods import Method

WORDS = ("refund order password shipping invoice account delivery parcel label return warranty "
         "discount voucher address payment card login email support ticket").split()


def sentence(i: int, n: int = 24) -> str:
    """A deterministic, distinct sentence per i (a different word walk for each)."""
    return " ".join(WORDS[(i * 7 + k * (i % 5 + 1)) % len(WORDS)] + str((i + k) % 97) for k in range(n))


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_counts_duplicates_and_bad_rows_with_line_numbers(tmp_path):
    rows = [{"prompt": f"Q{i}: {sentence(i, 60)}", "completion": f" A{i}."} for i in range(6)]
    rows.append(dict(rows[1]))  # line 7: exact duplicate of line 2
    rows.append({"prompt": rows[3]["prompt"].upper() + "  ", "completion": " A3."})  # line 8: same after normalising
    near = rows[4]["prompt"].replace(sentence(4, 60).split()[10], "zzz")
    rows.append({"prompt": near, "completion": " A4."})  # line 9: one word changed -> near duplicate
    rows.append({"prompt": "x", "completion": "   "})  # line 10: empty completion
    rows.append({"prompt": "x", "completion": 5})  # line 11: wrong type
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    p = profile_data(path)
    assert p.format == "prompt_completion" and p.rows == 9 and p.examples == 7
    assert p.exact_duplicates == [[2, 7], [4, 8]]
    assert [(a, b) for a, b, _ in p.near_duplicates] == [(5, 9)]
    assert [(x.line, x.field) for x in p.empty_rows] == [(10, "completion")]
    assert [(x.line, x.field) for x in p.malformed_rows] == [(11, "completion")]
    d = p.to_dict()
    assert d["duplicates"]["exact"] == 2 and d["duplicates"]["near"] == 1
    assert d["problems"]["empty"] == 1 and d["problems"]["malformed"] == 1
    assert any("train.jsonl:10 field 'completion': empty" in w for w in p.warnings())


def test_estimated_tokens_bytes_over_four_and_seq_len_comparison(tmp_path):
    texts = ["a" * 40, "b" * 400, "c" * 4000, "d" * 41]
    path = write_jsonl(tmp_path / "t.jsonl", [{"text": t} for t in texts])
    p = profile_data(path, seq_len=100)
    assert p.lengths == [10, 100, 1000, 11]
    t = p.to_dict()["tokens"]
    assert t["method"] == "estimate" and "bytes / 4" in t["how"]
    assert (t["p50"], t["p95"], t["max"], t["total"]) == (11, 1000, 1000, 1121)
    assert t["over_seq_len"] == 1 and t["over_seq_len_fraction"] == 0.25
    assert p.mean_tokens(100) == pytest.approx((10 + 100 + 100 + 11) / 4)


def test_messages_add_template_overhead_and_preference_takes_the_longer_answer(tmp_path):
    msgs = [{"role": "user", "content": "u" * 40}, {"role": "assistant", "content": "a" * 80}]
    p = profile_data(write_jsonl(tmp_path / "m.jsonl", [{"messages": msgs}]))
    rendered = "user: " + "u" * 40 + "\nassistant: " + "a" * 80
    assert p.format == "messages"
    assert p.lengths == [math.ceil(len(rendered) / 4) + 2 * MESSAGE_OVERHEAD]
    pref = {"prompt": "p" * 40, "chosen": "c" * 400, "rejected": "r" * 40}
    q = profile_data(write_jsonl(tmp_path / "p.jsonl", [pref]))
    assert q.format == "preference" and q.lengths == [math.ceil((40 + 1 + 400) / 4)]


def test_exact_tokens_with_the_models_tokenizer_json(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok_path = tmp_path / "tokenizer.json"
    tok.save(str(tok_path))
    rows = [{"text": "refund order password"}, {"text": "shipping " * 9 + "zzz"}]
    p = profile_data(write_jsonl(tmp_path / "t.jsonl", rows), tokenizer_path=tok_path)
    assert p.tokens.method == "exact" and p.lengths == [3, 10]


@pytest.mark.parametrize("suffix", [".csv", ".json", ".parquet"])
def test_other_file_types(tmp_path, suffix):
    rows = [{"prompt": f"q{i} {sentence(i, 5)}", "completion": f" a{i}"} for i in range(3)]
    path = tmp_path / f"d{suffix}"
    if suffix == ".csv":
        import csv

        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["prompt", "completion"])
            writer.writeheader()
            writer.writerows(rows)
    elif suffix == ".json":
        path.write_text(json.dumps(rows))
    else:
        pd = pytest.importorskip("pandas")
        pd.DataFrame(rows).to_parquet(path)
    p = profile_data(path)
    assert (p.format, p.rows, p.examples) == ("prompt_completion", 3, 3)


def test_train_eval_overlap(tmp_path):
    train = [{"prompt": f"Q{i}: {sentence(i, 60)}", "completion": f" A{i}."} for i in range(20)]
    held_out = [
        dict(train[3]),  # identical
        {"prompt": train[5]["prompt"], "completion": " a different answer"},  # same input
        {"prompt": train[7]["prompt"].replace(sentence(7, 60).split()[12], "qqq"), "completion": " A7."},  # near
        {"prompt": "an unrelated question about nothing in the training set", "completion": " no"},
    ]
    held_out.append({"prompt": "no answer"})  # line 5: a bad eval row is reported, not fatal
    p = profile_data(write_jsonl(tmp_path / "tr.jsonl", train), eval_path=write_jsonl(tmp_path / "ev.jsonl", held_out))
    o = p.overlap
    assert o.exact == [1] and o.same_input == [1, 2]
    # eval line 2 shares train line 6's long prompt, so it is also a near duplicate of it
    assert [(e, t) for e, t, _ in o.near] == [(2, 6), (3, 8)]
    assert p.to_dict()["overlap"]["eval_examples"] == 4
    assert any("overstate the gain" in w for w in p.warnings())
    assert any("ev.jsonl:5 field 'completion': missing" in w for w in p.warnings())


@pytest.mark.parametrize(("n", "fmt", "expect"), [
    (30, "prompt_completion", {Method.PROMPT: "sufficient", Method.LORA: "insufficient", Method.DPO: "wrong-format"}),
    (60, "prompt_completion", {Method.LORA: "marginal", Method.FULL: "insufficient"}),
    (150, "text", {Method.LORA: "sufficient", Method.QLORA: "sufficient", Method.FULL: "insufficient"}),
    (150, "preference", {Method.DPO: "marginal", Method.RLHF: "insufficient", Method.LORA: "wrong-format"}),
])
def test_verdicts_per_method(tmp_path, n, fmt, expect):
    if fmt == "preference":
        rows = [{"prompt": f"p{i}", "chosen": sentence(i, 8), "rejected": sentence(i + 1000, 8)} for i in range(n)]
    elif fmt == "text":
        rows = [{"text": sentence(i)} for i in range(n)]
    else:
        rows = [{"prompt": sentence(i), "completion": f" {i}"} for i in range(n)]
    p = profile_data(write_jsonl(tmp_path / "d.jsonl", rows))
    assert p.examples == n
    for method, verdict in expect.items():
        assert p.verdicts[method].verdict == verdict, (method, p.verdicts[method])


def test_duplicates_do_not_count_towards_the_verdict(tmp_path):
    rows = [{"text": sentence(i % 40)} for i in range(120)]  # 120 rows, 40 unique
    p = profile_data(write_jsonl(tmp_path / "d.jsonl", rows))
    assert p.rows == 120 and p.examples == 40
    assert p.verdicts[Method.LORA].verdict == "insufficient"


def test_malformed_json_is_an_error_with_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "fine"}\n{"text": "broken"\n')
    with pytest.raises(InputError) as err:
        profile_data(path)
    assert str(err.value).startswith(f"{path}:2: invalid JSON")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.sampled_from(WORDS[:8]), min_size=1, max_size=12).map(" ".join),
                min_size=2, max_size=25))
def test_near_pairs_are_verified_never_invented(texts):
    for a, b, j in dedup.near_pairs(texts):
        assert a < b
        true = dedup.jaccard(dedup.shingles(texts[a]), dedup.shingles(texts[b]))
        assert true >= dedup.NEAR_JACCARD and j == round(true, 3)


def test_near_duplicates_found_at_high_similarity_not_at_low():
    base = sentence(1, 60)
    words = base.split()
    one_change = " ".join(words[:30] + ["zzz"] + words[31:])
    unrelated = sentence(2, 60)
    assert dedup.near_pairs([base, unrelated]) == []
    assert [(a, b) for a, b, _ in dedup.near_pairs([base, unrelated, one_change])] == [(0, 2)]


def _rotation_densified(hashes: set[int]) -> tuple[int, ...]:
    """Shrivastava & Li's rotation, written as its definition: an empty bin j takes the
    first non-empty bin j + t to its right (circularly), plus t x the empty marker."""
    k, empty = dedup.K, dedup._EMPTY_BIN
    bins = [min((h // k for h in hashes if h % k == b), default=empty) for b in range(k)]
    if all(v == empty for v in bins):
        return tuple(bins)
    out = []
    for j in range(k):
        t = 0
        while bins[(j + t) % k] == empty:
            t += 1
        out.append(bins[(j + t) % k] + t * empty)
    return tuple(out)


@settings(max_examples=200, deadline=None)
@given(st.sets(st.integers(min_value=0, max_value=2**32 - 1), max_size=80))
def test_signature_is_the_densified_one_permutation_minhash(hashes):
    assert dedup.signature(hashes) == _rotation_densified(hashes)
