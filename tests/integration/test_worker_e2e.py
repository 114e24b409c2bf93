"""End-to-end tests of the tidewatch worker: real Kafka broker, real redis-server, the
binary as a subprocess (TIDEWATCH_BIN).

The corpus (~300 posts) is generated deterministically below. Every post is written so that
which rules it hits is unambiguous; the expectation is computed here, independently of the
worker, from RULES (kept in step with tests/fixtures/integration/rules.yaml) with a small
Python model of the normalization (NFKC + case folding, default-ignorables dropped,
whitespace collapsed) and of whole-word keyword matching.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
import re
import time
import unicodedata
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import pytest

from harness import (FIXTURES, free_port, require_tidewatch, run_tidewatch, run_worker,
                     scaled, stop_worker, unique_name, wait_until)

RULES_FILE = FIXTURES / "rules.yaml"
BAD_PATTERNS_FILE = FIXTURES / "rules_bad.yaml"
BAD_RULES_FILE = FIXTURES / "rules_invalid.yaml"

# The rules of rules.yaml (and its keywords files), as the test's own expectation.
RULES = {
    "scam.giveaway": dict(category="scam", severity="high",
                          keywords=["double your bitcoin", "free giveaway"],
                          regex=[r"send\s+\d+\s*(btc|eth)\b"]),
    "phishing.credentials": dict(category="phishing", severity="critical",
                                 keywords=["verify your account", "confirm your password",
                                           "account suspended"], regex=[]),
    "spam.promo": dict(category="spam", severity="low",
                       keywords=["limited offer", "click here", "work from home"], regex=[]),
    "profanity.mild": dict(category="profanity", severity="medium",
                           keywords=["frak", "smeg", "gorram"], regex=[]),
    "malware.link": dict(category="malware", severity="high", keywords=[],
                         regex=[r"https?://[a-z0-9.-]+/[a-z0-9_/-]*[a-z0-9_-]+\.(exe|scr|apk)\b"]),
}

MAX_SPANS_PER_RULE = 8
RULES_VERSION_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
CLUSTER_RE = re.compile(r"^[0-9a-f]{16}$")

# ---------------------------------------------------------------------------------------
# a Python model of the normalization and of matching (for the expectation)

_IGNORABLE = dict.fromkeys(
    [0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0x3164, 0xFEFF, 0xFFA0]
    + list(range(0x180B, 0x1810)) + list(range(0x200B, 0x2010)) + list(range(0x202A, 0x202F))
    + list(range(0x2060, 0x2070)) + list(range(0xFE00, 0xFE10)))


def normalize(text: str) -> str:
    """NFKC + full case folding, default-ignorable code points removed, whitespace runs
    collapsed to one space (the text rules see)."""
    s = unicodedata.normalize("NFKC", text)
    s = unicodedata.normalize("NFKC", s.casefold())
    s = s.translate(_IGNORABLE)
    return re.sub(r"\s+", " ", s)


def _keyword_re(keyword: str) -> re.Pattern:
    words = [re.escape(w) for w in keyword.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)")


KEYWORD_RES = {rid: [_keyword_re(k) for k in r["keywords"]] for rid, r in RULES.items()}
REGEX_RES = {rid: [re.compile(x) for x in r["regex"]] for rid, r in RULES.items()}


def rules_hit(text: str) -> set:
    norm = normalize(text)
    return {rid for rid in RULES
            if any(p.search(norm) for p in KEYWORD_RES[rid] + REGEX_RES[rid])}


def ascii_spans(text: str, rid: str) -> list:
    """Expected spans of rule rid in an ASCII text: byte offsets of every keyword / regex
    match in the original text (case-insensitive), in text order, capped like the worker."""
    assert text.isascii()
    low = text.lower()
    spans = set()
    for p in KEYWORD_RES[rid] + REGEX_RES[rid]:
        for m in p.finditer(low):
            spans.add((m.start(), m.end()))
    return sorted(spans)[:MAX_SPANS_PER_RULE]


def span_text(text: str, span) -> str:
    start, end = span
    return text.encode("utf-8")[start:end].decode("utf-8")


# ---------------------------------------------------------------------------------------
# the corpus

SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]


@dataclasses.dataclass
class Post:
    id: object  # str or int, as in the JSON
    text: str
    author: Optional[str]
    ts: object  # int, RFC 3339 str, or None (absent)
    partition: int
    rules: set  # rule ids the post must hit
    campaign: Optional[int] = None  # 1-based position in its campaign
    extra: dict = dataclasses.field(default_factory=dict)

    @property
    def pid(self) -> str:
        return str(self.id)

    @property
    def expected_ts(self) -> Optional[int]:
        if self.ts is None:
            return None
        if isinstance(self.ts, int):
            return self.ts
        return int(dt.datetime.fromisoformat(self.ts.replace("Z", "+00:00")).timestamp())

    def doc(self) -> dict:
        d = {"id": self.id, "text": self.text}
        if self.author is not None:
            d["author"] = self.author
        if self.ts is not None:
            d["ts"] = self.ts
        d.update(self.extra)
        return d

    def raw(self) -> bytes:
        return json.dumps(self.doc(), ensure_ascii=False).encode("utf-8")


@dataclasses.dataclass
class BadPost:
    key: str
    raw: bytes
    reason: str
    partition: int


@dataclasses.dataclass
class Corpus:
    items: list  # Post | BadPost in produce order

    @property
    def posts(self) -> list:
        return [p for p in self.items if isinstance(p, Post)]

    @property
    def bad(self) -> list:
        return [p for p in self.items if isinstance(p, BadPost)]

    @property
    def flagged(self) -> list:
        return [p for p in self.posts if p.rules]

    def messages(self) -> list:
        return [(p.pid, p.raw(), p.partition) if isinstance(p, Post)
                else (p.key, p.raw, p.partition) for p in self.items]

    def jsonl(self) -> bytes:
        return b"".join(p.raw() + b"\n" for p in self.posts)


class Gen:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def word(self) -> str:
        return "".join(self.rng.choice(SYLLABLES) for _ in range(self.rng.randint(2, 4)))

    def words(self, lo: int, hi: int) -> list:
        return [self.word() for _ in range(self.rng.randint(lo, hi))]

    def sentence(self, lo: int = 10, hi: int = 20) -> str:
        ws = self.words(lo, hi)
        ws[0] = ws[0].capitalize()
        # some texture: a mention, a hashtag, a harmless link, punctuation
        if self.rng.random() < 0.2:
            ws.insert(self.rng.randrange(len(ws)), "@" + self.word())
        if self.rng.random() < 0.2:
            ws.insert(self.rng.randrange(len(ws)), "#" + self.word())
        if self.rng.random() < 0.15:
            ws.append(f"https://example.org/{self.word()}/{self.word()}")
        if self.rng.random() < 0.3:
            i = self.rng.randrange(1, len(ws))
            ws[i - 1] += self.rng.choice([",", ";", " -", ":"])
        return " ".join(ws) + self.rng.choice([".", "!", "?", "", "..."])

    def embed(self, phrases: list, lo: int = 6, hi: int = 16) -> str:
        """Filler words with the phrases at random places (never glued to a word)."""
        ws = self.words(lo, hi)
        for ph in phrases:
            punct = self.rng.choice(["", "", "!", ",", "."])
            ws.insert(self.rng.randrange(len(ws) + 1), ph + punct)
        ws[0] = ws[0][:1].upper() + ws[0][1:]
        return " ".join(ws)


# Rule hits in plain ASCII (case varies): rule -> phrases.
ASCII_HITS = {
    "scam.giveaway": ["free giveaway", "FREE GIVEAWAY", "Double your Bitcoin",
                      "double your bitcoin", "send 2 btc", "Send 15 ETH", "send  3 btc",
                      "SEND 250 BTC", "Free Giveaway"],
    "phishing.credentials": ["verify your account", "Confirm your password",
                             "ACCOUNT SUSPENDED", "account suspended", "Verify Your Account",
                             "confirm  your password", "CONFIRM YOUR PASSWORD",
                             "verify your account"],
    "spam.promo": ["limited offer", "Click here", "work from home", "CLICK HERE",
                   "Limited Offer", "Work From Home", "click here", "limited  offer"],
    "profanity.mild": ["frak", "Smeg", "GORRAM", "frak", "smeg", "Gorram", "FRAK", "gorram"],
    "malware.link": ["http://dl.badfiles.example/setup.exe",
                     "https://cdn.example.net/app/update.apk",
                     "http://files.example.org/x/screensaver.scr",
                     "https://get-free-stuff.example/download/installer_v2.exe",
                     "http://203.0.113.7/bin/payload.apk",
                     "https://mirror.example.com/a/b/c/tool-setup.exe"],
}

# Obfuscated hits: (rule, text of the hit). Spans are checked by normalizing the slice.
OBFUSCATED_HITS = [
    # FREE GIVEAWAY in fullwidth letters
    ("scam.giveaway", "\uff26\uff32\uff25\uff25 \uff27\uff29\uff36\uff25\uff21\uff37\uff21\uff39"),
    ("scam.giveaway", "fr\u200bee giveaway"),                      # zero-width space
    ("scam.giveaway", "\uff53\uff45\uff4e\uff44 \uff15 \uff22\uff34\uff23"),  # send 5 BTC fullwidth
    ("spam.promo", "cli\u00adck he\u200dre"),                       # soft hyphen, ZWJ
    ("spam.promo", "work\u00a0from\u00a0home"),                     # no-break spaces
    ("phishing.credentials",
     "\U0001d42f\U0001d41e\U0001d42b\U0001d422\U0001d41f\U0001d432 "
     "\U0001d432\U0001d428\U0001d42e\U0001d42b "
     "\U0001d41a\U0001d41c\U0001d41c\U0001d428\U0001d42e\U0001d427\U0001d42d"),  # math bold
    ("phishing.credentials", "con\ufb01rm your password"),          # fi ligature
    ("phishing.credentials", "confirm your pa\u00dfword"),          # sharp s folds to ss
    ("profanity.mild", "F\u200bR\u200bA\u200bK"),                   # zero-width between letters
    ("profanity.mild", "\u24e2\u24dc\u24d4\u24d6"),                 # circled letters smeg
    ("profanity.mild", "\uff27\uff2f\uff32\uff32\uff21\uff2d"),     # GORRAM fullwidth
]

# Clean posts that come close to a rule without hitting it (whole words, other forms).
NEAR_MISSES = [
    "The #freegiveaway tag trends again but nothing there is free, giveaways are a myth.",
    "The sender of 5 btc was never found, said the report.",
    "Clicking here and there all day; I worked from home office chairs.",
    "Frakture of the wrist, the doctor said. Smegol cosplay was still fun.",
    "Download the annual report at https://example.org/files/report.pdf today.",
    "Limited offers? No: a limitless offer of kindness for everyone.",
    "We will verify your accounts tomorrow morning, the bank clerk wrote.",
    "Doubleyour bitcoinage is not a word, and neither is sendbtc.",
    "Our gorrammar teacher frakked nothing; what a smegolian-free day.",
]

CAMPAIGN_AUTHORS = ["camp_a1", "camp_a2", "camp_a3", "camp_a4", "camp_a5", "camp_a2",
                    "camp_a6", "camp_a7", "camp_a8", "camp_a3", "camp_a9", "camp_a10"]


def campaign_text(i: int, rng: random.Random) -> str:
    """Spam campaign: the same words, differing in digits (same lengths), URLs, mentions,
    punctuation and letter case only, so every variant normalizes to one fingerprint."""
    earn = ["Earn", "EARN", "earn"][i % 3]
    p1 = ["!", "!!", ".", "!!!"][i % 4]
    p2 = [".", "!", "?!"][i % 3]
    return (f"{earn} {rng.randint(100, 999)} dollars a day and work from home with zero "
            f"experience{p1} Limited offer for the first {rng.randint(10, 99)} people who "
            f"join before midnight{p2} https://promo-{rng.randint(1000, 9999)}.example/join?ref="
            f"{rng.randint(10000, 99999)} @helper{rng.randint(10, 99)}")


def giveaway_campaign_text(i: int, rng: random.Random) -> str:
    return (f"Huge free giveaway from the official team, send {rng.randint(1, 9)} btc to our "
            f"wallet and receive {rng.randint(1, 9)} btc back within {rng.randint(10, 99)} "
            f"minutes, hurry before it ends{'!' * (1 + i % 3)} "
            f"https://giveaway-{rng.randint(100, 999)}.example/claim "
            f"@winner{rng.randint(100, 999)}")


def build_corpus(base_ts: int, seed: int = 20241128) -> Corpus:
    g = Gen(seed)
    rng = g.rng
    fixed_ts = 1732780800  # 2024-11-28T08:00:00Z

    def ts_for(i: int):
        t = fixed_ts + i * 37
        form = i % 5
        if form == 0:
            return t
        if form == 1:
            return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        if form == 2:
            tz = dt.timezone(dt.timedelta(hours=2))
            return dt.datetime.fromtimestamp(t, tz).isoformat()  # ...+02:00
        if form == 3:
            return None
        return t

    body = []  # (text, rules) of non-campaign valid posts
    for _ in range(200):
        body.append((g.sentence(), set()))
    for text in NEAR_MISSES:
        body.append((text, set()))
    for rid, phrases in ASCII_HITS.items():
        for ph in phrases:
            body.append((g.embed([ph]), {rid}))
    # a keyword twice (two spans), a keyword at the very start and end, keyword + regex
    body.append(("free giveaway " + " ".join(g.words(8, 12)) + " and another free giveaway",
                 {"scam.giveaway"}))
    body.append(("Frak " + " ".join(g.words(8, 12)) + " smeg", {"profanity.mild"}))
    body.append((g.embed(["free giveaway", "send 4 eth"]), {"scam.giveaway"}))
    # several rules in one post
    rule_ids = list(ASCII_HITS)
    for _ in range(14):
        chosen = rng.sample(rule_ids, rng.choice([2, 2, 3]))
        body.append((g.embed([rng.choice(ASCII_HITS[r]) for r in chosen]), set(chosen)))
    for rid, hit in OBFUSCATED_HITS:
        body.append((g.embed([hit]), {rid}))
    rng.shuffle(body)

    items: list = []
    for i, (text, rules) in enumerate(body):
        pid: object = f"p{i:04d}" if i % 7 else 900000 + i  # some numeric ids
        author = None if i % 11 == 0 else f"user_{rng.randint(1, 400)}"
        extra = {}
        if i % 9 == 0:
            extra = {"lang": "en", "url": f"https://social.example/p/{i}", "meta": {"x": [1, 2]}}
        items.append(Post(id=pid, text=text, author=author, ts=ts_for(i), partition=i % 3,
                          rules=rules, extra=extra))

    # the campaign: all on partition 0, spread through the stream in order
    crng = random.Random(seed + 1)
    campaign = [Post(id=f"camp-{n:02d}", text=campaign_text(n, crng),
                     author=CAMPAIGN_AUTHORS[n - 1], ts=base_ts - 3600 + n * 60, partition=0,
                     rules={"spam.promo"}, campaign=n)
                for n in range(1, len(CAMPAIGN_AUTHORS) + 1)]
    positions = sorted(rng.sample(range(len(items)), len(campaign)))
    for pos, post in reversed(list(zip(positions, campaign))):
        items.insert(pos, post)

    # undecodable posts (dead-letter topic)
    too_big = json.dumps({"id": "too-big", "text": "lorem ipsum " * 6000}).encode()
    assert 65536 < len(too_big) < 900000
    bad = [
        BadPost("bad-json", b'{"id": "bad-json", "text": "unterminated', "invalid_json", 1),
        BadPost("bad-utf8", b'{"id": "bad-utf8", "text": "caf\xc3\x28 au lait"}',
                "invalid_utf8", 2),
        BadPost("bad-array", b'["not", "an", "object"]', "not_object", 1),
        BadPost("no-text", b'{"id": "no-text", "author": "u9"}', "missing_text", 2),
        BadPost("num-text", b'{"id": "num-text", "text": 42}', "missing_text", 1),
        BadPost("no-id", b'{"text": "a post without an id"}', "missing_id", 2),
        BadPost("too-big", too_big, "too_large", 1),
    ]
    for b in bad:
        items.insert(rng.randrange(10, len(items) - 10), b)

    # the last post of every partition is flagged: once every alert is out, the worker has
    # read every partition to its end
    for part in range(3):
        items.append(Post(id=f"tail-{part}", text=g.embed(["click here"]), author="user_tail",
                          ts=fixed_ts, partition=part, rules={"spam.promo"}))

    corpus = Corpus(items)
    _check_corpus(corpus)
    return corpus


def _check_corpus(corpus: Corpus):
    """The generator's intent agrees with the Python model (guards the test itself)."""
    ids = [p.pid for p in corpus.posts]
    assert len(ids) == len(set(ids))
    for p in corpus.posts:
        assert rules_hit(p.text) == p.rules, (p.pid, p.text, rules_hit(p.text), p.rules)
    assert 280 <= len(corpus.items) <= 330, len(corpus.items)


