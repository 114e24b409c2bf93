package tidewatch.peer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.ibm.icu.text.Normalizer2;
import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.lucene.analysis.Analyzer;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.Tokenizer;
import org.apache.lucene.analysis.icu.ICUFoldingFilter;
import org.apache.lucene.analysis.icu.segmentation.ICUTokenizer;
import org.apache.lucene.analysis.tokenattributes.CharTermAttribute;
import org.apache.lucene.index.LeafReader;
import org.apache.lucene.index.Term;
import org.apache.lucene.index.Terms;
import org.apache.lucene.index.TermsEnum;
import org.apache.lucene.index.memory.MemoryIndex;
import org.apache.lucene.search.IndexSearcher;
import org.apache.lucene.search.PhraseQuery;
import org.apache.lucene.search.Query;
import org.apache.lucene.search.RegexpQuery;
import org.apache.lucene.search.TermQuery;
import org.apache.lucene.util.BytesRef;
import org.apache.lucene.util.automaton.RegExp;
import org.apache.lucene.util.automaton.TooComplexToDeterminizeException;

/**
 * The JVM peer of perf/bench_fair.py: what Elasticsearch's percolator does, without
 * Elasticsearch. The rules are stored queries; each post becomes a one-document Lucene
 * MemoryIndex (field "text": ICU tokenizer + ICU folding; field "raw": the whole NFKC-casefolded
 * text as one term), candidate queries are selected by the terms the post contains (each
 * keyword query is registered under its longest term, as the percolator's query-term
 * extraction does), and every candidate is run against the MemoryIndex. Keywords are phrase
 * queries. Regexes become RegexpQuery over "raw" wrapped in .*( ).* when Lucene's regexp
 * syntax can express them; like the percolator's unextractable queries they are candidates for
 * every post. Regexes Lucene cannot express (lookaround, \b, anchors, back-references, lazy
 * quantifiers, \x escapes...) are left out and listed in the DONE line so the benchmark
 * compares alert sets on the common rules only.
 *
 * <pre>
 *   scan RULES.tsv POSTS.jsonl ALERTS.jsonl
 *   run  RULES.tsv BROKERS TOPIC GROUP ALERTS_TOPIC N
 * </pre>
 * Prints READY when the queries are built, DONE {json} when every post is processed (and, in
 * run, alerts acknowledged and offsets committed), then waits for stdin to close.
 */
public final class Main {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final Normalizer2 NFKC_CF = Normalizer2.getNFKCCasefoldInstance();

  private static final class Rule {
    final String id;
    final List<String> langs = new ArrayList<>();

    Rule(String id, String langs) {
      this.id = id;
      for (String l : langs.split(",")) if (!l.isEmpty()) this.langs.add(l);
    }

    boolean applies(String lang) {
      if (langs.isEmpty()) return true;
      if (lang == null) return false;
      for (String l : langs) if (lang.startsWith(l)) return true;
      return false;
    }
  }

  private final Analyzer analyzer =
      new Analyzer() {
        @Override
        protected TokenStreamComponents createComponents(String field) {
          Tokenizer t = new ICUTokenizer();
          return new TokenStreamComponents(t, new ICUFoldingFilter(t));
        }
      };
  private final List<Rule> rules = new ArrayList<>();
  private final Map<String, Integer> ruleIndex = new HashMap<>();
  private final Map<String, List<int[]>> byTerm = new HashMap<>(); // term -> {query, rule}
  private final List<Query> queries = new ArrayList<>();
  private final List<int[]> regexQueries = new ArrayList<>(); // {query, rule}
  private final List<String> leftOut = new ArrayList<>();
  private int regexTotal;
  private long alerts;

  private Main(String rulesTsv) throws IOException {
    Map<String, Boolean> regexRuleOk = new HashMap<>();
    for (String line : Files.readAllLines(Paths.get(rulesTsv), StandardCharsets.UTF_8)) {
      String[] f = line.split("\t", 4);
      if (f.length < 4) continue;
      Integer r = ruleIndex.get(f[0]);
      if (r == null) {
        r = rules.size();
        rules.add(new Rule(f[0], f[2]));
        ruleIndex.put(f[0], r);
      }
      if (f[1].equals("keyword")) {
        addKeyword(f[3], r);
      } else {
        regexTotal++;
        boolean ok = addRegex(f[3], r);
        regexRuleOk.merge(f[0], ok, Boolean::logicalAnd);
      }
    }
    for (Map.Entry<String, Boolean> e : regexRuleOk.entrySet())
      if (!e.getValue()) leftOut.add(e.getKey());
    Collections.sort(leftOut);
  }

