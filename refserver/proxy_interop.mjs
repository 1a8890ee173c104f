#!/usr/bin/env node
// The TypeScript side of the durable proxy interop test (tests/proxy/test_interop.py): the
// pinned @durable-streams/client reads a pre-signed URL of our proxy the way the upstream
// proxy package's durable fetch does (stream() live over SSE, bodyStream() to the end).
//
//   node proxy_interop.mjs <read-url> <live>   prints {"body": <base64>, "upstreamContentType": ...}

import { stream } from "@durable-streams/client"

const [url, live] = process.argv.slice(2)
const response = await stream({ url, live: live === "false" ? false : live })
const chunks = []
for await (const chunk of response.bodyStream()) {
  chunks.push(chunk)
}
const body = Buffer.concat(chunks)
console.log(
  JSON.stringify({
    body: body.toString("base64"),
    upstreamContentType: response.headers.get("upstream-content-type"),
  }),
)