def expected_duplicates(campaign_posts: list) -> dict:
    """post id -> (count, authors) in processing order of one campaign (count 1 -> None)."""
    out, authors = {}, set()
    for n, p in enumerate(campaign_posts, start=1):
        authors.add(p.author)
        out[p.pid] = None if n == 1 else (n, len(authors))
    return out


# ---------------------------------------------------------------------------------------
# shared runs


def run_args(kafka, group, topics, rules=RULES_FILE, redis_url=None, extra=()):
    args = ["run", "--brokers", kafka.bootstrap, "--group", group,
            "--input-topic", topics.input, "--output-topic", topics.alerts,
            "--dlq-topic", topics.dlq, "--rules", str(rules)]
    if redis_url:
        args += ["--redis", redis_url]
    return args + list(extra)


def new_topics(kafka, prefix: str) -> SimpleNamespace:
    t = SimpleNamespace(input=unique_name(f"{prefix}-posts"),
                        alerts=unique_name(f"{prefix}-alerts"),
                        dlq=unique_name(f"{prefix}-dlq"))
    kafka.create_topics([t.input, t.alerts, t.dlq], partitions=3)
    return t


def alerts_by_id(records) -> dict:
    out = {}
    for r in records:
        a = r.json()
        assert a["post_id"] not in out, f"two alerts for post {a['post_id']}"
        out[a["post_id"]] = (r, a)
    return out


