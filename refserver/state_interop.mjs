#!/usr/bin/env node
// The TypeScript side of the State Protocol interop tests (tests/state/test_interop.py),
// on the pinned @durable-streams/state and @durable-streams/client (package-lock.json).
//
//   node state_interop.mjs write <stream-url>   writes a state stream with the package's
//       helpers and prints {"state": ...} as its MaterializedState folds the same events
//   node state_interop.mjs read <stream-url>    reads a state stream and prints
//       {"state": ..., "txids": [...], "controls": [...]} as MaterializedState folds it
//
// State is printed as {type: {key: value}}; a `reset` control clears it (MaterializedState
// leaves controls to its caller).

import { DurableStream } from "@durable-streams/client"
import {
  MaterializedState,
  createStateSchema,
  isChangeEvent,
  isControlEvent,
} from "@durable-streams/state"

// A Standard Schema that accepts any value: the test is about the wire, not validation.
const anything = { "~standard": { version: 1, vendor: "interop", validate: (value) => ({ value }) } }
const schema = createStateSchema({
  users: { schema: anything, type: "user", primaryKey: "id" },
  config: { schema: anything, type: "config", primaryKey: "name" },
})

function fold(events) {
  const state = new MaterializedState()
  const txids = new Set()
  const controls = []
  for (const event of events) {
    if (isChangeEvent(event)) {
      state.apply(event)
      if (event.headers.txid) txids.add(event.headers.txid)
    } else if (isControlEvent(event)) {
      controls.push(event.headers.control)
      if (event.headers.control === "reset") state.clear()
    }
  }
  const out = {}
  for (const type of state.types) {
    const entries = [...state.getType(type).entries()]
    if (entries.length > 0) out[type] = Object.fromEntries(entries)
  }
  return { state: out, txids: [...txids].sort(), controls }
}

function writtenEvents() {
  const stamp = new Date(Date.UTC(2025, 0, 15, 10, 30, 0, 123)).toISOString()
  return [
    schema.users.insert({ value: { id: "1", name: "Ada" } }),
    schema.users.insert({ value: { id: "2", name: "Grace" }, headers: { txid: "t1" } }),
    schema.users.update({
      value: { id: "1", name: "Ada L." },
      oldValue: { id: "1", name: "Ada" },
      headers: { txid: "t1", timestamp: stamp },
    }),
    schema.config.upsert({ value: { name: "theme", mode: "dark" } }),
    { headers: { control: "snapshot-start" } },
    schema.users.insert({ value: { id: "3", name: "Barbara", tags: ["a", 1, null, 2.5] } }),
    { headers: { control: "snapshot-end" } },
    schema.users.delete({ key: "2", oldValue: { id: "2", name: "Grace" } }),
    schema.config.insert({ key: "unicode", value: { name: "unicode", text: "café ✓" } }),
  ]
}

async function main() {
  const [mode, url] = process.argv.slice(2)
  if (!url || (mode !== "write" && mode !== "read")) {
    process.stderr.write("usage: node state_interop.mjs write|read <stream-url>\n")
    process.exit(2)
  }
  if (mode === "write") {
    const events = writtenEvents()
    const stream = await DurableStream.create({ url, contentType: "application/json" })
    for (const event of events) await stream.append(JSON.stringify(event))
    process.stdout.write(JSON.stringify(fold(events)) + "\n")
    return
  }
  const stream = await DurableStream.connect({ url })
  const response = await stream.stream({ live: false })
  process.stdout.write(JSON.stringify(fold(await response.json())) + "\n")
}

main().catch((err) => {
  process.stderr.write(`state_interop.mjs: ${err?.stack ?? err}\n`)
  process.exit(1)
})
