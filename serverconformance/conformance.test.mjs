// The official server conformance suite, pointed at an already running server.
// scripts/server_conformance starts our server and passes its URL in CONFORMANCE_TEST_URL.
import { runConformanceTests } from "@durable-streams/server-conformance-tests"

const baseUrl = process.env.CONFORMANCE_TEST_URL
if (!baseUrl) throw new Error("set CONFORMANCE_TEST_URL to the server's base URL")

runConformanceTests({ baseUrl })