@pytest.fixture(scope="module")
def corpus():
    return build_corpus(base_ts=int(time.time()))


@pytest.fixture(scope="module")
def e2e(kafka, corpus, tmp_path_factory):
    """One worker run over the corpus (in-memory duplicate store)."""
    require_tidewatch()
    topics = new_topics(kafka, "e2e")
    group = unique_name("e2e-group")
    locations = kafka.produce(topics.input, corpus.messages())
    loc = {}
    for item, where in zip(corpus.items, locations):
        loc[item.pid if isinstance(item, Post) else item.key] = where

    log_dir = tmp_path_factory.mktemp("e2e-worker")
    worker = run_worker(run_args(kafka, group, topics), log_dir=log_dir, name="e2e")
    try:
        kafka.wait_for_messages(topics.alerts, len(corpus.flagged), timeout=120, proc=worker)
        kafka.wait_for_messages(topics.dlq, len(corpus.bad), timeout=60, proc=worker)
    finally:
        rc = stop_worker(worker, timeout=40)
    alerts = kafka.consume_all(topics.alerts, expected_count=len(corpus.flagged), timeout=60)
    dlq = kafka.consume_all(topics.dlq, expected_count=len(corpus.bad), timeout=60)
    return SimpleNamespace(topics=topics, group=group, loc=loc, worker=worker, rc=rc,
                           alerts=alerts, dlq=dlq,
                           committed=kafka.committed_offsets(group, topics.input),
                           high=kafka.high_watermarks(topics.input))


