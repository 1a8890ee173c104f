#!/usr/bin/env node
// The TypeScript side of benches/generations.py: G concurrent generations written from this one
// Node process (role "writer"), or live readers of them (role "reader").
//
//   node benches/node/generations.mjs writer --url PREFIX --generations G --rate R --chunks N
//        [--writer producer|aisdk] [--aisdk-dir DIR]
//   node benches/node/generations.mjs reader --url PREFIX --generations G --readers K
//
// Streams are PREFIX-0 ... PREFIX-(G-1), created beforehand by the driver. A generation is the
// UI message chunks useChat reads: start, text-start, N text-delta, text-end, finish. Each
// text-delta carries in its text the CLOCK_MONOTONIC nanosecond at which it is due (open
// loop: delta i of generation g is due at start + (i + g/G)/R seconds, whatever the writer
// managed before), which readers in another process compare with their own clock.
//
// Writers: "producer": one DurableStream handle and one IdempotentProducer (autoClaim,
// linger 5 ms) per generation, as durable_streams.generations.write_generation does; the
// stream is created (409 accepted) and closed by producer.close(). "aisdk":
// toDurableStreamResponse of @durable-streams/aisdk-transport (its server-side writer: one
// handle.append per chunk, then handle.close()), imported from the pinned interop/aisdk.
//
// Measured from the moment the generations are launched until every stream is closed (writer)
// or every reader saw its stream closed (reader): CPU with process.cpuUsage() (user + system,
// all threads). "ready" is printed once every reader is connected; one JSON line at the end.

import { parseArgs } from "node:util"
import { performance } from "node:perf_hooks"
import { readFileSync } from "node:fs"
import { setTimeout as sleep } from "node:timers/promises"
import { randomUUID } from "node:crypto"
import { pathToFileURL } from "node:url"
import path from "node:path"
import { DurableStream, DurableStreamError, IdempotentProducer, stream } from "@durable-streams/client"

const JSON_CT = "application/json"
const LEAD_MS = 1000 // from launching the generations to the first chunk's due time

const { values, positionals } = parseArgs({
  options: {
    url: { type: "string", default: "" },
    generations: { type: "string", default: "500" },
    readers: { type: "string", default: "500" },
    rate: { type: "string", default: "50" },
    chunks: { type: "string", default: "500" },
    writer: { type: "string", default: "producer" },
    "aisdk-dir": { type: "string", default: "" },
  },
  allowPositionals: true,
  strict: true,
})
const role = positionals[0]
const G = Number(values.generations)
const K = Math.min(Number(values.readers), G)
const RATE = Number(values.rate)
const N = Number(values.chunks)
const urlOf = (g) => `${values.url}-${g}`
const nowNs = () => process.hrtime.bigint()
const newId = (prefix) => `${prefix}_${randomUUID().replaceAll("-", "")}`

// Readers sample K of the G generations, spread evenly (the same as generations.py).
const sampled = () => Array.from({ length: K }, (_, j) => Math.floor((j * G) / K))

function clientVersion() {
  const file = new URL("./node_modules/@durable-streams/client/package.json", import.meta.url)
  return JSON.parse(readFileSync(file)).version
}

// Append requests (POSTs but the closes) and the chunks they carried, counted around fetch,
// which both writers call at each request.
const counted = { append_requests: 0 }
const realFetch = globalThis.fetch
globalThis.fetch = (input, init) => {
  const method = init?.method ?? input?.method ?? "GET"
  const headers = new Headers(init?.headers ?? input?.headers ?? {})
  if (method === "POST" && !headers.has("stream-closed")) counted.append_requests++
  return realFetch(input, init)
}

const lateness = [] // how late each delta left its source: the event loop's own delay

// The chunks of generation g: due times in nanoseconds from startNs.
async function* source(g, startNs) {
  const textId = newId("text")
  yield { type: "start", messageId: newId("msg") }
  yield { type: "text-start", id: textId }
  const periodNs = 1e9 / RATE
  for (let i = 0; i < N; i++) {
    const due = startNs + BigInt(Math.round((i + g / G) * periodNs))
    // setTimeout counts whole milliseconds and may fire up to one early: wait again until due
    for (let waitMs = Number(due - nowNs()) / 1e6; waitMs > 0; waitMs = Number(due - nowNs()) / 1e6) {
      await sleep(Math.ceil(waitMs))
    }
    lateness.push(Number(nowNs() - due))
    yield { type: "text-delta", id: textId, delta: `${due} ` }
  }
  yield { type: "text-end", id: textId }
  yield { type: "finish" }
}

async function createOrAccept(handle) {
  try {
    await handle.create({ contentType: JSON_CT })
  } catch (err) {
    if (!(err instanceof DurableStreamError && err.status === 409)) throw err
  }
}

async function writeWithProducer(g, startNs) {
  const handle = new DurableStream({ url: urlOf(g), contentType: JSON_CT })
  await createOrAccept(handle)
  let failure
  const producer = new IdempotentProducer(handle, newId("generation"), {
    autoClaim: true,
    lingerMs: 5,
    onError: (err) => {
      failure ??= err
    },
  })
  let n = 0
  for await (const chunk of source(g, startNs)) {
    producer.append(JSON.stringify(chunk))
    n++
  }
  await producer.close()
  if (failure) throw failure
  return n
}

