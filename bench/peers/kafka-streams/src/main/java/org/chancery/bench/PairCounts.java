package org.chancery.bench;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StoreQueryParameters;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.QueryableStoreTypes;
import org.apache.kafka.streams.state.ReadOnlyKeyValueStore;

/**
 * The Kafka Streams peer of bench/bench_peers.py: each pair's event count and quad-class counts
 * in a state store, as a Kafka Streams user would write it.
 *
 * <p>The records' key is the pair (ingest keys a coded event by its two actors), so the
 * aggregation is a groupByKey (no repartition). Values are parsed with Jackson into the two
 * fields needed; the quad class comes from the CAMEO table chancery ships
 * (chancery/contract/data/cameo_gdelt.tsv). Every setting is Kafka Streams' default but those
 * a benchmark must fix: the broker, a fresh application id (the consumer group) and state
 * directory, and, when asked, the processing guarantee. Kafka Streams reads from the earliest
 * offset by default.
 *
 * <p>Arguments: --bootstrap B --topic T --count N --cameo TSV --state-dir D --out OUT
 * --application-id ID --clock-ticks HZ [--guarantee exactly-once]. Writes OUT (JSON): when
 * the first and the last of the N events were processed (seconds, one clock), the process's
 * CPU seconds then (/proc/self/stat, every thread), the same with close()'s final commit
 * added, and the store's contents read back through an interactive query, {pair: [events,
 * q1, q2, q3, q4]}.
 */
public final class PairCounts {
    static final String STORE = "pair-counts";

    /** The fields of a coded event that the count needs; Jackson skips the rest. */
    record Data(String cameo) {}

    record Event(Data data) {}

    /** [events, quad 1, quad 2, quad 3, quad 4] as five big-endian ints. */
    static final class CountsSerde implements Serde<int[]> {
        @Override
        public Serializer<int[]> serializer() {
            return (topic, counts) -> {
                ByteBuffer out = ByteBuffer.allocate(4 * counts.length);
                for (int c : counts) {
                    out.putInt(c);
                }
                return out.array();
            };
        }

        @Override
        public Deserializer<int[]> deserializer() {
            return (topic, bytes) -> {
                ByteBuffer in = ByteBuffer.wrap(bytes);
                int[] counts = new int[bytes.length / 4];
                for (int i = 0; i < counts.length; i++) {
                    counts[i] = in.getInt();
                }
                return counts;
            };
        }
    }

    /** When the first and the count-th event were processed, and the CPU seconds then. */
    static final class Meter {
        final long count;
        final double clockTicks;
        final CountDownLatch done = new CountDownLatch(1);
        long seen;
        double first;
        double last;
        double cpuFirst;
        double cpuLast;

        Meter(long count, double clockTicks) {
            this.count = count;
            this.clockTicks = clockTicks;
        }

        void tick() {
            seen++;
            if (seen == 1) {
                first = System.nanoTime() / 1e9;
                cpuFirst = cpuSeconds();
            } else if (seen == count) {
                last = System.nanoTime() / 1e9;
                cpuLast = cpuSeconds();
                done.countDown();
            }
        }

        double cpuSeconds() {
            try {
                String stat = Files.readString(Path.of("/proc/self/stat"));
                String[] fields = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
                return (Long.parseLong(fields[11]) + Long.parseLong(fields[12])) / clockTicks;
            } catch (IOException e) {
                throw new IllegalStateException("cannot read /proc/self/stat", e);
            }
        }
    }

    static Map<String, Integer> quadClasses(Path tsv) throws IOException {
        List<String> lines = Files.readAllLines(tsv, StandardCharsets.UTF_8);
        List<String> header = List.of(lines.get(0).split("\t"));
        int code = header.indexOf("code");
        int quad = header.indexOf("quad_class");
        if (code < 0 || quad < 0) {
            throw new IllegalArgumentException(tsv + " has no code or quad_class column");
        }
        Map<String, Integer> out = new HashMap<>();
        for (String line : lines.subList(1, lines.size())) {
            String[] row = line.split("\t");
            out.put(row[code], Integer.valueOf(row[quad]));
        }
        return out;
    }