# ---------------------------------------------------------------------------------------
# command line


def test_version_and_help(tidewatch_bin):
    v = run_tidewatch(["--version"])
    assert v.returncode == 0, v.stderr
    assert re.search(rb"\d+\.\d+", v.stdout + v.stderr), v.stdout
    h = run_tidewatch(["--help"])
    assert h.returncode == 0, h.stderr
    text = (h.stdout + h.stderr).decode(errors="replace")
    for word in ("run", "scan", "rules"):
        assert word in text, f"--help does not mention {word!r}:\n{text}"
    bogus = run_tidewatch(["no-such-command"])
    assert bogus.returncode != 0


def test_rules_check_accepts_the_fixture(tidewatch_bin):
    r = run_tidewatch(["rules", "check", RULES_FILE])
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert (r.stdout + r.stderr).strip(), "rules check printed no summary"


def _marked_lines(path: Path) -> set:
    """Lines of a YAML fixture that end in a "# BAD" comment (not comment-only lines)."""
    marker = re.compile(r"^\s*[^#\s].*#\s*BAD\b")
    return {n for n, line in enumerate(path.read_text().splitlines(), start=1)
            if marker.match(line)}


def _reported_lines(stderr: bytes, path: Path) -> set:
    pat = re.compile(re.escape(path.name) + r":(\d+):")
    return {int(m.group(1)) for m in pat.finditer(stderr.decode(errors="replace"))}


