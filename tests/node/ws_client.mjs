// Independent WebSocket client for the Insight progress socket, built on the npm `ws` package
// (the client FICO's own documentation uses). It proves the emulator's handshake against an
// implementation that shares no code with this project.
//
// Usage: INSIGHT_TOKEN=<bearer token> node ws_client.mjs <ws-url> [--job-id ID] [--timeout-ms N]
//
// The token comes from the environment, never argv, so it does not show in process listings.
// Output: one JSON object per line on stdout:
//   {"event":"open","status":101,"connectionId":"...","extensions":"permessage-deflate",
//    "permessageDeflate":true}
//   {"event":"message","message":<the parsed JSON message>}     (one per message received)
//   {"event":"done","reason":"terminal","computeJobId":"...","status":"COMPLETED"}
// plus "refused", "error", "close" and "timeout" events. Exit code 0 after a terminal
// JOB_STATUS_UPDATED (for --job-id when given), 2 on timeout, 1 on any failure.

import WebSocket from "ws";

const V2_JSON = "application/vnd.com.fico.xpress.insight.v2+json";
const TERMINAL = new Set(["COMPLETED", "FAILED", "CANCELLED", "DELETED"]);

function parseArgs(argv) {
  const options = { url: null, jobId: null, timeoutMs: 15000 };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === "--job-id") options.jobId = argv[++i];
    else if (arg === "--timeout-ms") options.timeoutMs = Number(argv[++i]);
    else if (options.url === null) options.url = arg;
    else throw new Error(`unexpected argument ${arg}`);
  }
  if (!options.url) throw new Error("usage: ws_client.mjs <ws-url> [--job-id ID] [--timeout-ms N]");
  return options;
}

function emit(event) {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

function finish(socket, code) {
  // Close politely, then leave even if the server never answers the close frame.
  try {
    socket.close(1000, "done");
  } catch {
    // already closed
  }
  setTimeout(() => process.exit(code), 200).unref();
  process.exitCode = code;
}

function main() {
  const options = parseArgs(process.argv.slice(2));
  const token = process.env.INSIGHT_TOKEN;
  if (!token) throw new Error("INSIGHT_TOKEN is not set");

  let connectionId = null;
  const socket = new WebSocket(options.url, {
    perMessageDeflate: true,
    headers: { Authorization: `Bearer ${token}`, Accept: V2_JSON },
  });

  const timer = setTimeout(() => {
    emit({ event: "timeout", afterMs: options.timeoutMs });
    finish(socket, 2);
  }, options.timeoutMs);

  socket.on("upgrade", (response) => {
    connectionId = response.headers["connection-id"] ?? null;
  });

  socket.on("unexpected-response", (request, response) => {
    emit({ event: "refused", status: response.statusCode });
    clearTimeout(timer);
    request.destroy();
    process.exitCode = 1;
  });

  socket.on("open", () => {
    emit({
      event: "open",
      status: 101,
      connectionId,
      extensions: socket.extensions,
      permessageDeflate: socket.extensions.includes("permessage-deflate"),
    });
  });

  socket.on("message", (data, isBinary) => {
    const text = isBinary ? null : data.toString("utf8");
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      emit({ event: "unparsable", text });
      return;
    }
    emit({ event: "message", message });
    const status = message?.messagePayload?.status;
    const forUs = options.jobId === null || message.computeJobId === options.jobId;
    if (message.messageType === "JOB_STATUS_UPDATED" && forUs && TERMINAL.has(status)) {
      emit({ event: "done", reason: "terminal", computeJobId: message.computeJobId, status });
      clearTimeout(timer);
      finish(socket, 0);
    }
  });

  socket.on("error", (error) => {
    emit({ event: "error", message: String(error.message) });
    clearTimeout(timer);
    process.exitCode = 1;
  });

  socket.on("close", (code, reason) => {
    emit({ event: "close", code, reason: reason.toString("utf8") });
    clearTimeout(timer);
    if (process.exitCode === undefined) process.exitCode = 1;
  });
}

try {
  main();
} catch (error) {
  emit({ event: "error", message: String(error.message) });
  process.exitCode = 1;
}
