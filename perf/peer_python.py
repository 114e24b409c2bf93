#!/usr/bin/env python3
"""The peer a team would write instead of tidewatch, doing the same job with the same rules:
decode, normalize (NFKC + casefold + invisibles dropped + whitespace collapsed = `folded`;
marks, Arabic letter forms and Unicode confusables folded = `skeleton`, with tidewatch's own
confusables table), match every keyword (caseless, whole words) and regex of the rule set in
one Hyperscan pass per view (the `hyperscan` package), apply `langs:`, recognise exact and
near-duplicates (datasketch MinHash, 100 permutations in 20 bands of 5, the same shingles as
tidewatch: word unigrams + bigrams, character 3-grams without spaces; a band match must agree
on >= 50% of the signature), and publish one JSON alert per flagged post.

  peer_python.py scan --rules R.yaml --alerts OUT.jsonl POSTS.jsonl      (in-memory LSH)
  peer_python.py run  --rules R.yaml --brokers B --topic T --group G --alerts-topic A
                      [--redis redis://H:P/DB] --expect N                 (Kafka + Redis LSH)

Protocol for perf/bench_fair.py: prints READY once the rules are compiled (and the consumer
subscribed), DONE {json} once every post is processed, alerts delivered and offsets
committed, then waits for stdin to close so its CPU can be read from /proc.

Rules it cannot express are refused by name (all, except, min_matches, within, mode, views,
squash, fields): the benchmark sets use none of them.
"""

import argparse
import hashlib
import json
import re
import sys
import unicodedata
from pathlib import Path

import hyperscan
import yaml
from datasketch import MinHashLSH, LeanMinHash, MinHash

ROOT = Path(__file__).resolve().parent.parent
UNSUPPORTED = {"all", "except", "min_matches", "within", "mode", "views", "squash", "fields"}
BATCH = 500
WINDOW_S = 86400

# ---------------------------------------------------------------------------------------
# normalization


def _invisibles():
    table = {}
    for cp in list(range(0x0, 0x20)) + [0x7F] + list(range(0x80, 0xA0)):
        table[cp] = " "
    for cp in range(0x80, 0x110000):
        ch = chr(cp)
        cat = unicodedata.category(ch)
        if cat == "Cf" or 0xFE00 <= cp <= 0xFE0F or 0xE0100 <= cp <= 0xE01EF or cp == 0x115F \
                or cp == 0x1160 or cp == 0x3164 or cp == 0xFFA0 or cp == 0x034F:
            table[cp] = None
    return table


INVISIBLE = _invisibles()
MARKS = [(0x0300, 0x036F), (0x0483, 0x0489), (0x0591, 0x05BD), (0x05BF, 0x05BF),
         (0x05C1, 0x05C2), (0x05C4, 0x05C5), (0x05C7, 0x05C7), (0x0610, 0x061A),
         (0x064B, 0x065F), (0x0670, 0x0670), (0x06D6, 0x06DC), (0x06DF, 0x06E4),
         (0x06E7, 0x06E8), (0x06EA, 0x06ED), (0x08D3, 0x08E1), (0x08E3, 0x08FF),
         (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x20D0, 0x20FF), (0xFE20, 0xFE2F)]
ARABIC = {0x0640: None, 0x0622: "\u0627", 0x0623: "\u0627", 0x0625: "\u0627", 0x0671: "\u0627",
          0x0672: "\u0627", 0x0673: "\u0627", 0x0675: "\u0627", 0x0649: "\u064a",
          0x06CC: "\u064a", 0x0626: "\u064a", 0x0629: "\u0647", 0x0624: "\u0648",
          0x06A9: "\u0643"}


def _skeleton_table():
    """tidewatch's confusables table (common/normalize/confusables_table.c, generated from
    Unicode confusables.txt), the marks it drops and the Arabic forms it unifies."""
    table = {}
    src = ROOT / "common" / "normalize" / "confusables_table.c"
    for m in re.finditer(r'\{0x([0-9A-Fa-f]+), "((?:[^"\\]|\\.)*)"\}', src.read_text()):
        table[int(m.group(1), 16)] = m.group(2).encode().decode("unicode_escape")
    for lo, hi in MARKS:
        for cp in range(lo, hi + 1):
            table[cp] = None
    table.update(ARABIC)
    return table


SKELETON = _skeleton_table()


def fold(text):
    return " ".join(unicodedata.normalize("NFKC", text).casefold().translate(INVISIBLE).split())