def test_rules_check_reports_every_bad_pattern(tidewatch_bin):
    r = run_tidewatch(["rules", "check", BAD_PATTERNS_FILE])
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 1, f"exit {r.returncode}\n{err}"
    want = _marked_lines(BAD_PATTERNS_FILE)
    assert len(want) == 3
    assert _reported_lines(r.stderr, BAD_PATTERNS_FILE) == want, err


def test_rules_check_reports_every_invalid_rule(tidewatch_bin):
    r = run_tidewatch(["rules", "check", BAD_RULES_FILE])
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 1, f"exit {r.returncode}\n{err}"
    assert _reported_lines(r.stderr, BAD_RULES_FILE) == _marked_lines(BAD_RULES_FILE), err


# ---------------------------------------------------------------------------------------
# run: one worker over the corpus


def test_run_exits_cleanly_and_commits_everything(e2e):
    assert e2e.rc == 0, e2e.worker.describe()
    assert e2e.committed == e2e.high, (
        f"committed offsets {e2e.committed} != high watermarks {e2e.high} after SIGTERM")


def test_run_alerts_exactly_the_flagged_posts(e2e, corpus):
    got = {(a["post_id"], m["rule"]) for r in e2e.alerts for a in [r.json()] for m in a["matches"]}
    want = {(p.pid, rid) for p in corpus.posts for rid in p.rules}
    missing, extra = want - got, got - want
    assert not missing and not extra, (
        f"missing {len(missing)}: {sorted(missing)[:20]}\nextra {len(extra)}: {sorted(extra)[:20]}")
    assert len(e2e.alerts) == len(corpus.flagged), "more than one alert for some post"


def test_run_alert_fields(e2e, corpus):
    by_id = alerts_by_id(e2e.alerts)
    posts = {p.pid: p for p in corpus.posts}
    versions = set()
    for pid, (rec, a) in by_id.items():
        p = posts[pid]
        assert rec.key == pid.encode(), (rec.key, pid)
        assert isinstance(a["post_id"], str)
        assert a["ts"] == p.expected_ts, (pid, p.ts, a["ts"])
        assert a["author"] == p.author, (pid, a["author"])
        assert a["source"] == {"topic": e2e.topics.input, "partition": e2e.loc[pid][0],
                               "offset": e2e.loc[pid][1]}, (pid, a["source"])
        rules = [m["rule"] for m in a["matches"]]
        assert len(rules) == len(set(rules)), a["matches"]
        for m in a["matches"]:
            assert m["category"] == RULES[m["rule"]]["category"], m
            assert m["severity"] == RULES[m["rule"]]["severity"], m
            assert isinstance(m["snippet"], str) and m["snippet"], m
            assert m["spans"], m
        assert RULES_VERSION_RE.match(a["rules_version"]), a["rules_version"]
        versions.add(a["rules_version"])
    assert len(versions) == 1


