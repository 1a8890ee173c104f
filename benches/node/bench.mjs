#!/usr/bin/env node
// The TypeScript reference client (@durable-streams/client, pinned in package.json and
// package-lock.json here) running one workload of benches/compare.py, alone in this process.
//
//   node benches/node/bench.mjs WORKLOAD --url URL [--messages N] [--sample-every K]
//        [--streams S] [--per-stream P] [--concurrency C] [--message-bytes B]
//
// The twin of benches/_contender.py for the Python contenders: the same workloads, the same
// messages, the same output. Measured around the workload only (Node start-up, the import and
// one warm-up HEAD come first): client CPU with process.cpuUsage() (user + system, every
// thread of the process), wall time with performance.now(), the RSS just before the workload,
// the peak (VmHWM) at the end, and the RSS every K messages.
// Live workloads print "ready" once the reader is connected; every run ends with one JSON line.

import { parseArgs } from "node:util"
import { performance } from "node:perf_hooks"
import { readFileSync } from "node:fs"
import { DurableStream, IdempotentProducer, stream } from "@durable-streams/client"

const WORKLOADS = [
  "catch-up",
  "sse",
  "sse-small",
  "long-poll-small",
  "produce",
  "append-1mib",
  "latency-long-poll",
  "latency-sse",
  "append-one",
  "head-one",
  "many-streams-append",
  "throughput-small",
  "catchup-nested",
]
const POOL = 10_000
const BIG_MESSAGE_BYTES = 1 << 20
const JSON_CT = "application/json"

const { values, positionals } = parseArgs({
  options: {
    url: { type: "string", default: "" },
    messages: { type: "string", default: "1000000" },
    "sample-every": { type: "string", default: "100000" },
    streams: { type: "string", default: "200" },
    "per-stream": { type: "string", default: "10" },
    concurrency: { type: "string", default: "75" },
    "message-bytes": { type: "string", default: "100" },
  },
  allowPositionals: true,
  strict: true,
})
const workload = positionals[0]
if (!WORKLOADS.includes(workload)) {
  process.stderr.write(`usage: node bench.mjs {${WORKLOADS.join("|")}} --url URL\n`)
  process.exit(2)
}
const url = values.url
const N = Number(values.messages)
const EVERY = Number(values["sample-every"])
const STREAMS = Number(values.streams)
const PER_STREAM = Number(values["per-stream"])
const CONCURRENCY = Number(values.concurrency)
const MESSAGE_BYTES = Number(values["message-bytes"])
// many-streams-append: --url is the streams' common prefix (URL-0, URL-1, ...)
const streamUrls = () => Array.from({ length: STREAMS }, (_, k) => `${url}-${k}`)

// The same messages as benches/_payloads.py message_objects(): the same bytes once serialized.
function messageObjects(n) {
  const out = new Array(n)
  for (let i = 0; i < n; i++) {
    out[i] = {
      type: "click",
      x: 100 + (i % 900),
      y: 456,
      user: `u-${String(i % 1_000_000).padStart(6, "0")}`,
    }
  }
  return out
}

const BLOB = "0123456789abcdefghijklmnopqrstuvwxyz"
  .repeat(Math.floor(BIG_MESSAGE_BYTES / 36) + 1)
  .slice(0, BIG_MESSAGE_BYTES - 32)

const rssKiB = () => Math.floor(process.memoryUsage.rss() / 1024)
// The peak RSS of this process's own memory. Not resourceUsage().maxRSS (ru_maxrss): Linux
// carries the parent's peak over fork and exec into that.
function peakRssKiB() {
  const m = /^VmHWM:\s+(\d+)/m.exec(readFileSync("/proc/self/status", "utf8"))
  return m ? Number(m[1]) : process.resourceUsage().maxRSS
}

class Meter {
  constructor() {
    this.samples = []
    this.latencies = []
    this.info = {}
    this.rssStart = rssKiB()
  }
  start() {
    this.rssStart = rssKiB()
    this.wall0 = performance.now()
    this.cpu0 = process.cpuUsage()
  }
  stop() {
    const cpu = process.cpuUsage(this.cpu0)
    this.cpu = (cpu.user + cpu.system) / 1e6
    this.wall = (performance.now() - this.wall0) / 1e3
    this.endNs = process.hrtime.bigint()
  }
  result(n) {
    return {
      messages: n,
      cpu_s: this.cpu,
      wall_s: this.wall,
      end_ns: Number(this.endNs),
      rss_start_kib: this.rssStart,
      rss_peak_kib: peakRssKiB(),
      rss_samples_kib: this.samples,
      latencies_ns: this.latencies,
      info: this.info,
    }
  }
}

const ready = () => process.stdout.write("ready\n")

