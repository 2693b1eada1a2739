// The fields of each node kind's side-panel form (docs/journeys.md §3).
import type { MessageKey } from "../i18n";
import type { Json, JsonObject } from "./graph";

export type FieldInput = "text" | "textarea" | "json" | "list" | "bool" | "select";
export type OptionSource = "channels" | "templates" | "journeys" | "priority";
export type FieldSpec = { path: string; label: MessageKey; input: FieldInput; options?: OptionSource; required?: boolean };

const f = (path: string, label: MessageKey, input: FieldInput, extra: Partial<FieldSpec> = {}): FieldSpec => ({ path, label, input, ...extra });

export const NODE_FIELDS: Record<string, FieldSpec[]> = {
  entry: [f("entry", "field.entry", "json", { required: true })],
  wait_duration: [f("duration", "field.duration", "text", { required: true })],
  wait_time: [f("until.time", "field.until.time", "text", { required: true }), f("until.weekdays", "field.until.weekdays", "list"), f("until.tz", "field.until.tz", "text")],
  wait_date: [f("until.date", "field.until.date", "text", { required: true }), f("until.offset", "field.until.offset", "text")],
  wait_trading_day: [f("until.trading_day", "field.until.trading_day", "text", { required: true })],
  wait_event: [f("event", "field.event", "text"), f("events", "field.events", "list"), f("match", "field.match", "text"), f("where", "field.where", "json"), f("timeout", "field.timeout", "text", { required: true })],
  condition: [f("if", "field.if", "json", { required: true })],
  branch: [f("arms", "field.arms", "json", { required: true })],
  split: [f("arms", "field.arms", "json", { required: true })],
  send: [
    f("channel", "field.channel", "select", { options: "channels", required: true }),
    f("template", "field.template", "select", { options: "templates", required: true }),
    f("item", "field.item", "json"),
    f("suitability", "field.suitability", "bool"),
  ],
  advisor_task: [
    f("queue", "field.queue", "text", { required: true }),
    f("sla", "field.sla", "text", { required: true }),
    f("script", "field.script", "select", { options: "templates", required: true }),
    f("priority", "field.priority", "select", { options: "priority" }),
    f("item", "field.item", "json"),
  ],
  update_profile: [f("set", "field.set", "json", { required: true })],
  set_tag: [f("tag", "field.tag", "text", { required: true }), f("value", "field.value", "json", { required: true })],
  webhook: [f("url", "field.url", "text", { required: true }), f("body", "field.body", "textarea", { required: true })],
  jump: [f("journey", "field.journey", "select", { options: "journeys", required: true })],
  exit: [],
  // the journey settings panel (no node selected)
  $journey: [
    f("name", "field.name", "text", { required: true }),
    f("description", "field.description", "textarea"),
    f("goal", "field.goal", "json"),
    f("exit_when", "field.exit_when", "json"),
    f("settings", "field.settings", "json"),
  ],
};

/* Fields every node has besides its kind's (not the entry). */
export const COMMON_FIELDS: FieldSpec[] = [f("label", "field.label", "text")];

export function getPath(obj: JsonObject, path: string): Json | undefined {
  let cur: Json | undefined = obj;
  for (const part of path.split(".")) {
    if (typeof cur !== "object" || cur === null || Array.isArray(cur)) return undefined;
    cur = (cur as JsonObject)[part];
  }
  return cur;
}

/* A copy of obj with path set to value (undefined removes it; an object left
 * empty by a removal is removed too). */
export function setPath(obj: JsonObject, path: string, value: Json | undefined): JsonObject {
  const [head, ...rest] = path.split(".");
  const out: JsonObject = { ...obj };
  if (rest.length === 0) {
    if (value === undefined) delete out[head];
    else out[head] = value;
    return out;
  }
  const child = out[head];
  const sub = setPath(typeof child === "object" && child !== null && !Array.isArray(child) ? child : {}, rest.join("."), value);
  if (Object.keys(sub).length === 0) delete out[head];
  else out[head] = sub;
  return out;
}

export type ValidationError = { node?: string; field?: string; message: string };

/* Which field of the form an error of the server belongs to: the spec whose
 * path is the error's field or contains it; null for the node as a whole. */
export function fieldOfError(specs: FieldSpec[], field: string | undefined): string | null {
  if (!field) return null;
  for (const s of specs) if (s.path === field) return s.path;
  for (const s of specs) if (field.startsWith(s.path + ".") || field.startsWith(s.path + "[") || s.path.startsWith(field + ".")) return s.path;
  return null;
}