def skeleton(folded):
    if folded.isascii():
        return folded
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", folded).translate(SKELETON))


# ---------------------------------------------------------------------------------------
# rules


def load_rules(path):
    """[(rule dict, keywords, regexes)] from a tidewatch rules file (any-group rules)."""
    base = Path(path).parent
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    out = []
    for rule in doc["rules"]:
        bad = UNSUPPORTED & set(rule)
        if bad:
            raise SystemExit(f"rule {rule['id']}: {sorted(bad)} not supported by this peer")
        words = list(rule.get("keywords") or [])
        files = rule.get("keywords_file") or []
        for f in [files] if isinstance(files, str) else files:
            for line in (base / f).read_text(encoding="utf-8").splitlines():
                if line.strip() and not line.startswith("#"):
                    words.append(line.strip())
        rx = rule.get("regex") or []
        out.append((rule, words, [rx] if isinstance(rx, str) else rx))
    return out


def _is_arabic(s):
    return all("\u0600" <= c <= "\u06ff" or c == " " for c in s)


def _word_char(ch):
    return ch == "_" or unicodedata.category(ch)[0] in "LNM"


def _whole_word(b, start, end):
    """Unicode word boundaries on both sides of b[start:end) (UTF-8 bytes), like tidewatch's
    `mode: word`. Checked here rather than compiled into the patterns: Hyperscan's UCP \\W
    made compiling 1,000 keywords take a minute."""
    if start > 0:
        i = start - 1
        while i > 0 and 0x80 <= b[i] < 0xC0:
            i -= 1
        if _word_char(b[i:start].decode("utf-8", "replace")[-1]):
            return False
    if end < len(b):
        j = end + 1
        while j < len(b) and 0x80 <= b[j] < 0xC0:
            j += 1
        if _word_char(b[end:j].decode("utf-8", "replace")[0]):
            return False
    return True


class Matcher:
    """One Hyperscan database per view; a pattern id maps to its rule."""

    def __init__(self, rules):
        self.rules = [r for r, _, _ in rules]
        self.langs = [tuple(r.get("langs") or ()) for r in self.rules]
        folded, skel = [], []  # (expr, flags, rule index, is keyword)
        kw_flags = hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_UTF8 | \
            hyperscan.HS_FLAG_SOM_LEFTMOST
        for i, (_, words, regexes) in enumerate(rules):
            for w in words:
                f = fold(w)
                if not f:
                    continue
                folded.append((re.escape(f), kw_flags, i, True))
                # like tidewatch: keywords written in plain ASCII or all Arabic also match
                # through accents and look-alikes
                if f.isascii() or _is_arabic(skeleton(f)):
                    skel.append((re.escape(skeleton(f)), kw_flags, i, True))
            for rx in regexes:
                flags = hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_SINGLEMATCH
                if not rx.isascii():
                    flags |= hyperscan.HS_FLAG_UTF8
                folded.append((rx, flags, i, False))
        self.dbs = [self._compile(folded), self._compile(skel)]

    @staticmethod
    def _compile(patterns):
        if not patterns:
            return None, [], []
        db = hyperscan.Database()
        db.compile(expressions=[p[0].encode() for p in patterns],
                   ids=list(range(len(patterns))), flags=[p[1] for p in patterns])
        return db, [p[2] for p in patterns], [p[3] for p in patterns]

    def match(self, folded, skel, lang):
        hits = set()
        for (db, rule_of, keyword), text in zip(self.dbs, (folded, skel)):
            if db is None or text is None:
                continue
            b = text.encode()

            def on(pid, start, end, flags, ctx):
                if not keyword[pid] or _whole_word(b, start, end):
                    hits.add(rule_of[pid])
            db.scan(b, match_event_handler=on)
        out = []
        for i in sorted(hits):
            langs = self.langs[i]
            if langs and not (lang and any(lang.startswith(x) for x in langs)):
                continue
            out.append(i)
        return out


# ---------------------------------------------------------------------------------------
# near-duplicates

LINK = re.compile(r"(?:https?://|www\.)\S+|@\w+")
NONWORD = re.compile(r"[^\w]+")
DIGITS = re.compile(r"\d+")
SPACED = re.compile(r"[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")