// Reads JSON batches until `onItem` returns true (at the expected count) or a batch ends the
// stream; resolves with the number of items seen. `res.closed` cannot say when: for a
// catch-up read it resolves once the last response has arrived, before the subscriber has
// seen it; it is watched for failures only.
function consume(res, onItem) {
  return new Promise((resolve, reject) => {
    let n = 0
    let done = false
    const finish = () => {
      if (!done) {
        done = true
        resolve(n)
        res.cancel()
      }
    }
    res.subscribeJson((batch) => {
      if (done) return
      for (const item of batch.items) {
        n++
        if (onItem(item, n)) return finish()
      }
      if (batch.streamClosed) finish()
    })
    res.closed.catch((err) => {
      if (!done) {
        done = true
        reject(err)
      }
    })
  })
}

function counter(m) {
  let mark = Math.min(EVERY, N)
  return (_item, n) => {
    if (n >= mark) {
      m.samples.push([n, rssKiB()])
      if (n >= N) return true
      mark = Math.min(n + EVERY, N)
    }
    return false
  }
}

function timer(m) {
  return (item, n) => {
    m.latencies.push(Number(process.hrtime.bigint()) - item.t)
    return n >= N
  }
}

async function main() {
  const pkg = JSON.parse(
    readFileSync(new URL("./node_modules/@durable-streams/client/package.json", import.meta.url)),
  )
  const m = new Meter()
  m.info.version = pkg.version
  m.info.node = process.version
  await DurableStream.head({ url: workload === "many-streams-append" ? `${url}-0` : url })
  let got

  if (workload === "catch-up" || workload === "catchup-nested") {
    m.start()
    const res = await stream({ url, offset: "-1", live: false })
    got = await consume(res, counter(m))
    m.stop()
  } else if (
    workload.startsWith("sse") ||
    workload.startsWith("latency-") ||
    workload === "long-poll-small"
  ) {
    const live = workload.includes("long-poll") ? "long-poll" : "sse"
    m.start()
    const res = await stream({ url, offset: "-1", live })
    ready()
    got = await consume(res, workload.startsWith("latency-") ? timer(m) : counter(m))
    m.stop()
  } else if (workload === "append-one") {
    // one awaited append after another: no two overlap, so the client's batching never joins
    // them (each is its own POST); JSON.stringify in the loop, as the Python clients encode
    // the dict inside append()
    const pool = messageObjects(N)
    const handle = new DurableStream({ url, contentType: JSON_CT })
    m.start()
    for (let i = 0; i < N; i++) await handle.append(JSON.stringify(pool[i]))
    m.stop()
    got = N
  } else if (workload === "head-one") {
    const handle = new DurableStream({ url, contentType: JSON_CT })
    m.start()
    for (let i = 0; i < N; i++) await handle.head()
    m.stop()
    got = N
  } else if (workload === "many-streams-append") {
    // one handle per stream, one async function per stream appending its messages one after
    // another, all the streams at once
    const urls = streamUrls()
    const pool = messageObjects(STREAMS * PER_STREAM)
    const handles = urls.map((u) => new DurableStream({ url: u, contentType: JSON_CT }))
    const one = async (k) => {
      for (let j = k * PER_STREAM; j < (k + 1) * PER_STREAM; j++) {
        await handles[k].append(JSON.stringify(pool[j]))
      }
    }
    m.start()
    await Promise.all(handles.map((_, k) => one(k)))
    m.stop()
    got = pool.length
  } else if (workload === "throughput-small") {
    // packages/benchmarks' small-message scenario: waves of CONCURRENCY appends of the same
    // payload (new Uint8Array(100).fill(42)), each wave awaited before the next
    const handle = new DurableStream({ url, contentType: "application/octet-stream" })
    const payload = new Uint8Array(MESSAGE_BYTES).fill(42)
    m.info.concurrency = CONCURRENCY
    m.start()
    for (let start = 0; start < N; start += CONCURRENCY) {
      const k = Math.min(CONCURRENCY, N - start)
      await Promise.all(Array.from({ length: k }, () => handle.append(payload)))
    }
    m.stop()
    got = N
  } else if (workload === "append-1mib") {
    m.start()
    const handle = new DurableStream({ url, contentType: JSON_CT })
    for (let i = 0; i < N; i++) await handle.append(JSON.stringify({ i, blob: BLOB }))
    m.stop()
    got = N
  } else if (workload === "produce") {
    const pool = messageObjects(POOL)
    let failure
    m.start()
    const handle = new DurableStream({ url, contentType: JSON_CT })
    const producer = new IdempotentProducer(handle, "bench", {
      epoch: 0,
      lingerMs: 5,
      maxBatchBytes: 1 << 20,
      maxInFlight: 5,
      onError: (err) => {
        failure ??= err
      },
    })
    for (let i = 0; i < N; i++) producer.append(JSON.stringify(pool[i % POOL]))
    await producer.flush()
    await producer.detach() // stop producing; close() would also close the stream
    m.stop()
    if (failure) throw failure
    got = N
  }
  const out = m.result(got)
  process.stdout.write(`${JSON.stringify(out)}\n`)
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`bench.mjs: ${err?.stack ?? err}\n`)
    process.exit(1)
  },
)