    static Map<String, String> arguments(String[] args) {
        Map<String, String> out = new HashMap<>();
        for (int i = 0; i + 1 < args.length; i += 2) {
            if (!args[i].startsWith("--")) {
                throw new IllegalArgumentException("expected --name value, got " + args[i]);
            }
            out.put(args[i].substring(2), args[i + 1]);
        }
        for (String required :
                List.of("bootstrap", "topic", "count", "cameo", "state-dir", "out",
                        "application-id", "clock-ticks")) {
            if (!out.containsKey(required)) {
                throw new IllegalArgumentException("missing --" + required);
            }
        }
        return out;
    }

    public static void main(String[] argv) throws Exception {
        Map<String, String> args = arguments(argv);
        Map<String, Integer> quads = quadClasses(Path.of(args.get("cameo")));
        Meter meter =
                new Meter(Long.parseLong(args.get("count")),
                        Double.parseDouble(args.get("clock-ticks")));
        ObjectMapper json =
                new ObjectMapper().disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES);

        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, args.get("application-id"));
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args.get("bootstrap"));
        props.put(StreamsConfig.STATE_DIR_CONFIG, args.get("state-dir"));
        if ("exactly-once".equals(args.get("guarantee"))) {
            props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        }

        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(args.get("topic"), Consumed.with(Serdes.String(), Serdes.ByteArray()))
                .groupByKey(Grouped.with(Serdes.String(), Serdes.ByteArray()))
                .aggregate(
                        () -> new int[5],
                        (pair, value, counts) -> {
                            Event event;
                            try {
                                event = json.readValue(value, Event.class);
                            } catch (IOException e) {
                                throw new IllegalArgumentException("not a coded event", e);
                            }
                            counts[0]++;
                            counts[quads.get(event.data().cameo())]++;
                            meter.tick();
                            return counts;
                        },
                        Materialized.<String, int[], KeyValueStore<Bytes, byte[]>>as(STORE)
                                .withKeySerde(Serdes.String())
                                .withValueSerde(new CountsSerde()));

        try (KafkaStreams streams = new KafkaStreams(builder.build(), props)) {
            streams.setUncaughtExceptionHandler(
                    e -> {
                        e.printStackTrace();
                        System.exit(3);
                        return null;
                    });
            streams.start();
            if (!meter.done.await(600, TimeUnit.SECONDS)) {
                throw new IllegalStateException("processed " + meter.seen + " events in 600 s");
            }
            Map<String, int[]> state = settledState(streams, meter.count);
            // close() commits the last of the work (the cached state to the store and its
            // changelog, the offsets): its time and CPU are added to the span's, the store's
            // read above left out.
            double closing = System.nanoTime() / 1e9;
            double cpuClosing = meter.cpuSeconds();
            streams.close();
            double closed = System.nanoTime() / 1e9;
            double cpuClosed = meter.cpuSeconds();
            Map<String, Object> result = new LinkedHashMap<>();
            result.put("events", meter.seen);
            result.put("first", meter.first);
            result.put("last", meter.last);
            result.put("cpu_first", meter.cpuFirst);
            result.put("cpu_last", meter.cpuLast);
            result.put("committed", meter.last + (closed - closing));
            result.put("cpu_committed", meter.cpuLast + (cpuClosed - cpuClosing));
            result.put("state", state);
            Files.writeString(Path.of(args.get("out")), json.writeValueAsString(result));
        }
    }

    /**
     * The store's contents once they hold every event: the last event is counted by the
     * aggregator just before the stream thread puts its result, so read until the counts add
     * up, for at most 30 s, and return what there is then (the bench's check fails on it).
     */
    static Map<String, int[]> settledState(KafkaStreams streams, long count)
            throws InterruptedException {
        ReadOnlyKeyValueStore<String, int[]> store =
                streams.store(
                        StoreQueryParameters.fromNameAndType(
                                STORE, QueryableStoreTypes.<String, int[]>keyValueStore()));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (true) {
            Map<String, int[]> out = new TreeMap<>();
            long total = 0;
            try (KeyValueIterator<String, int[]> all = store.all()) {
                while (all.hasNext()) {
                    KeyValue<String, int[]> entry = all.next();
                    out.put(entry.key, entry.value);
                    total += entry.value[0];
                }
            }
            if (total >= count || System.nanoTime() > deadline) {
                return out;
            }
            Thread.sleep(10);
        }
    }
}
