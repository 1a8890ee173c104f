#!/usr/bin/env node
// The React side of a chat, without React: the AI SDK's AbstractChat (what useChat runs) on
// createDurableChatTransport from @durable-streams/aisdk-transport, both pinned in
// package-lock.json, against a Python backend (tests/generations/test_aisdk_interop.py).
//
//   node chat.mjs send <api> <chatId> <text>
//       sends <text> and prints {status, error, messages} once the chat is ready again
//   node chat.mjs cut <api> <chatId> <text> <seen>
//       sends <text>, stops reading (a page closed) once the assistant's text holds <seen>,
//       then a second chat with the same id resumes (useChat's resume: true after a reload),
//       lets the held generation go on (POST <origin>/release/<chatId>) once it has caught
//       up with <seen> again, and prints {cut, resumed} for both chats

import { AbstractChat } from "ai"
import { createDurableChatTransport } from "@durable-streams/aisdk-transport"

class State {
  constructor(messages, onChange) {
    this.status = "ready"
    this.error = undefined
    this.messages = messages
    this.onChange = onChange
  }
  pushMessage = (message) => {
    this.messages = this.messages.concat(message)
    this.onChange(this.messages)
  }
  popMessage = () => {
    this.messages = this.messages.slice(0, -1)
    this.onChange(this.messages)
  }
  replaceMessage = (index, message) => {
    this.messages = [...this.messages.slice(0, index), message, ...this.messages.slice(index + 1)]
    this.onChange(this.messages)
  }
  snapshot = (thing) => structuredClone(thing)
}

class Chat extends AbstractChat {
  constructor({ messages = [], onChange = () => {}, ...init }) {
    super({ ...init, state: new State(messages, onChange) })
  }
}

function assistantText(messages) {
  const last = messages[messages.length - 1]
  if (!last || last.role !== "assistant") return ""
  return last.parts.filter((p) => p.type === "text").map((p) => p.text).join("")
}

function whenTextHolds(seen) {
  let resolve
  const reached = new Promise((r) => (resolve = r))
  const onChange = (messages) => {
    if (assistantText(messages).includes(seen)) resolve()
  }
  return { reached, onChange }
}

function outcome(chat) {
  return { status: chat.status, error: chat.error?.message ?? null, messages: chat.messages }
}

function bounded(promise, what, ms = 30000) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

async function send(api, chatId, text) {
  const transport = createDurableChatTransport({ api })
  const chat = new Chat({ id: chatId, transport })
  await bounded(chat.sendMessage({ text }), "the generation")
  return outcome(chat)
}

async function cut(api, chatId, text, seen) {
  const transport = createDurableChatTransport({ api })
  const first = whenTextHolds(seen)
  const chat = new Chat({ id: chatId, transport, onChange: first.onChange })
  const sending = chat.sendMessage({ text })
  await bounded(first.reached, "the first half")
  await chat.stop()
  await bounded(sending, "the stopped request")
  const cutState = outcome(chat)

  // A reload: the persisted history has the user's message; the chat resumes the generation.
  const userMessage = chat.messages.find((m) => m.role === "user")
  const again = whenTextHolds(seen)
  const resumed = new Chat({
    id: chatId,
    transport: createDurableChatTransport({ api }),
    messages: [userMessage],
    onChange: again.onChange,
  })
  const resuming = resumed.resumeStream()
  await bounded(again.reached, "the replayed first half")
  const release = await fetch(new URL(`/release/${chatId}`, api), { method: "POST" })
  if (release.status !== 204) throw new Error(`release answered ${release.status}`)
  await bounded(resuming, "the resumed generation")
  return { cut: cutState, resumed: outcome(resumed) }
}

const [mode, ...args] = process.argv.slice(2)
const run = { send, cut }[mode]
if (!run) {
  console.error(`usage: node chat.mjs send|cut ...`)
  process.exit(2)
}
try {
  console.log(JSON.stringify(await run(...args)))
  process.exit(0)
} catch (error) {
  console.error(error?.stack ?? String(error))
  process.exit(1)
}
