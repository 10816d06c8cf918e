// `heliomesh bench broker`: QoS 1 throughput, end to end, through aedes configured as the
// gateway configures it, through the gateway's own broker (the same aedes behind node logins,
// the ACL and the packet size guard) and through Debian's Mosquitto, under the same load in
// the same run. Runs rotate between the brokers and repeat, and the median is reported,
// because this machine's cores are shared and its speed drifts over a minute.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { CONTENDERS, contenders, type Contender, type ContenderRun, type LoadShape } from './broker/contenders.js';
import { mosquittoVersion } from './broker/mosquitto.js';
import type { Bench } from './types.js';
import { median } from './median.js';

const SHAPE: LoadShape = {
  publishers: 4,
  messagesPerPublisher: 3000,
  /** Mosquitto's default max_inflight_messages: the same publisher behaviour on every broker. */
  window: 20,
  timeoutMs: 15_000,
};
/** Odd, so the median is one measured run; five keeps the bench near a minute. */
const ROUNDS = 5;

interface Run extends ContenderRun {
  broker: Contender;
  round: number;
  msgsPerS: number;
}

function summarize(runs: Run[], name: Contender) {
  const mine = runs.filter((r) => r.broker === name);
  const rates = mine.map((r) => r.msgsPerS);
  return {
    medianMsgsPerS: median(rates),
    minMsgsPerS: Math.min(...rates),
    maxMsgsPerS: Math.max(...rates),
    /** Publisher side: messages per second until the last PUBACK. */
    medianAckedMsgsPerS: median(mine.map((r) => r.result.sent / (r.result.ackedMs / 1000))),
    lost: mine.reduce((s, r) => s + r.result.lost, 0),
    duplicates: mine.reduce((s, r) => s + r.result.duplicates, 0),
    corrupted: mine.reduce((s, r) => s + r.result.corrupted, 0),
    timedOutRuns: mine.filter((r) => r.result.timedOut).length,
  };
}

function aedesVersion(): string {
  // aedes' exports map hides its package.json, so it is read from beside its entry point.
  const entry = createRequire(import.meta.url).resolve('aedes');
  return (JSON.parse(readFileSync(join(dirname(entry), 'package.json'), 'utf8')) as { version: string }).version;
}

export const brokerBench: Bench = {
  description: 'QoS 1 messages/s end to end through aedes (bare and as the gateway runs it) and through Mosquitto, same load, rotated rounds, medians of 5',
  async run() {
    const loadAtStart = loadavg()[0]!;
    const runners = await contenders(SHAPE.publishers);

    // Warm-up: the first run in a process pays for loading and compiling broker and client code.
    for (const name of CONTENDERS) await runners[name]({ ...SHAPE, messagesPerPublisher: 250 });

    const runs: Run[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const order = CONTENDERS.map((_, i) => CONTENDERS[(i + round) % CONTENDERS.length]!);
      for (const name of order) {
        const r = await runners[name](SHAPE);
        runs.push({ ...r, broker: name, round, msgsPerS: r.result.delivered / (r.result.elapsedMs / 1000) });
      }
    }

    const stats = Object.fromEntries(CONTENDERS.map((c) => [c, summarize(runs, c)])) as Record<Contender, ReturnType<typeof summarize>>;
    // Runs of one round are neighbours in time and share the machine's load of the moment,
    // so the ratio is taken within each round and its median reported.
    const roundRatio = (name: Contender, base: Contender = 'mosquitto') => median(Array.from({ length: ROUNDS }, (_, round) => {
      const rate = (c: Contender) => runs.find((r) => r.round === round && r.broker === c)!.msgsPerS;
      return rate(name) / rate(base);
    }));
    const ratio = roundRatio('aedes');
    const gatewayRatio = roundRatio('gateway');
    // What the gateway's logins, ACL and packet guard cost against the same aedes without them.
    const gatewayToAedes = roundRatio('gateway', 'aedes');
    const lost = CONTENDERS.reduce((s, c) => s + stats[c].lost, 0);
    const corrupted = CONTENDERS.reduce((s, c) => s + stats[c].corrupted, 0);
    const payloadBytes = runs[0]?.result.payloadBytes ?? 0;
    const fmt = (x: number) => Math.round(x).toLocaleString('en-US');
    const problems = CONTENDERS.filter((c) => stats[c].lost || stats[c].corrupted)
      .map((c) => `${c}: LOST ${stats[c].lost}, corrupted ${stats[c].corrupted}${stats[c].timedOutRuns ? `, ${stats[c].timedOutRuns} run(s) past ${SHAPE.timeoutMs / 1000} s` : ''}`);
    return {
      summary:
        `broker: aedes ${fmt(stats.aedes.medianMsgsPerS)} msg/s vs mosquitto ${fmt(stats.mosquitto.medianMsgsPerS)} msg/s, ratio ${ratio.toFixed(2)}; ` +
        `gateway broker ${fmt(stats.gateway.medianMsgsPerS)} msg/s (ratio ${gatewayRatio.toFixed(2)}, ${gatewayToAedes.toFixed(2)} of aedes) ` +
        `(QoS 1, ${SHAPE.publishers} × ${SHAPE.messagesPerPublisher} slot records (${payloadBytes} B) → 1 subscriber, medians of ${ROUNDS} rotated rounds, load average ${loadAtStart.toFixed(1)}); ` +
        (problems.length ? problems.join('; ') : 'every message delivered and verified'),
      metrics: {
        /** Median over rounds of (aedes msg/s ÷ mosquitto msg/s) in the same round. */
        ratioAedesToMosquitto: ratio,
        ratioGatewayToMosquitto: gatewayRatio,
        ratioGatewayToAedes: gatewayToAedes,
        ratioOfMediansAedesToMosquitto: stats.aedes.medianMsgsPerS / stats.mosquitto.medianMsgsPerS,
        loadAverageAtStart: loadAtStart,
        ...stats,
        lost,
        corrupted,
        load: { ...SHAPE, payloadBytes, qos: 1, rounds: ROUNDS },
        versions: { aedes: aedesVersion(), mosquitto: mosquittoVersion() },
        runs: runs.map((r) => ({
          broker: r.broker,
          round: r.round,
          msgsPerS: r.msgsPerS,
          elapsedMs: r.result.elapsedMs,
          ackedMs: r.result.ackedMs,
          delivered: r.result.delivered,
          lost: r.result.lost,
          duplicates: r.result.duplicates,
          corrupted: r.result.corrupted,
          timedOut: r.result.timedOut,
          ...(r.publishesIn === undefined ? {} : { brokerPublishesIn: r.publishesIn }),
        })),
      },
    };
  },
};
