// Upstream's three benchmark scenarios (durable-streams/durable-streams, packages/benchmarks)
// run with the pinned TypeScript client, @durable-streams/client, measured the way
// `durable-streams bench --processes 1 --waves` measures them, for benches/bench_side_by_side.py.
//
//   node benches/node/bench_scenarios.mjs --url http://127.0.0.1:4437 [--scenario NAME ...]
//       [--roundtrips 100] [--small-count 1000] [--small-concurrency 75]
//       [--large-count 50] [--large-concurrency 15] [--prefix bench-ts/RANDOM]
//
// Prints one JSON object shaped like `durable-streams bench --json` (`client`, `scenarios`,
// each with `ops`, `bytes`, `errors`, `elapsed_s`, `ops_per_s`, `mb_per_s`, `client_cpu_s`,
// `client_cpu_us_per_op`, `client_cores` and `latency`: count, min, mean, p50, p75, p99,
// p99.9 and max in ms). Percentiles here are exact (nearest rank over every sample); the
// Python command's come from an HdrHistogram at 3 significant digits, within 0.1 % of these.
//
// - roundtrip: one octet stream, a long-poll reader on it for the whole run; each round trip
//   is a HEAD of the stream (`ping`), then an append of --size bytes and the wait until the
//   reader has them (`rtt`); `overhead` is rtt - ping (0 when the HEAD took longer). One
//   warm-up round trip first, not measured.
// - append-small / append-large: N appends to one octet stream in waves of --concurrency
//   started together, the next wave when all are answered (upstream's way of sending; the
//   last wave is short, so exactly N are sent). The client joins appends that overlap into
//   one request (its default batching). `append` latency: from the wave's start to that
//   append's answer.
//
// The clock and process.cpuUsage() (user + system of this process) cover the measured part
// only: the stream is created and, for the round trip, the reader started before it.

import { parseArgs } from "node:util"
import { performance } from "node:perf_hooks"
import { readFileSync } from "node:fs"
import { DurableStream } from "@durable-streams/client"

const OCTET = "application/octet-stream"

const { values: opts } = parseArgs({
  options: {
    url: { type: "string" },
    scenario: { type: "string", multiple: true },
    roundtrips: { type: "string", default: "100" },
    "roundtrip-size": { type: "string", default: "100" },
    "small-count": { type: "string", default: "1000" },
    "small-size": { type: "string", default: "100" },
    "small-concurrency": { type: "string", default: "75" },
    "large-count": { type: "string", default: "50" },
    "large-size": { type: "string", default: String(1024 * 1024) },
    "large-concurrency": { type: "string", default: "15" },
    prefix: { type: "string", default: `bench-ts/${Math.random().toString(36).slice(2, 10)}` },
  },
})
if (!opts.url) {
  console.error("--url is required")
  process.exit(2)
}
const base = opts.url.replace(/\/+$/, "")
const int = (name) => {
  const value = Number.parseInt(opts[name], 10)
  if (!(value > 0)) {
    console.error(`--${name}: a positive integer, not ${opts[name]}`)
    process.exit(2)
  }
  return value
}

function summary(samplesMs) {
  if (samplesMs.length === 0) return { count: 0, unit: "ms" }
  const sorted = Float64Array.from(samplesMs).sort()
  const rank = (p) => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]
  const r = (v) => Math.round(v * 1000) / 1000
  return {
    count: sorted.length,
    unit: "ms",
    min: r(sorted[0]),
    mean: r(sorted.reduce((a, b) => a + b, 0) / sorted.length),
    p50: r(rank(50)),
    p75: r(rank(75)),
    p99: r(rank(99)),
    p999: r(rank(99.9)),
    max: r(sorted[sorted.length - 1]),
  }
}

