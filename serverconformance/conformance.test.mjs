// The official server conformance suite, pointed at an already running server.
// scripts/server_conformance starts our server (with webhook delivery on) and passes its URL
// in CONFORMANCE_TEST_URL. The suite's subscription tests run only when asked for.
import { runConformanceTests } from "@durable-streams/server-conformance-tests"

const baseUrl = process.env.CONFORMANCE_TEST_URL
if (!baseUrl) throw new Error("set CONFORMANCE_TEST_URL to the server's base URL")

runConformanceTests({ baseUrl, subscriptions: true })