def test_run_spans_point_into_the_original_text(e2e, corpus):
    posts = {p.pid: p for p in corpus.posts}
    for rec in e2e.alerts:
        a = rec.json()
        p = posts[a["post_id"]]
        for m in a["matches"]:
            spans = [tuple(s) for s in m["spans"]]
            if p.text.isascii():
                assert sorted(spans) == ascii_spans(p.text, m["rule"]), (p.pid, p.text, m)
            for s in spans:
                piece = normalize(span_text(p.text, s))
                rule = m["rule"]
                ok = any(piece == k for k in RULES[rule]["keywords"]) or \
                    any(re.fullmatch(x, piece) for x in RULES[rule]["regex"])
                assert ok, f"{p.pid}: span {s} = {span_text(p.text, s)!r} is no pattern of {rule}"


def _check_campaign(by_id, campaign_posts):
    want = expected_duplicates(campaign_posts)
    clusters = set()
    for p in campaign_posts:
        dup = by_id[p.pid]["duplicate"]
        if want[p.pid] is None:
            assert dup is None, (p.pid, dup)
            continue
        assert dup is not None, f"{p.pid}: no duplicate info, expected count {want[p.pid][0]}"
        assert (dup["count"], dup["authors"]) == want[p.pid], (p.pid, dup, want[p.pid])
        assert CLUSTER_RE.match(dup["cluster"]), dup
        assert dup["first_seen"] == campaign_posts[0].expected_ts, dup
        clusters.add(dup["cluster"])
    assert len(clusters) == 1, clusters
    return clusters.pop()


def test_run_campaign_is_one_cluster_with_growing_counts(e2e, corpus):
    by_id = {pid: a for pid, (_r, a) in alerts_by_id(e2e.alerts).items()}
    campaign = sorted((p for p in corpus.posts if p.campaign), key=lambda p: p.campaign)
    assert len(campaign) == 12
    cluster = _check_campaign(by_id, campaign)
    # nothing else is a duplicate of anything (the other posts are all different)
    others = {pid: a["duplicate"] for pid, a in by_id.items()
              if not pid.startswith("camp-") and a["duplicate"] is not None}
    assert not others, f"unexpected duplicates: {dict(list(others.items())[:10])}"
    assert cluster


def test_run_dead_letters(e2e, corpus):
    got = {r.key.decode(): r for r in e2e.dlq}
    want = {b.key: b for b in corpus.bad}
    assert set(got) == set(want), (sorted(got), sorted(want))
    assert len(e2e.dlq) == len(want)
    for key, b in want.items():
        r = got[key]
        assert r.value == b.raw, f"{key}: dead letter value differs from the original bytes"
        assert r.header("reason") == b.reason, (key, r.headers)
        assert r.header("error"), (key, r.headers)
        assert r.header("source_topic") == e2e.topics.input, (key, r.headers)
        part, off = e2e.loc[key]
        assert r.header("source_partition") == str(part), (key, r.headers)
        assert r.header("source_offset") == str(off), (key, r.headers)


# ---------------------------------------------------------------------------------------
# scan: the same posts from a file give the same alerts


def _scan(corpus_bytes: bytes, path_arg: str, stdin: Optional[bytes] = None):
    r = run_tidewatch(["scan", "--rules", RULES_FILE, path_arg], input=stdin, timeout=120)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-3000:]
    return [json.loads(line) for line in r.stdout.decode().splitlines() if line.strip()]


def _comparable(alerts) -> dict:
    return {a["post_id"]: (sorted((m["rule"], tuple(map(tuple, m["spans"]))) for m in a["matches"]),
                           None if a["duplicate"] is None
                           else (a["duplicate"]["cluster"], a["duplicate"]["count"],
                                 a["duplicate"]["authors"]))
            for a in alerts}


def test_scan_matches_run(e2e, corpus, tmp_path):
    path = tmp_path / "posts.jsonl"
    path.write_bytes(corpus.jsonl())
    scanned = _scan(corpus.jsonl(), str(path))
    line_of = {p.pid: n for n, p in enumerate(corpus.posts, start=1)}
    for a in scanned:
        assert a["source"] == {"file": str(path), "line": line_of[a["post_id"]]}, a["source"]
    assert len(scanned) == len(corpus.flagged)
    run_alerts = [r.json() for r in e2e.alerts]
    assert _comparable(scanned) == _comparable(run_alerts)
    assert {a["rules_version"] for a in scanned} == {a["rules_version"] for a in run_alerts}