def shingles(folded):
    canon = " ".join(DIGITS.sub("0", NONWORD.sub(" ", LINK.sub(" ", folded))).split())
    words = canon.split()
    if SPACED.search(canon):
        s = canon.replace(" ", "")
        out = {s[i:i + 3] for i in range(max(len(s) - 2, 1))}
    else:
        out = set(words) | {a + " " + b for a, b in zip(words, words[1:])}
    return canon, [x.encode() for x in out]


class NearDup:
    """Exact hash + MinHash LSH; state in Redis (fleet-wide) or in memory."""

    def __init__(self, redis_url=None):
        self.redis = None
        cfg = None
        if redis_url:
            import redis
            self.redis = redis.Redis.from_url(redis_url)
            cfg = {"type": "redis", "basename": b"peer",
                   "redis": {"host": self.redis.connection_pool.connection_kwargs["host"],
                             "port": self.redis.connection_pool.connection_kwargs["port"]}}
        self.lsh = MinHashLSH(num_perm=100, params=(20, 5), storage_config=cfg, prepickle=False)
        self.mem_exact, self.mem_meta, self.mem_size = {}, {}, {}

    def _bands(self, m):
        return [self.lsh._H(m.hashvalues[a:b]) for a, b in self.lsh.hashranges]

    def assign(self, posts):
        """posts: [(post_id, shingle list)] -> [(cluster, size)] in order."""
        sigs, exacts, bands = [], [], []
        for pid, sh in posts:
            m = MinHash(num_perm=100)
            m.update_batch(sh)
            m = LeanMinHash(m)
            sigs.append(m)
            exacts.append(hashlib.blake2b(b"\0".join(sorted(sh)), digest_size=8).hexdigest())
            bands.append(self._bands(m))
        # lookups, one round each: exact keys, then every band of every post
        if self.redis:
            pipe = self.redis.pipeline(transaction=False)
            for e in exacts:
                pipe.get(f"peer:x:{e}")
            found_exact = [v.decode() if v else None for v in pipe.execute()]
        else:
            found_exact = [self.mem_exact.get(e) for e in exacts]
        per_band = [ht.getmany(*[b[i] for b in bands]) for i, ht in enumerate(self.lsh.hashtables)]
        cand = []
        for j in range(len(posts)):
            seen, order = set(), []
            for i in range(len(self.lsh.hashtables)):
                for k in per_band[i][j]:
                    k = k.decode() if isinstance(k, bytes) else k
                    if k not in seen:
                        seen.add(k)
                        order.append(k)
            cand.append(order)
        need = sorted({k for c in cand for k in c})
        meta = {}
        if need and self.redis:
            for k, v in zip(need, self.redis.mget([f"peer:m:{k}" for k in need])):
                if v:
                    meta[k] = v
        elif need:
            meta = {k: self.mem_meta[k] for k in need if k in self.mem_meta}
        out, local_exact, writes = [], {}, []
        for (pid, _), m, e, fe, c in zip(posts, sigs, exacts, found_exact, cand):
            first = e not in local_exact
            cluster = fe or local_exact.get(e)
            if cluster is None:
                mine = m.hashvalues & 0xFFFF
                for k in c:
                    v = meta.get(k)
                    if v is None:
                        continue
                    cl, sig = v[:-200].decode(), v[-200:]
                    theirs = [int.from_bytes(sig[2 * x:2 * x + 2], "little") for x in range(100)]
                    if sum(int(a) == b for a, b in zip(mine, theirs)) >= 50:
                        cluster = cl
                        break
            cluster = cluster or pid
            local_exact.setdefault(e, cluster)
            writes.append((pid, m, e, cluster, fe is None and first))
        # writes, one round: exact key, signature/cluster of new posts, LSH bands, sizes
        sizes = []
        if self.redis:
            pipe = self.redis.pipeline(transaction=False)
            for pid, m, e, cluster, fresh in writes:
                pipe.incr(f"peer:c:{cluster}")
                pipe.expire(f"peer:c:{cluster}", WINDOW_S)
                if fresh:
                    pipe.set(f"peer:x:{e}", cluster, ex=WINDOW_S, nx=True)
                    pipe.set(f"peer:m:{pid}", cluster.encode() + _sig16(m), ex=WINDOW_S)
            res = pipe.execute()
            it = iter(res)
            for _, _, _, _, fresh in writes:
                sizes.append(next(it))
                next(it)
                if fresh:
                    next(it), next(it)
        else:
            for pid, m, e, cluster, fresh in writes:
                self.mem_size[cluster] = self.mem_size.get(cluster, 0) + 1
                sizes.append(self.mem_size[cluster])
                if fresh:
                    self.mem_exact.setdefault(e, cluster)
                    self.mem_meta[pid] = cluster.encode() + _sig16(m)
        with self.lsh.insertion_session(buffer_size=len(writes) + 1) as session:
            for pid, m, e, cluster, fresh in writes:
                if fresh:
                    session.insert(pid.encode(), m, check_duplication=False)
        return [(w[3], s) for w, s in zip(writes, sizes)]