async function loadAisdk() {
  const dir = values["aisdk-dir"]
  const entry = path.join(dir, "node_modules", "@durable-streams", "aisdk-transport")
  const pkg = JSON.parse(readFileSync(path.join(entry, "package.json")))
  const mod = await import(pathToFileURL(path.join(entry, "dist", "index.js")).href)
  const client = JSON.parse(
    readFileSync(path.join(dir, "node_modules", "@durable-streams", "client", "package.json")),
  )
  return { toDurableStreamResponse: mod.toDurableStreamResponse, version: pkg.version, client: client.version }
}

async function writeWithAisdk(toDurableStreamResponse, g, startNs) {
  let n = 0
  async function* counted() {
    for await (const chunk of source(g, startNs)) {
      n++
      yield chunk
    }
  }
  let background
  const response = await toDurableStreamResponse({
    stream: { writeUrl: urlOf(g), contentType: JSON_CT },
    source: counted(),
    mode: "immediate",
    waitUntil: (task) => {
      background = task
    },
  })
  if (response.status !== 201) throw new Error(`toDurableStreamResponse answered ${response.status}`)
  await background // its failures are logged by the package, and show as chunks not received
  return n
}

async function writer() {
  const info = { node: process.version, writer: values.writer }
  let write
  if (values.writer === "aisdk") {
    const aisdk = await loadAisdk()
    info.aisdk_transport = aisdk.version
    info.client = aisdk.client
    write = (g, startNs) => writeWithAisdk(aisdk.toDurableStreamResponse, g, startNs)
  } else if (values.writer === "producer") {
    info.client = clientVersion()
    write = writeWithProducer
  } else {
    throw new Error(`--writer is producer or aisdk, not ${values.writer}`)
  }
  await DurableStream.head({ url: urlOf(0) }) // warm up: one connection, the modules loaded
  const cpu0 = process.cpuUsage()
  const wall0 = performance.now()
  const startNs = nowNs() + BigInt(LEAD_MS * 1e6)
  const counts = await Promise.all(Array.from({ length: G }, (_, g) => write(g, startNs)))
  const cpu = process.cpuUsage(cpu0)
  const wall = (performance.now() - wall0) / 1e3
  const scheduled = LEAD_MS / 1e3 + N / RATE
  process.stdout.write(
    `${JSON.stringify({
      chunks: counts.reduce((a, b) => a + b, 0),
      cpu_s: (cpu.user + cpu.system) / 1e6,
      wall_s: wall,
      // past its schedule: how long the writers took to finish after the last chunk was due
      overrun_s: wall - scheduled,
      source_lateness: summarize(lateness),
      appends: counts.reduce((a, b) => a + b, 0),
      append_requests: counted.append_requests,
      info,
    })}\n`,
  )
}

function readOne(g, latencies) {
  return new Promise((resolve, reject) => {
    stream({ url: urlOf(g), offset: "-1", live: "sse" }).then((res) => {
      let chunks = 0
      let done = false
      res.subscribeJson((batch) => {
        if (done) return
        const now = nowNs()
        for (const chunk of batch.items) {
          chunks++
          if (chunk.type === "text-delta") latencies.push(Number(now - BigInt(chunk.delta.trimEnd())))
        }
        if (batch.streamClosed) {
          done = true
          resolve(chunks)
          res.cancel()
        }
      })
      // Over SSE this client never marks a batch streamClosed (0.2.7): the end of the stream
      // resolves res.closed, after the last batch went to the subscriber; the counts are
      // checked by generations.py.
      res.closed.then(
        () =>
          setImmediate(() => {
            if (!done) {
              done = true
              resolve(chunks)
            }
          }),
        (err) => {
          if (!done) {
            done = true
            reject(err)
          }
        },
      )
      connected()
    }, reject)
  })
}

let connectedCount = 0
function connected() {
  connectedCount++
  if (connectedCount === K) process.stdout.write("ready\n")
}

async function reader() {
  const latencies = []
  await DurableStream.head({ url: urlOf(0) })
  const cpu0 = process.cpuUsage()
  const wall0 = performance.now()
  const counts = await Promise.all(sampled().map((g) => readOne(g, latencies)))
  const cpu = process.cpuUsage(cpu0)
  process.stdout.write(
    `${JSON.stringify({
      readers: K,
      chunks: counts.reduce((a, b) => a + b, 0),
      cpu_s: (cpu.user + cpu.system) / 1e6,
      wall_s: (performance.now() - wall0) / 1e3,
      latency: summarize(latencies),
      info: { node: process.version, client: clientVersion() },
    })}\n`,
  )
}

// Nearest rank, the same as generations.py's summarize().
function summarize(ns) {
  const s = Float64Array.from(ns).sort()
  const at = (q) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] / 1e6
  return s.length === 0
    ? { count: 0 }
    : { count: s.length, p50_ms: at(0.5), p99_ms: at(0.99), max_ms: s[s.length - 1] / 1e6 }
}

const roles = { writer, reader }
if (!(role in roles)) {
  process.stderr.write("usage: node generations.mjs {writer|reader} --url PREFIX ...\n")
  process.exit(2)
}
roles[role]().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`generations.mjs: ${err?.stack ?? err}\n`)
    process.exit(1)
  },
)