  private List<String> analyze(String field, String text) throws IOException {
    List<String> out = new ArrayList<>();
    try (TokenStream ts = analyzer.tokenStream(field, text)) {
      CharTermAttribute term = ts.addAttribute(CharTermAttribute.class);
      ts.reset();
      while (ts.incrementToken()) out.add(term.toString());
      ts.end();
    }
    return out;
  }

  private void addKeyword(String keyword, int rule) throws IOException {
    List<String> terms = analyze("text", keyword);
    if (terms.isEmpty()) return;
    Query q;
    if (terms.size() == 1) {
      q = new TermQuery(new Term("text", terms.get(0)));
    } else {
      PhraseQuery.Builder b = new PhraseQuery.Builder();
      for (String t : terms) b.add(new Term("text", t));
      q = b.build();
    }
    String best = terms.get(0);
    for (String t : terms) if (t.length() > best.length()) best = t;
    byTerm.computeIfAbsent(best, k -> new ArrayList<>()).add(new int[] {queries.size(), rule});
    queries.add(q);
  }

  /** PCRE -> Lucene RegExp where the meaning survives; null when it does not. */
  static String toLucene(String re) {
    StringBuilder out = new StringBuilder();
    for (int i = 0; i < re.length(); i++) {
      char c = re.charAt(i);
      if (c == '\\') {
        if (i + 1 >= re.length()) return null;
        char n = re.charAt(++i);
        if ("dDsSwW".indexOf(n) >= 0 || (!Character.isLetterOrDigit(n) && n < 128)) {
          out.append('\\').append(n);
        } else {
          return null; // \b \B \x.. \n \t \1 \p{..} \A \z ...: no Lucene equivalent
        }
      } else if (c == '(') {
        if (re.startsWith("(?:", i)) {
          out.append('(');
          i += 2;
        } else if (i + 1 < re.length() && re.charAt(i + 1) == '?') {
          return null; // lookaround, inline flags, named groups
        } else {
          out.append('(');
        }
      } else if (c == '^' || c == '$') {
        // '^' right after '[' is a negated class, which Lucene has too
        if (c == '^' && i > 0 && re.charAt(i - 1) == '[') out.append('^');
        else return null;
      } else if ((c == '?' || c == '+') && i > 0 && "*+?}".indexOf(re.charAt(i - 1)) >= 0
          && (i < 2 || re.charAt(i - 2) != '\\')) {
        return null; // lazy or possessive quantifier
      } else if ("\"<>#@&~".indexOf(c) >= 0) {
        out.append('\\').append(c); // literals in PCRE, operators in Lucene
      } else {
        out.append(c);
      }
    }
    return ".*(" + out + ").*";
  }

  private boolean addRegex(String re, int rule) {
    String lucene = toLucene(re);
    if (lucene == null) return false;
    try {
      new RegExp(lucene, RegExp.NONE);
      Query q =
          new RegexpQuery(
              new Term("raw", lucene), RegExp.NONE, RegExp.ASCII_CASE_INSENSITIVE, 20000);
      regexQueries.add(new int[] {queries.size(), rule});
      queries.add(q);
      return true;
    } catch (IllegalArgumentException | TooComplexToDeterminizeException e) {
      return false;
    }
  }

  /** Rule indices that hit the post. */
  private BitSet match(String text, String lang) throws IOException {
    MemoryIndex mi = new MemoryIndex();
    mi.addField("text", text, analyzer);
    String folded = NFKC_CF.normalize(text);
    mi.addField("raw", mi.keywordTokenStream(Collections.singletonList(folded)));
    IndexSearcher searcher = mi.createSearcher();
    BitSet hit = new BitSet(rules.size());
    LeafReader reader = (LeafReader) searcher.getIndexReader().leaves().get(0).reader();
    Terms terms = reader.terms("text");
    if (terms != null) {
      TermsEnum te = terms.iterator();
      BytesRef t;
      while ((t = te.next()) != null) {
        List<int[]> cands = byTerm.get(t.utf8ToString());
        if (cands == null) continue;
        for (int[] qr : cands) {
          if (hit.get(qr[1]) || !rules.get(qr[1]).applies(lang)) continue;
          if (mi.search(queries.get(qr[0])) > 0f) hit.set(qr[1]);
        }
      }
    }
    for (int[] qr : regexQueries) {
      if (hit.get(qr[1]) || !rules.get(qr[1]).applies(lang)) continue;
      if (mi.search(queries.get(qr[0])) > 0f) hit.set(qr[1]);
    }
    return hit;
  }