def _sig16(m):
    return b"".join(int(x & 0xFFFF).to_bytes(2, "little") for x in m.hashvalues)


# ---------------------------------------------------------------------------------------
# the job


class Job:
    def __init__(self, rules_path, redis_url=None):
        rules = load_rules(rules_path)
        self.matcher = Matcher(rules)
        self.rules = self.matcher.rules
        self.dedup = NearDup(redis_url)
        self.alerts = 0

    def batch(self, raws):
        """raw JSON lines -> [(post_id, alert JSON bytes)] for the flagged posts."""
        posts = []
        for raw in raws:
            try:
                post = json.loads(raw)
                text = post["text"]
                pid = str(post["id"])
            except (ValueError, KeyError, TypeError):
                continue  # tidewatch sends these to the dead-letter topic
            if not isinstance(text, str):
                continue
            folded = fold(text)
            skel = skeleton(folded)
            hits = self.matcher.match(folded, skel if skel != folded else None,
                                      post.get("lang"))
            canon, sh = shingles(folded)
            posts.append((pid, post, hits, sh))
        clusters = self.dedup.assign([(p[0], p[3]) for p in posts])
        out = []
        for (pid, post, hits, _), (cluster, size) in zip(posts, clusters):
            if not hits:
                continue
            rec = {"post_id": pid, "author": post.get("author"),
                   "matches": [{"rule": self.rules[i]["id"],
                                "category": self.rules[i].get("category"),
                                "severity": self.rules[i].get("severity")} for i in hits],
                   "duplicate": {"cluster": cluster, "size": size}}
            out.append((pid, json.dumps(rec, ensure_ascii=False).encode()))
        self.alerts += len(out)
        return out


def ready_then_done(summary):
    print("DONE " + json.dumps(summary), flush=True)
    sys.stdin.read()  # the benchmark reads /proc/PID/stat, then closes stdin


def cmd_scan(args):
    job = Job(args.rules)
    print("READY", flush=True)
    n = 0
    with open(args.posts, "rb") as f, open(args.alerts, "wb") as out:
        buf = []
        for line in f:
            buf.append(line)
            if len(buf) == BATCH:
                for _, a in job.batch(buf):
                    out.write(a + b"\n")
                n += len(buf)
                buf = []
        if buf:
            for _, a in job.batch(buf):
                out.write(a + b"\n")
            n += len(buf)
    ready_then_done({"posts": n, "alerts": job.alerts})


def cmd_run(args):
    from confluent_kafka import Consumer, Producer

    job = Job(args.rules, args.redis)
    consumer = Consumer({"bootstrap.servers": args.brokers, "group.id": args.group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    producer = Producer({"bootstrap.servers": args.brokers, "linger.ms": 5,
                         "enable.idempotence": True})
    consumer.subscribe([args.topic])
    print("READY", flush=True)
    n = 0
    while n < args.expect:
        msgs = consumer.consume(BATCH, timeout=0.5)
        msgs = [m for m in msgs if not m.error()]
        if not msgs:
            continue
        for key, value in job.batch([m.value() for m in msgs]):
            while True:
                try:
                    producer.produce(args.alerts_topic, key=key.encode(), value=value)
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.flush()  # alerts acknowledged before the offsets that cover them
        consumer.commit(asynchronous=False)
        n += len(msgs)
    ready_then_done({"posts": n, "alerts": job.alerts})
    consumer.close()


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("scan")
    s.add_argument("--rules", required=True)
    s.add_argument("--alerts", required=True)
    s.add_argument("posts")
    r = sub.add_parser("run")
    for k in ("--rules", "--brokers", "--topic", "--group", "--alerts-topic"):
        r.add_argument(k, required=True)
    r.add_argument("--redis")
    r.add_argument("--expect", type=int, required=True)
    args = ap.parse_args()
    (cmd_scan if args.cmd == "scan" else cmd_run)(args)


if __name__ == "__main__":
    main()
