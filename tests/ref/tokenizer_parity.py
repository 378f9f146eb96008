#!/usr/bin/env python3
"""`osp tokenize` against transformers' tokenizer, on SentencePiece Unigram models trained here.

usage: python tests/ref/tokenizer_parity.py OSP_BINARY WORKDIR

The real umT5 vocabulary is not available offline, so the test trains small unigram models with
the `sentencepiece` package on a multilingual corpus (several sizes; byte fallback on and off;
SentencePiece's default nmt_nfkc normalization and the identity one; umT5's special ids: pad 0,
eos 1, unk 2), lets transformers convert each into a tokenizer.json (T5Tokenizer.from_pretrained
on the spiece.model, then save_pretrained), and compares OSP's ids with:

  - transformers' AutoTokenizer on that folder: tokenizer(text).input_ids, and with
    truncation=True, max_length=N (and padding="max_length") for long texts;
  - the Rust tokenizers library itself (tokenizers.Tokenizer.from_file) on variants of the file
    in the layouts older converters wrote: normalizer Sequence[Precompiled, Strip(right),
    Replace(" {2,}" -> "▁")] with a Metaspace pre-tokenizer (add_prefix_space, or
    prepend_scheme "first"), as umT5's published tokenizer.json may have it.

Strings: several languages and scripts, whitespace runs, punctuation, full-width forms,
ligatures, emoji (ZWJ sequences, skin tones, flags), combining marks (precomposed and decomposed),
Hangul jamo, Indic conjuncts, special tokens inside the text, the empty string, a very long text,
and random code points. Invalid UTF-8 must be refused with the byte offset.

Prints one line per mismatch and per model, and "tokenizer: N passed, M failed" last.
"""
import copy
import json
import os
import random
import subprocess
import sys

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import sentencepiece as spm
import tokenizers
from transformers import AutoTokenizer, T5Tokenizer

passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL " + what)


WORDS = {
    "en": "the quick brown fox jumps over lazy dog camera moving slowly across city night rain sunset ocean".split(),
    "fr": "le renard brun rapide saute par-dessus chien paresseux été où garçon français cœur naïve".split(),
    "de": "der schnelle braune Fuchs springt über den faulen Hund Straße Größe Mädchen".split(),
    "ru": "Съешь же ещё этих мягких французских булок да выпей чаю".split(),
    "zh": list("一只红色的猫在雨中奔跑城市夜晚海浪森林相机缓慢移动东京是日本的首都"),
    "ja": list("ねこがあめのなかをはしるカメラゆっくりうごく"),
    "ar": "القط الأحمر يجري تحت المطر في المدينة ليلا".split(),
    "hi": "लाल बिल्ली बारिश में दौड़ रही है शहर रात".split(),
    "th": list("แมวสีแดงวิ่งในสายฝน"),
    "ko": "빨간 고양이가 비 속에서 달린다 도시 밤".split(),
}


def corpus(rng, lines=3000):
    out = []
    for _ in range(lines):
        lang = rng.choice(list(WORDS))
        sep = "" if lang in ("zh", "ja", "th") else " "
        out.append(sep.join(rng.choice(WORDS[lang]) for _ in range(rng.randint(3, 14))) +
                   rng.choice(["", ".", "!", "?", ",", " 123", " 2024", " ..."]))
    return out


def train(work, name, rng, **options):
    folder = os.path.join(work, name)
    os.makedirs(folder, exist_ok=True)
    settings = dict(model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2,
                    hard_vocab_limit=False, character_coverage=0.995)
    settings.update(options)
    extra_ids = settings.pop("extra_ids", 0)
    spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus(rng)), model_prefix=f"{folder}/spiece", **settings)
    source = T5Tokenizer.from_pretrained(folder, extra_ids=extra_ids)
    model_dir = os.path.join(folder, "model")
    source.save_pretrained(os.path.join(model_dir, "tokenizer"))
    return model_dir