class Run {
  constructor(settings) {
    this.settings = settings
    this.ops = 0
    this.bytes = 0
    this.errors = 0
    this.firstError = null
    this.samples = {}
  }
  start() {
    this.t0 = performance.now()
    this.cpu0 = process.cpuUsage()
  }
  finish() {
    this.elapsed = (performance.now() - this.t0) / 1000
    const cpu = process.cpuUsage(this.cpu0)
    this.cpu = (cpu.user + cpu.system) / 1e6
  }
  record(name, ms) {
    ;(this.samples[name] ??= []).push(ms)
  }
  failed(err) {
    this.errors += 1
    this.firstError ??= `${err?.name ?? "Error"}: ${err?.message ?? err}`
  }
  report() {
    const e = this.elapsed
    const r = (v, d) => Math.round(v * 10 ** d) / 10 ** d
    return {
      settings: this.settings,
      ops: this.ops,
      bytes: this.bytes,
      errors: this.errors,
      failed: [],
      first_error: this.firstError,
      elapsed_s: r(e, 4),
      ops_per_s: e ? r(this.ops / e, 1) : null,
      mb_per_s: e ? r(this.bytes / e / 1e6, 3) : null,
      client_cpu_s: r(this.cpu, 4),
      client_cpu_us_per_op: this.ops ? r((this.cpu / this.ops) * 1e6, 1) : null,
      client_cores: e ? r(this.cpu / e, 3) : null,
      latency: Object.fromEntries(
        Object.keys(this.samples)
          .sort()
          .map((name) => [name, summary(this.samples[name])]),
      ),
    }
  }
}

async function roundtrip(name) {
  const count = int("roundtrips")
  const size = int("roundtrip-size")
  const run = new Run({ size, count, concurrency: 1, waves: false })
  const handle = await DurableStream.create({ url: `${base}/${opts.prefix}/${name}`, contentType: OCTET })
  const message = new Uint8Array(size).fill(42)
  let received = 0
  let wanted = 0
  let wake = null
  const delivered = () =>
    received >= wanted ? Promise.resolve() : new Promise((resolve) => (wake = resolve))
  try {
    const offset = (await handle.head()).offset
    const res = await handle.stream({ offset, live: "long-poll" })
    const unsubscribe = res.subscribeBytes((chunk) => {
      received += chunk.data.length
      if (wake && received >= wanted) {
        const w = wake
        wake = null
        w()
      }
    })
    try {
      wanted += size
      await handle.append(message) // warm-up: connections open, reader live
      await delivered()
      run.start()
      for (let i = 0; i < count; i++) {
        try {
          let sent = performance.now()
          await handle.head()
          const ping = performance.now() - sent
          wanted += size
          sent = performance.now()
          await handle.append(message)
          await delivered()
          const rtt = performance.now() - sent
          run.record("rtt", rtt)
          run.record("ping", ping)
          run.record("overhead", Math.max(0, rtt - ping))
          run.ops += 1
          run.bytes += size
        } catch (err) {
          run.failed(err)
          break
        }
      }
      run.finish()
    } finally {
      unsubscribe()
      res.cancel()
    }
  } finally {
    await handle.delete().catch((err) => run.failed(err))
  }
  return run.report()
}

async function appends(name, count, size, concurrency) {
  const run = new Run({ size, count, concurrency, waves: true })
  const handle = await DurableStream.create({ url: `${base}/${opts.prefix}/${name}`, contentType: OCTET })
  const message = new Uint8Array(size).fill(42)
  try {
    run.start()
    for (let taken = 0; taken < count; ) {
      const wave = Math.min(concurrency, count - taken)
      const due = performance.now()
      await Promise.all(
        Array.from({ length: wave }, () =>
          handle.append(message).then(
            () => {
              run.record("append", performance.now() - due)
              run.ops += 1
              run.bytes += size
            },
            (err) => run.failed(err),
          ),
        ),
      )
      taken += wave
    }
    run.finish()
  } finally {
    await handle.delete().catch((err) => run.failed(err))
  }
  return run.report()
}

const SCENARIOS = {
  roundtrip: () => roundtrip("roundtrip"),
  "append-small": () =>
    appends("append-small", int("small-count"), int("small-size"), int("small-concurrency")),
  "append-large": () =>
    appends("append-large", int("large-count"), int("large-size"), int("large-concurrency")),
}

const wanted = opts.scenario ?? Object.keys(SCENARIOS)
for (const name of wanted) {
  if (!(name in SCENARIOS)) {
    console.error(`unknown scenario ${name}; one of ${Object.keys(SCENARIOS).join(", ")}`)
    process.exit(2)
  }
}
const pkg = JSON.parse(
  readFileSync(new URL("./node_modules/@durable-streams/client/package.json", import.meta.url)),
)
const report = {
  url: base,
  timestamp: new Date().toISOString(),
  processes: 1,
  client: { name: pkg.name, version: pkg.version, node: process.version },
  scenarios: {},
}
for (const name of wanted) report.scenarios[name] = await SCENARIOS[name]()
console.log(JSON.stringify(report, null, 2))
const failed = Object.values(report.scenarios).some((s) => s.errors > 0)
process.exit(failed ? 1 : 0)
