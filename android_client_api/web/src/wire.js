// Reading fitwire's wire messages (contract/messages.py) in the browser.

/** A metric as JSON carries it ("NaN", "Infinity" for non-finite) as a number, null when unknown. */
export function num(value) {
  if (value === null || value === undefined) return null;
  return typeof value === "number" ? value : Number(value);
}

/** A progress message as the events it carries: a `batches` block as one `batch` each (like unpack()). */
export function unpack(msg) {
  if (msg.type !== "batches") return [msg];
  const out = [];
  const last = msg.first + msg.count;
  for (let i = 0; i < msg.count; i++) {
    const batch = msg.first + i;
    const logs = {};
    for (const [name, column] of Object.entries(msg.logs || {})) logs[name] = column[i];
    out.push({
      ...msg, type: "batch", batch, seq: msg.seq + i, logs,
      progress: msg.progress == null ? null : Math.min(1, (msg.progress * (batch + 1)) / last),
    });
  }
  return out;
}

/** 32 hex digits, like contract.messages.new_id. */
export function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export const PROGRESS = "fitwire.progress";
export const SIGNALS = "fitwire.signals";
export const TELEMETRY = "fitwire.telemetry";
export const PROTOCOL_VERSION = 2;
export const MAX_LEARNING_RATE = 10;

export const progressKey = (owner, model, run) => `${owner}.${model}.${run}`;
export const signalKey = (owner, model, run) => `${owner}.${model}.${run || "any"}`;

/** A Signal message (contract.messages.Signal). */
export function signal(action, modelKey, runId, sender, value) {
  const body = { v: PROTOCOL_VERSION, ts: Date.now() / 1000, type: "signal", id: newId(), action,
                 model_key: modelKey, run_id: runId, sender };
  if (value !== undefined) body.value = value;
  return body;
}

/** Why `value` is not a learning rate set_lr accepts, or null (contract.messages.learning_rate_problem). */
export function learningRateProblem(value) {
  if (!Number.isFinite(value) || !(value > 0 && value <= MAX_LEARNING_RATE)) {
    return `A learning rate is a number above 0 and at most ${MAX_LEARNING_RATE}.`;
  }
  return null;
}