def legacy_variants(model_dir):
    """The same model in the layouts older converters wrote, as tokenizer.json files."""
    with open(os.path.join(model_dir, "tokenizer", "tokenizer.json")) as f:
        base = json.load(f)
    normalizer = base["normalizer"]
    precompiled = normalizer if normalizer and normalizer["type"] == "Precompiled" else None
    variants = {}
    for scheme in ("always", "first"):
        v = copy.deepcopy(base)
        steps = ([precompiled] if precompiled else []) + [
            {"type": "Strip", "strip_left": False, "strip_right": True},
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": "\u2581"}]
        v["normalizer"] = {"type": "Sequence", "normalizers": steps}
        v["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": scheme, "split": True}
        path = os.path.join(model_dir, f"legacy-{scheme}.json")
        with open(path, "w") as f:
            json.dump(v, f, ensure_ascii=False)
        variants[scheme] = path
    return variants


def test_strings(rng):
    s = ["", " ", "a", "hello world", "  leading and trailing  ", "many     spaces\tand\ttabs\nand\nnewlines\r\n",
         "a red circle moving right on a blue background", "The QUICK brown fox, 123 jumps! (again?)",
         "café naïve cœur", "cafe\u0301 nai\u0308ve", "Ａ\u0301ＢＣ full width １２３ ｱｲｳ", "ﬁ ﬂ ligatures ㎏ ①②③ ™",
         "Съешь же ещё", "东京是日本的首都。", "ねこがはしる", "القط الأحمر", "लाल बिल्ली क्ष त्र ज्ञ", "แมวสีแดง",
         "빨간 고양이", "\u1100\u1161\u11a8 jamo", "😀 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇯🇵🇺🇸🇫 ❤️", "e\u0301\u0301\u0301 stacked",
         "tab\u00a0nbsp\u3000ideographic\u2028line\u2029para", "</s>", "hello</s>world", "<pad> <unk> </s></s>",
         "<extra_id_0> and <extra_id_3>x", "<0x41> literal", "x" * 3000, "word " * 700,
         "\u0000 nul", "zero\u200bwidth\u200djoiner\u200c", "\ufeffbom", "ǅ ǈ ß ẞ İ ı", "\u0301 leading mark",
         "mixed Ａ\u0301 then \u0301", "🇯🇵🇯", "a\u0308\u0301b", "ｶﾞ halfwidth kana", "デ゙", "\r\n\r\n"]
    alphabet = "".join(sorted({c for words in WORDS.values() for w in words for c in w}))
    for _ in range(150):  # random mixtures of the corpus's characters, spaces and marks
        n = rng.randint(1, 40)
        s.append("".join(rng.choice(alphabet + "   \t\n.,!?0123456789\u0301\u0308🙂") for _ in range(n)))
    for _ in range(150):  # random code points from every plane (no surrogates)
        n = rng.randint(1, 12)
        points = []
        for _ in range(n):
            c = rng.choice([rng.randint(0x20, 0x7F), rng.randint(0xA0, 0x2FFF), rng.randint(0x3000, 0xFFFF),
                            rng.randint(0x10000, 0x1FFFF), rng.randint(0x1F300, 0x1FAFF)])
            if not 0xD800 <= c <= 0xDFFF:
                points.append(chr(c))
        s.append("".join(points))
    return s


def run_osp(osp, model, text_file, *extra):
    r = subprocess.run([osp, "tokenize", "--model", model, "--file", text_file, *extra], capture_output=True)
    if r.returncode != 0:
        return None, r.stderr.decode(errors="replace").strip()
    return [int(x) for x in r.stdout.split()], None


def compare(osp, work, label, model, reference, strings, extra=()):
    """OSP's ids for every string (one `osp tokenize --batch` run) against the reference's."""
    batch = os.path.join(work, "batch.jsonl")
    with open(batch, "w") as f:
        for text in strings:
            f.write(json.dumps(text) + "\n")
    r = subprocess.run([osp, "tokenize", "--model", model, "--batch", batch, *extra], capture_output=True)
    lines = r.stdout.decode().split("\n")
    if r.returncode != 0 or len(lines) < len(strings):
        check(False, f"{label}: osp tokenize --batch failed: {r.stderr.decode(errors='replace').strip()}")
        return
    mismatches = 0
    for text, line in zip(strings, lines):
        got, want = [int(x) for x in line.split()], reference(text)
        if got != want and mismatches < 5:
            print(f"FAIL {label}: {text[:80]!r}\n  osp  {got}\n  want {want}")
        mismatches += got != want
    check(mismatches == 0, f"{label}: {len(strings) - mismatches}/{len(strings)} strings with identical ids")
    print(f"{label}: {len(strings) - mismatches}/{len(strings)} identical")


def invalid_utf8(osp, work, model):
    cases = {b"ok \xff bad": 3, b"\xe2\x82": 0, b"abc\xed\xa0\x80": 3, b"\xc0\xaf": 0, b"good\xf4\x90\x80\x80": 4}
    for raw, offset in cases.items():
        path = os.path.join(work, "bad.txt")
        with open(path, "wb") as f:
            f.write(raw)
        got, error = run_osp(osp, model, path)
        check(got is None and f"invalid UTF-8 at byte {offset}" in (error or ""),
              f"invalid UTF-8 {raw!r}: refused at byte {offset} ({error})")


def bad_files(osp, work, model_dir):
    def expect(path, needle, what):
        got, error = run_osp(osp, path, os.path.join(work, "text.txt"))
        check(got is None and needle in (error or ""), f"bad tokenizer: {what}: {error}")
    expect(os.path.join(work, "nowhere"), "no such tokenizer", "missing path")
    broken = os.path.join(work, "broken.json")
    with open(broken, "w") as f:
        f.write('{"model": ')
    expect(broken, "broken.json", "malformed JSON")
    with open(os.path.join(model_dir, "tokenizer", "tokenizer.json")) as f:
        v = json.load(f)
    v["normalizer"] = {"type": "NFKD"}
    other = os.path.join(work, "nfkd.json")
    with open(other, "w") as f:
        json.dump(v, f)
    expect(other, "normalizer \"NFKD\"", "an unknown normalizer")
    v["normalizer"] = None
    v["model"] = {"type": "BPE", "vocab": {}, "merges": []}
    with open(other, "w") as f:
        json.dump(v, f)
    expect(other, "model type \"BPE\"", "a BPE model")


def main():
    osp, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    rng = random.Random(1234)
    strings = test_strings(rng)
    models = {
        "nfkc.bytefallback.v1200": dict(vocab_size=1200, byte_fallback=True, extra_ids=10),
        "nfkc.v600": dict(vocab_size=600, byte_fallback=False),
        "identity.bytefallback.v900": dict(vocab_size=900, byte_fallback=True, normalization_rule_name="identity"),
        "nfkc.splitdigits.v800": dict(vocab_size=800, byte_fallback=True, split_digits=True),
    }
    for name, options in models.items():
        model_dir = train(work, name, random.Random(len(name)), **options)
        hf = AutoTokenizer.from_pretrained(os.path.join(model_dir, "tokenizer"))
        compare(osp, work, f"{name} (transformers)", model_dir, lambda t: hf(t).input_ids, strings)
        long_texts = [t for t in strings if len(t) > 200] + ["word " * 40]
        for n in (16, 512):
            compare(osp, work, f"{name} truncated to {n}", model_dir,
                    lambda t: hf(t, truncation=True, max_length=n).input_ids, long_texts, ("--max-length", str(n)))
        compare(osp, work, f"{name} padded to 512", model_dir,
                lambda t: hf(t, padding="max_length", truncation=True, max_length=512).input_ids,
                strings[:40], ("--max-length", "512", "--pad"))
        for scheme, path in legacy_variants(model_dir).items():
            rust = tokenizers.Tokenizer.from_file(path)
            compare(osp, work, f"{name} legacy layout, prepend {scheme} (tokenizers)", path,
                    lambda t: rust.encode(t).ids, strings)
    invalid_utf8(osp, work, model_dir)
    bad_files(osp, work, model_dir)
    print(f"tokenizer: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
