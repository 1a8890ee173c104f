#!/usr/bin/env node
// Runs the pinned reference Durable Streams server (@durable-streams/server)
// for this repository's integration tests and demo.
//
// Usage: node serve.mjs [--host H] [--port N] [--long-poll-timeout MS]
//                       [--data-dir PATH] [--no-compression] [--webhooks]
//                       [--no-stdin-watch]
//
// Contract with launch.py:
//   * once listening, exactly one line goes to stdout: {"url": "http://HOST:PORT"}
//   * everything else (the package's own logging included) goes to stderr
//   * the process exits on SIGTERM, SIGINT, and when its stdin (a pipe) reaches
//     end-of-file, so a parent that dies never leaves a server behind.

import { fstatSync } from "node:fs"
import { parseArgs } from "node:util"

// The package logs through console.info; keep stdout for the URL line only.
const toStderr = (...args) => console.error(...args)
console.log = toStderr
console.info = toStderr
console.debug = toStderr
console.warn = toStderr

const USAGE =
  "usage: node serve.mjs [--host H] [--port N] [--long-poll-timeout MS] " +
  "[--data-dir PATH] [--no-compression] [--webhooks] [--no-stdin-watch]"

function fail(message) {
  process.stderr.write(`serve.mjs: ${message}\n${USAGE}\n`)
  process.exit(2)
}

function parseNonNegativeInt(name, text, max) {
  if (!/^\d+$/.test(text)) fail(`--${name} must be a non-negative integer, got ${JSON.stringify(text)}`)
  const value = Number(text)
  if (!Number.isSafeInteger(value) || value > max) fail(`--${name} is out of range: ${text}`)
  return value
}

let parsed
try {
  parsed = parseArgs({
    options: {
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "0" },
      "long-poll-timeout": { type: "string" },
      "data-dir": { type: "string" },
      "no-compression": { type: "boolean", default: false },
      // Lets subscriptions deliver by webhook (pull-wake ones work either way).
      webhooks: { type: "boolean", default: false },
      "no-stdin-watch": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
    allowPositionals: false,
  })
} catch (err) {
  fail(err.message)
}
const args = parsed.values
if (args.help) {
  process.stdout.write(`${USAGE}\n`)
  process.exit(0)
}

const port = parseNonNegativeInt("port", args.port, 65535)
const options = {
  host: args.host,
  port,
  compression: !args["no-compression"],
  webhooks: args.webhooks,
}
if (args["long-poll-timeout"] !== undefined) {
  const ms = parseNonNegativeInt("long-poll-timeout", args["long-poll-timeout"], 2 ** 31 - 1)
  if (ms === 0) fail("--long-poll-timeout must be at least 1 ms")
  options.longPollTimeout = ms
}
if (args["data-dir"] !== undefined) {
  if (args["data-dir"] === "") fail("--data-dir must not be empty")
  options.dataDir = args["data-dir"]
}

// Imported only after console is redirected, and only after the arguments are
// known to be good, so a usage error does not pay for loading lmdb.
const { DurableStreamTestServer } = await import("@durable-streams/server")

let server
try {
  server = new DurableStreamTestServer(options)
} catch (err) {
  process.stderr.write(`serve.mjs: could not create the server: ${err?.stack ?? err}\n`)
  process.exit(1)
}

let stopping = false
async function shutdown(reason) {
  if (stopping) return
  stopping = true
  process.stderr.write(`serve.mjs: stopping (${reason})\n`)
  // stop() ends SSE responses and pending long-polls, then waits for the HTTP
  // server to close; do not let a stuck client connection hold the exit.
  const hardExit = setTimeout(() => {
    process.stderr.write("serve.mjs: stop() took too long, exiting anyway\n")
    process.exit(0)
  }, 3000)
  hardExit.unref()
  try {
    // stop() ends SSE responses, releases pending long-polls and closes the
    // listener, then waits for every connection to finish. Open long-polls and
    // keep-alive sockets would hold it for seconds, so after a short grace for
    // the ended responses to flush, close whatever connections remain. The
    // package keeps its node:http Server in a (TypeScript-)private field.
    const stopped = server.stop()
    const httpServer = server.server
    httpServer?.closeIdleConnections?.()
    const grace = new Promise((resolve) => setTimeout(resolve, 200).unref())
    await Promise.race([stopped, grace])
    httpServer?.closeAllConnections?.()
    await stopped
  } catch (err) {
    process.stderr.write(`serve.mjs: error while stopping: ${err?.stack ?? err}\n`)
  }
  process.exit(0)
}

process.on("SIGTERM", () => void shutdown("SIGTERM"))
process.on("SIGINT", () => void shutdown("SIGINT"))
process.on("SIGHUP", () => void shutdown("SIGHUP"))

// Watch stdin only when it is a pipe or socket (as launch.py gives it). A
// terminal or /dev/null would otherwise stop the server at once or never.
function stdinIsPipe() {
  try {
    const st = fstatSync(0)
    return st.isFIFO() || st.isSocket()
  } catch {
    return false
  }
}
if (!args["no-stdin-watch"] && stdinIsPipe()) {
  process.stdin.on("data", () => {}) // input carries no meaning; drain it
  process.stdin.on("end", () => void shutdown("stdin closed"))
  process.stdin.on("error", () => void shutdown("stdin error"))
  process.stdin.resume()
}

let rawUrl
try {
  rawUrl = await server.start()
} catch (err) {
  process.stderr.write(`serve.mjs: could not listen on ${options.host}:${port}: ${err?.stack ?? err}\n`)
  process.exit(1)
}

// The package builds its URL as http://HOST:PORT; bracket IPv6 literals.
const boundPort = Number(rawUrl.slice(rawUrl.lastIndexOf(":") + 1))
const urlHost = options.host.includes(":") ? `[${options.host}]` : options.host
const url = `http://${urlHost}:${boundPort}`

if (stopping) {
  // A signal or stdin EOF arrived while we were still binding.
} else {
  process.stdout.write(`{"url": ${JSON.stringify(url)}}\n`)
  process.stderr.write(
    `serve.mjs: @durable-streams/server listening on ${url}` +
      ` (${options.dataDir ? `file-backed in ${options.dataDir}` : "in-memory"}` +
      `, long-poll timeout ${options.longPollTimeout ?? 30000} ms)\n`,
  )
}