def test_scan_reads_stdin(corpus):
    few = [p for p in corpus.posts if p.rules and p.text.isascii()][:5]
    data = b"".join(p.raw() + b"\n" for p in few)
    scanned = _scan(data, "-", stdin=data)
    assert sorted(a["post_id"] for a in scanned) == sorted(p.pid for p in few)
    assert all(a["source"]["file"] == "-" for a in scanned)
    assert sorted(a["source"]["line"] for a in scanned) == [1, 2, 3, 4, 5]


# ---------------------------------------------------------------------------------------
# Redis: clusters outlive a worker, replays are not counted twice


def test_redis_clusters_survive_restart_and_replays(kafka, redis_clean, workers, tidewatch_bin):
    g = Gen(7)
    crng = random.Random(8)
    base = int(time.time()) - 1800
    campaign = [Post(id=f"gw-{n:02d}", text=giveaway_campaign_text(n, crng),
                     author=CAMPAIGN_AUTHORS[n - 1], ts=base + n * 30, partition=0,
                     rules={"scam.giveaway"}, campaign=n) for n in range(1, 13)]
    for p in campaign:
        assert rules_hit(p.text) == {"scam.giveaway"}, p.text
    fillers = [Post(id=f"gf-{n}", text=g.sentence(), author="someone", ts=base,
                    partition=1 + n % 2, rules=set()) for n in range(6)]
    topics = new_topics(kafka, "redis")
    db = 3
    url = redis_clean.url_for(db)

    # run 1: the first half of the campaign
    first = campaign[:6]
    kafka.produce(topics.input, [(p.pid, p.raw(), p.partition) for p in first + fillers])
    w1 = workers.start(run_args(kafka, unique_name("redis-g1"), topics, redis_url=url), name="r1")
    kafka.wait_for_messages(topics.alerts, 6, timeout=90, proc=w1)
    assert workers.stop(w1) == 0, w1.describe()
    run1 = {pid: a for pid, (_r, a) in alerts_by_id(kafka.consume_all(topics.alerts, 6)).items()}
    assert set(run1) == {p.pid for p in first}
    cluster = _check_campaign(run1, first)
    assert redis_clean.dbsize(db) > 0, f"nothing stored in Redis db {db}"
    assert redis_clean.dbsize(0) == 0, "worker wrote to db 0, not the db of its --redis URL"

    # run 2: a new process and group re-reads the first half (replays: same ids) and then
    # the second half; counts continue from run 1 and replays do not add to them
    second = campaign[6:]
    kafka.produce(topics.input, [(p.pid, p.raw(), p.partition) for p in second])
    alerts2 = unique_name("redis-alerts2")
    kafka.create_topic(alerts2, 3)
    topics2 = SimpleNamespace(input=topics.input, alerts=alerts2, dlq=topics.dlq)
    group2 = unique_name("redis-g2")
    w2 = workers.start(run_args(kafka, group2, topics2, redis_url=url), name="r2")
    kafka.wait_for_messages(alerts2, 12, timeout=90, proc=w2)
    assert workers.stop(w2) == 0, w2.describe()
    run2 = {pid: a for pid, (_r, a) in alerts_by_id(kafka.consume_all(alerts2, 12)).items()}
    assert set(run2) == {p.pid for p in campaign}
    authors_first = len({p.author for p in first})
    for p in first:  # replays: the cluster as run 1 left it
        dup = run2[p.pid]["duplicate"]
        assert dup is not None, f"replayed {p.pid} lost its duplicate info"
        assert (dup["cluster"], dup["count"], dup["authors"]) == (cluster, 6, authors_first), \
            (p.pid, dup)
    for p in second:
        assert run2[p.pid]["duplicate"]["cluster"] == cluster, (p.pid, run2[p.pid]["duplicate"])
        assert run2[p.pid]["duplicate"]["first_seen"] == campaign[0].expected_ts
    # second half: counts 7..12 exactly (checked against the whole campaign's order)
    want = expected_duplicates(campaign)
    for p in second:
        dup = run2[p.pid]["duplicate"]
        assert (dup["count"], dup["authors"]) == want[p.pid], (p.pid, dup, want[p.pid])
    assert kafka.committed_offsets(group2, topics.input) == kafka.high_watermarks(topics.input)