  /** The alert for one raw post, or null (no hit, or not a post). */
  private byte[] process(byte[] raw) throws IOException {
    JsonNode post;
    try {
      post = JSON.readTree(raw);
    } catch (IOException e) {
      return null;
    }
    if (post == null || !post.hasNonNull("id") || !post.path("text").isTextual()) return null;
    JsonNode langNode = post.get("lang");
    BitSet hit = match(post.get("text").asText(), langNode == null ? null : langNode.asText());
    if (hit.isEmpty()) return null;
    ObjectNode alert = JSON.createObjectNode();
    alert.put("post_id", post.get("id").asText());
    ArrayNode matches = alert.putArray("matches");
    for (int i = hit.nextSetBit(0); i >= 0; i = hit.nextSetBit(i + 1))
      matches.addObject().put("rule", rules.get(i).id);
    alerts++;
    return JSON.writeValueAsBytes(alert);
  }

  private String done(long posts) throws IOException {
    ObjectNode d = JSON.createObjectNode();
    d.put("posts", posts);
    d.put("alerts", alerts);
    d.put("queries", queries.size());
    d.put("regex_queries", regexQueries.size());
    d.put("regexes_total", regexTotal);
    ArrayNode lo = d.putArray("rules_left_out");
    for (String s : leftOut) lo.add(s);
    return "DONE " + JSON.writeValueAsString(d);
  }

  private static void waitForStdinClose() throws IOException {
    while (System.in.read() >= 0) {}
  }

  public static void main(String[] args) throws Exception {
    if (args.length < 1) {
      System.err.println("usage: scan RULES.tsv POSTS.jsonl ALERTS | run RULES.tsv BROKERS TOPIC GROUP ALERTS N");
      System.exit(2);
    }
    Main peer = new Main(args[1]);
    if (args[0].equals("scan")) {
      System.out.println("READY");
      System.out.flush();
      long n = 0;
      try (BufferedReader in = Files.newBufferedReader(Paths.get(args[2]), StandardCharsets.UTF_8);
          BufferedWriter out = Files.newBufferedWriter(Paths.get(args[3]), StandardCharsets.UTF_8)) {
        String line;
        while ((line = in.readLine()) != null) {
          if (line.isEmpty()) continue;
          n++;
          byte[] alert = peer.process(line.getBytes(StandardCharsets.UTF_8));
          if (alert != null) {
            out.write(new String(alert, StandardCharsets.UTF_8));
            out.write('\n');
          }
        }
      }
      System.out.println(peer.done(n));
      System.out.flush();
      waitForStdinClose();
      return;
    }
    Properties c = new Properties();
    c.put("bootstrap.servers", args[2]);
    c.put("group.id", args[4]);
    c.put("auto.offset.reset", "earliest");
    c.put("enable.auto.commit", "false");
    c.put("max.poll.records", "500");
    Properties p = new Properties();
    p.put("bootstrap.servers", args[2]);
    p.put("linger.ms", "5");
    long expect = Long.parseLong(args[6]);
    try (KafkaConsumer<byte[], byte[]> consumer =
            new KafkaConsumer<>(c, new ByteArrayDeserializer(), new ByteArrayDeserializer());
        KafkaProducer<byte[], byte[]> producer =
            new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
      consumer.subscribe(Collections.singletonList(args[3]));
      System.out.println("READY");
      System.out.flush();
      long n = 0;
      while (n < expect) {
        ConsumerRecords<byte[], byte[]> recs = consumer.poll(Duration.ofMillis(500));
        for (ConsumerRecord<byte[], byte[]> r : recs) {
          byte[] alert = peer.process(r.value());
          if (alert != null) {
            JsonNode a = JSON.readTree(alert);
            producer.send(
                new ProducerRecord<>(
                    args[5], a.get("post_id").asText().getBytes(StandardCharsets.UTF_8), alert));
          }
          n++;
        }
        if (!recs.isEmpty()) {
          producer.flush(); // alerts acknowledged before the offsets that cover them
          consumer.commitSync();
        }
      }
      System.out.println(peer.done(n));
      System.out.flush();
      waitForStdinClose();
    }
  }
}
