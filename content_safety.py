"""Find text that looks like an injection attack in extracted pages.

A PDF's text often lands in databases, web pages and prompts; text built to break those
(SQL injection, script tags, shell commands, heavy URL-encoding) is worth a warning, or a
refusal (setting ``dangerous_content``: off|flag|reject, applied by ``apply_policy``).

Patterns are narrow on purpose: ordinary English ("select the items", "drop the table
from the schedule", "union of sets", "50% off", "rm" as a word, accounting's "$(1,234)")
must not match. Each needs attack syntax - a quote before a tautology, a statement after
a ";", a shell command word after "$(" or a backtick, a pipe into a shell. On the clean
corpus (881 pages of papers, reports, forms) no page is flagged.

Text is NFKC-normalised (full-width "＜script＞" becomes "<script>") and curly quotes
become straight ones before matching. Samples are at most 60 characters, with control
characters removed, whitespace collapsed and "<" ">" replaced by "‹" "›", so a sample
can never form a tag wherever it is shown; each starts where its pattern matched.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from typing import Any, NamedTuple

from errors import DangerousContent

__all__ = ["DangerousContent", "apply_policy", "findings_to_warnings", "scan_text"]

SAMPLE_CHARS = 60
MODES = ("off", "flag", "reject")

_SHELL_WORDS = (
    r"(?:curl|wget|cat|id|whoami|uname|nc|ncat|bash|sh|zsh|rm|echo|python3?|perl|base64|chmod|ls)"
)
_I = re.IGNORECASE
_TAUTOLOGY = r"""\s*\)?\s*(?:or|and)\s+\(?\s*(['"]?)(\w+)\1\s*=\s*\1\2\b"""  # after a quote
# A "-" after whitespace ("\s-", written to start with the "-" SRE scans for): part of every
# "rm -rf" and "nc -e". "rm" and "nc" are in most pages ("form", "since"), this in few.
_SPACE_DASH = re.compile(r"-(?<=\s-)")


class Rule(NamedTuple):
    """A pattern, tried only on text holding one of its lower-case trigger substrings.

    ``needs`` and ``guard``, when set, find a part of every match of ``pattern`` (so a text
    they find nothing in cannot match either). ``needs`` is tried first, being rarer or
    cheaper than the triggers: plain text, found with ``in`` (which finds one character ten
    times faster than SRE), or a regex starting with a literal SRE scans for, where
    ``pattern`` has none. ``guard`` is a regex tried after a trigger is found, being cheaper
    than the pattern: it starts with a literal or a set of characters SRE scans for.
    """

    triggers: tuple[str, ...]
    pattern: re.Pattern[str]
    needs: str | re.Pattern[str] | None = None
    guard: re.Pattern[str] | None = None


def _rule(
    triggers: tuple[str, ...],
    pattern: str,
    flags: int = 0,
    needs: str | re.Pattern[str] | None = None,
    guard: str = "",
) -> Rule:
    # Substring checks run at GB/s; most pages hold no trigger and skip every pattern.
    compiled_guard = re.compile(guard, flags) if guard else None
    return Rule(triggers, re.compile(pattern, flags), needs, compiled_guard)


PATTERNS: dict[str, list[Rule]] = {
    "sql_injection": [
        # ' OR '1'='1  |  " or 1=1  |  ') or ('a'='a  - a tautology right after a quote.
        # One rule per quote, each starting with the literal SRE scans for: "=" is on most
        # pages of formulas.
        _rule(("=",), "'" + _TAUTOLOGY, _I),
        _rule(("=",), '"' + _TAUTOLOGY, _I),
        _rule(
            ("select",),
            r"\bunion\s+(?:all\s+)?select\s+(?:null\b|\*|\d|@@|[\w.]+\s*(?:,|\bfrom\b))",
            _I,
        ),
        _rule(
            ("drop", "truncate"),
            r";\s*(?:drop|truncate)\s+(?:table|database)\s+(?:if\s+exists\s+)?"
            r"[\w`\"\[\].]+\s*(?:;|--|\)|$)",
            _I | re.M,
            needs=";",
        ),
        _rule(
            ("delete", "insert", "update", "shutdown"),
            r";\s*(?:delete\s+from\s+\S+\s*(?:where\b|;|--)|insert\s+into\s+\S+\s*(?:\(|values\b)"
            r"|update\s+\S+\s+set\s+\w+\s*=|shutdown\s*(?:--|;|$))",
            _I | re.M,
            needs=";",
        ),
        # admin'--  closes a quote, then comments the rest of the query out
        _rule(
            ("'--", "'#", "'/*", "')"),
            r"\w'\)?(?:--|#|/\*)(?=\s|$)",
            needs=re.compile(r"'\)?(?:--|#|/\*)"),
        ),
        _rule(
            ("xp_cmdshell", "master.", "waitfor"),
            r"\bxp_cmdshell\b|\bexec(?:\s+|\s*\()master\.|\bwaitfor\s+delay\s+'\d",
            _I,
        ),
        _rule(
            ("sleep", "benchmark", "outfile", "dumpfile"),
            r"\b(?:and|or)\s+(?:sleep|benchmark)\s*\(\s*\d|\binto\s+(?:out|dump)file\s+'",
            _I,
        ),
    ],
    "script_tag": [
        _rule(("script",), r"<\s*/?\s*script\b", _I, needs="<"),
        _rule(("javascript",), r"\bjavascript\s*:\s*[\w$.]+\s*\(", _I),
        _rule(
            ("onerror", "onload", "onmouseover", "onfocus", "onclick"),
            r"\bon(?:error|load|mouseover|focus|click)\s*=\s*['\"]?\s*[\w$]",
            _I,
            needs="=",
        ),
        _rule(
            ("document.cookie", "eval"),  # "eval" is in many pages ("evaluate")
            r"\bdocument\.cookie\b|\beval\s*\(\s*(?:atob|unescape|String\.fromCharCode)",
            _I,
            guard=r"\.cookie|\(\s*(?:atob|unescape|String\.fromCharCode)",
        ),
    ],
    "command_injection": [
        _rule(
            ("rm",),
            r"(?:^|[;&|`]|\$\()\s*rm\s+-[a-zA-Z]*[rf][a-zA-Z]*\s+[/~*$.]",
            re.M,
            needs=_SPACE_DASH,
            guard=r"rm\s+-",
        ),
        _rule(("$(",), r"\$\(\s*" + _SHELL_WORDS + r"\b[^)\n]{0,80}\)", needs="$"),
        _rule(("`",), r"`\s*" + _SHELL_WORDS + r"\b[^`\n]{0,80}`"),
        _rule(
            ("|",),
            r"\b(?:curl|wget|echo|cat|base64)\b[^\n|]{0,200}\|\s*(?:sudo\s+)?(?:ba|z|da)?sh\b",
            guard=r"\|\s*(?:sudo\s+)?(?:ba|z|da)?sh\b",  # "|" is on most pages of formulas
        ),
        _rule(("curl", "wget"), r"(?:;|&&|\|\|)\s*(?:curl|wget)\s+\S"),
        # One rule per alternative, each starting with its literal so SRE can scan for it
        # ("word(?<=\bword)" is "\bword"): "nc" is in most pages ("since", "once").
        _rule(("bash",), r"bash(?<=\bbash)\s+-i\s*>&", needs="&"),
        _rule(("/dev/tcp",), r"/dev/tcp/\d"),
        _rule(("nc",), r"nc(?<=\bnc)\s+-[a-z]*e\s", needs=_SPACE_DASH),
        _rule(("/etc/",), r"/etc/(?:passwd|shadow)\b"),
    ],
    "url_encoding": [
        # Ten escapes in a row, written to start with the "%" SRE scans for: financial
        # tables hold "%" on most pages.
        _rule(("%",), r"%[0-9A-Fa-f]{2}(?:%[0-9A-Fa-f]{2}){9,}"),
        _rule(
            ("%3c", "%27"),
            r"%3C\s*(?:%2F)?\s*script|%27\s*(?:%20|\+)(?:or|and|union)\b",
            _I,
            needs="%",
        ),
        _rule(
            ("%2f", "%25"),
            r"(?:%2e|\.){2}%2f|%2e%2e(?:/|%2f)|(?:%25[0-9A-Fa-f]{2}){2}",
            _I,
            needs="%",
        ),
    ],
}

KIND_NAMES = {
    "sql_injection": "SQL injection",
    "script_tag": "script injection (HTML/JavaScript)",
    "command_injection": "shell command injection",
    "url_encoding": "heavily URL-encoded text",
}

_QUOTES = {"‘": "'", "’": "'", "‚": "'", "“": '"', "”": '"', "„": '"'}


def scan_text(pages: list[tuple[int, str]]) -> list[dict[str, Any]]:
    """Return one finding per kind and page: ``{"kind", "page", "sample"}``."""
    findings = []
    for page, text in pages:
        normal = _straight_quotes(unicodedata.normalize("NFKC", text))
        lower = _trigger_view(normal)
        for kind, rules in PATTERNS.items():
            match = _first_match(rules, normal, lower)
            if match:
                sample = _sample(normal[match.start() : match.start() + 2 * SAMPLE_CHARS])
                findings.append({"kind": kind, "page": page, "sample": sample})
    return findings


def _straight_quotes(text: str) -> str:
    """Return ``text`` with curly quotes made straight."""
    # str.translate with a non-ASCII table costs 40x more than a few replace() calls.
    if text.isascii():
        return text
    for curly, straight in _QUOTES.items():
        if curly in text:
            text = text.replace(curly, straight)
    return text


def _trigger_view(text: str) -> str:
    """Return ``text`` with its ASCII letters lower-cased, each non-ASCII character as "?"."""
    # str.lower() costs three times more on non-ASCII text. The triggers are lower-case
    # ASCII, hold no "?" and none ends in "i"; of all non-ASCII characters str.lower() turns
    # only "İ" (into "i" and a combining dot) and the Kelvin sign (NFKC made it "K") into
    # ASCII. So a trigger is found here wherever it is in ``text.lower()``, and nowhere else.
    return text.encode("ascii", "replace").lower().decode("ascii")


def _first_match(rules: list[Rule], text: str, lower: str) -> re.Match[str] | None:
    """Return the earliest match of the rules worth trying on ``text``."""
    first = None
    for rule in rules:
        if _worth_trying(rule, text, lower):
            match = rule.pattern.search(text)
            if match and (first is None or match.start() < first.start()):
                first = match
    return first


def _worth_trying(rule: Rule, text: str, lower: str) -> bool:
    """Tell whether ``rule`` can match: its parts are in ``text`` and a trigger in ``lower``."""
    needs = rule.needs
    if needs is not None and (
        needs not in text if isinstance(needs, str) else needs.search(text) is None
    ):
        return False
    for trigger in rule.triggers:  # noqa: SIM110 - a loop: any() costs twice as much
        if trigger in lower:
            return rule.guard is None or rule.guard.search(text) is not None
    return False


def _sample(text: str) -> str:
    """Return ``text`` made safe to show: no controls, one-space runs, no tags, <= 60 chars."""
    visible = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in text)
    flat = " ".join(visible.split()).replace("<", "‹").replace(">", "›")
    return flat if len(flat) <= SAMPLE_CHARS else flat[: SAMPLE_CHARS - 1] + "…"


def findings_to_warnings(findings: list[dict[str, Any]]) -> list[str]:
    """Return one sentence per kind, naming its pages and one sample."""
    pages: dict[str, list[int]] = defaultdict(list)
    samples: dict[str, str] = {}
    for finding in findings:
        pages[finding["kind"]].append(finding["page"])
        samples.setdefault(finding["kind"], finding["sample"])
    return [
        f"Text that looks like {KIND_NAMES[kind]} was found on {_pages(found)} "
        f'(for example "{samples[kind]}").'
        for kind, found in pages.items()
    ]


def _pages(numbers: list[int], shown: int = 10) -> str:
    numbers = sorted(set(numbers))
    label = "page" if len(numbers) == 1 else "pages"
    listed = ", ".join(str(n) for n in numbers[:shown])
    more = f" and {len(numbers) - shown} more" if len(numbers) > shown else ""
    return f"{label} {listed}{more}"


def apply_policy(mode: str, findings: list[dict[str, Any]]) -> tuple[list[str], bool]:
    """Return (warnings to attach, whether to reject) for ``dangerous_content`` = ``mode``."""
    if mode not in MODES:
        raise ValueError(f"dangerous_content must be one of {MODES}, not {mode!r}")
    if mode == "off" or not findings:
        return [], False
    return findings_to_warnings(findings), mode == "reject"