def test_redis_down_alerts_still_flow(kafka, workers, tidewatch_bin):
    """Duplicate state is an extra, not a gate: with Redis unreachable the worker still
    publishes every alert, marked as having no duplicate information (never a false null)."""
    topics = new_topics(kafka, "noredis")
    posts = [Post(id=f"nr-{i}", text="please click here for the newsletter", author=f"u{i}",
                  ts=1732780800, partition=i % 3, rules={"spam.promo"}) for i in range(4)]
    kafka.produce(topics.input, [(p.pid, p.raw(), p.partition) for p in posts])
    group = unique_name("noredis-g")
    dead_url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    w = workers.start(run_args(kafka, group, topics, redis_url=dead_url), name="noredis")
    kafka.wait_for_messages(topics.alerts, len(posts), timeout=60, proc=w)
    assert workers.stop(w) == 0, w.describe()
    alerts = {pid: a for pid, (_r, a) in alerts_by_id(kafka.consume_all(topics.alerts, 4)).items()}
    assert set(alerts) == {p.pid for p in posts}
    for pid, a in alerts.items():
        assert a["duplicate"] == {"unavailable": True}, (pid, a["duplicate"])
    assert kafka.committed_offsets(group, topics.input) == kafka.high_watermarks(topics.input)


# ---------------------------------------------------------------------------------------
# operations: HTTP endpoints, logs, oversize posts


def _http_get(port: int, path: str):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def test_sigterm_during_startup_exits_cleanly(kafka, workers, tidewatch_bin):
    """Kubernetes may stop a pod that has just started: SIGTERM right after the worker's first
    log line (typically before its first partition assignment, where librdkafka 2.0.2's
    cooperative-sticky close aborts) must still give a clean exit 0."""
    topics = new_topics(kafka, "early")
    for i in range(3):
        w = workers.start(run_args(kafka, unique_name("early-g"), topics), name=f"early{i}")
        wait_until(lambda: w.stderr_text().strip(), scaled(30), "the worker's first log line",
                   interval=0.01, proc=w)
        assert workers.stop(w) == 0, w.describe()


def test_http_endpoints(kafka, workers, tidewatch_bin):
    topics = new_topics(kafka, "http")
    port = free_port()
    w = workers.start(run_args(kafka, unique_name("http-g"), topics,
                               extra=["--http", f"127.0.0.1:{port}"]), name="http")
    kafka.produce(topics.input, [("h1", json.dumps({"id": "h1", "text": "click here now"}))])
    kafka.wait_for_messages(topics.alerts, 1, timeout=60, proc=w)
    wait_until(lambda: _http_get(port, "/healthz")[0] == 200, scaled(30), "/healthz 200", proc=w)
    wait_until(lambda: _http_get(port, "/readyz")[0] == 200, scaled(30), "/readyz 200", proc=w)
    status, body = _http_get(port, "/metrics")
    assert status == 200
    assert "tidewatch_" in body, body[:2000]
    assert workers.stop(w) == 0, w.describe()


def test_run_logs_are_json_lines(e2e):
    lines = [l for l in e2e.worker.stderr_text().splitlines() if l.strip()]
    assert lines, "the worker logged nothing"
    bad = []
    for line in lines:
        try:
            if not isinstance(json.loads(line), dict):
                bad.append(line)
        except ValueError:
            bad.append(line)
    assert not bad, f"{len(bad)} stderr lines are not JSON objects, e.g.:\n" + "\n".join(bad[:10])


def test_oversize_2mb_post_goes_to_dead_letters(kafka, workers, tidewatch_bin):
    """A post far over max_post_bytes (2 MB, bigger than a default Kafka message: the input
    topic allows it, see the broker's message.max.bytes) is dead-lettered as too_large and the
    worker goes on with the next post: one huge post must not stop (and, after a restart,
    stop again) the worker. The dead letter holds the original bytes, or, if the worker
    chooses to cut it to fit, a prefix of them with a header saying so."""
    topics = new_topics(kafka, "big")
    big = json.dumps({"id": "huge", "text": "spam " * 420000}).encode()
    assert len(big) > 2_000_000
    after = json.dumps({"id": "after-huge", "text": "frak, it works"}).encode()
    kafka.produce(topics.input, [("huge", big, 0), ("after-huge", after, 0)])
    group = unique_name("big-g")
    w = workers.start(run_args(kafka, group, topics), name="big")
    kafka.wait_for_messages(topics.alerts, 1, timeout=60, proc=w)
    kafka.wait_for_messages(topics.dlq, 1, timeout=60, proc=w)
    assert workers.stop(w) == 0, w.describe()
    [dead] = kafka.consume_all(topics.dlq, 1)
    assert dead.header("reason") == "too_large", dead.headers
    assert dead.key == b"huge"
    if dead.value != big:
        assert dead.value and big.startswith(dead.value), "dead letter is not the original post"
        assert any("truncat" in name.lower() for name in dead.headers), (
            f"dead letter cut to {len(dead.value)} bytes without a header saying so: "
            f"{sorted(dead.headers)}")
    [alert] = kafka.consume_all(topics.alerts, 1)
    assert alert.json()["post_id"] == "after-huge"
    committed = kafka.committed_offsets(group, topics.input)
    for partition, high in kafka.high_watermarks(topics.input).items():
        if high > 0:  # an empty partition has nothing to commit
            assert committed[partition] == high, (partition, committed, high)
