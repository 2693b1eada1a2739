// Journey definition <-> canvas graph (docs/journeys.md). Pure: no React.
//
// Each node of the definition becomes a graph node whose data holds the
// node's fields except its id, type and targets (config); each target field
// (next, yes/no, on_event/on_timeout, else, arms[i].next) becomes an edge
// leaving the handle of that name ("arm:i" for arms). The entry is one more
// node (ENTRY_ID) holding `entry`, with a "start" edge to the first node.
// Positions are kept in the nodes' `ui` ({x, y}; the entry's in the
// journey's ui.entry), which the compiler ignores, so drawing a journey
// never changes what it does.

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

export type JourneyNode = JsonObject & { id: string; type: string };
export type Journey = JsonObject & { key: string; name?: string; entry?: Json; nodes: JourneyNode[]; start?: string };

export type Position = { x: number; y: number };
export type NodeData = { kind: string; config: JsonObject };
export type GraphNode = { id: string; position: Position; data: NodeData };
export type GraphEdge = { id: string; source: string; sourceHandle: string; target: string };
/* Everything of the journey that is not a node or the start: key, name,
 * goal, settings …; hasStart: the definition named its start. */
export type GraphMeta = { journey: JsonObject; hasStart: boolean };
export type Graph = { nodes: GraphNode[]; edges: GraphEdge[]; meta: GraphMeta };

export const ENTRY_ID = "$entry";
const TARGET_FIELDS = ["next", "yes", "no", "on_event", "on_timeout", "else"];

const isObject = (v: unknown): v is JsonObject => typeof v === "object" && v !== null && !Array.isArray(v);

function arms(config: JsonObject): JsonObject[] {
  return Array.isArray(config.arms) ? (config.arms.filter(isObject) as JsonObject[]) : [];
}

/* The handles a node of this type and config has, in drawing order. */
export function targetHandles(type: string, config: JsonObject): string[] {
  switch (type) {
    case "entry":
      return ["start"];
    case "wait":
    case "send":
    case "advisor_task":
    case "update_profile":
    case "set_tag":
    case "webhook":
      return ["next"];
    case "wait_event":
      return ["on_event", "on_timeout"];
    case "condition":
      return ["yes", "no"];
    case "branch":
      return [...arms(config).map((_, i) => `arm:${i}`), "else"];
    case "split":
      return arms(config).map((_, i) => `arm:${i}`);
    default:
      return [];
  }
}

export function edgeId(source: string, handle: string): string {
  return `${source}:${handle}`;
}

/* A simple layered layout: depth from the entry by breadth-first search,
 * top to bottom; unreachable nodes in a last layer. */
export function layeredPositions(ids: string[], edges: { source: string; target: string }[]): Map<string, Position> {
  const out = new Map<string, Position>();
  const next = new Map<string, string[]>();
  for (const e of edges) next.set(e.source, [...(next.get(e.source) ?? []), e.target]);
  const depth = new Map<string, number>();
  const queue = ids.length ? [ids[0]] : [];
  if (queue.length) depth.set(ids[0], 0);
  while (queue.length) {
    const id = queue.shift()!;
    for (const t of next.get(id) ?? []) {
      if (!depth.has(t) && ids.includes(t)) {
        depth.set(t, depth.get(id)! + 1);
        queue.push(t);
      }
    }
  }
  const maxDepth = Math.max(0, ...depth.values());
  const layers = new Map<number, string[]>();
  for (const id of ids) {
    const d = depth.has(id) ? depth.get(id)! : maxDepth + 1;
    layers.set(d, [...(layers.get(d) ?? []), id]);
  }
  for (const [d, layer] of layers) {
    layer.forEach((id, i) => out.set(id, { x: (i - (layer.length - 1) / 2) * 240, y: d * 130 }));
  }
  return out;
}

function uiPosition(ui: Json | undefined): Position | null {
  if (isObject(ui) && typeof ui.x === "number" && typeof ui.y === "number") return { x: ui.x, y: ui.y };
  return null;
}

export function journeyToGraph(def: Journey): Graph {
  const { nodes: defNodes, start, entry, ...rest } = def;
  const meta: GraphMeta = { journey: rest as JsonObject, hasStart: typeof start === "string" };
  const nodes: GraphNode[] = [];
  const edges: GraphEdge[] = [];
  const topUi = isObject(def.ui) ? def.ui : {};
  nodes.push({ id: ENTRY_ID, position: uiPosition(topUi.entry) ?? { x: 0, y: 0 }, data: { kind: "entry", config: { entry: entry ?? {} } } });
  const startId = typeof start === "string" ? start : defNodes[0]?.id;
  if (startId) edges.push({ id: edgeId(ENTRY_ID, "start"), source: ENTRY_ID, sourceHandle: "start", target: startId });
  for (const n of defNodes ?? []) {
    const { id, type, ui, ...fields } = n;
    const config: JsonObject = {};
    for (const [k, v] of Object.entries(fields)) {
      if (TARGET_FIELDS.includes(k) && typeof v === "string") {
        edges.push({ id: edgeId(id, k), source: id, sourceHandle: k, target: v });
      } else if (k === "arms" && Array.isArray(v)) {
        config.arms = v.map((arm, i) => {
          if (!isObject(arm)) return arm;
          const { next, ...armRest } = arm;
          if (typeof next === "string") edges.push({ id: edgeId(id, `arm:${i}`), source: id, sourceHandle: `arm:${i}`, target: next });
          else if (next !== undefined) (armRest as JsonObject).next = next;
          return armRest;
        });
      } else {
        config[k] = v;
      }
    }
    if (ui !== undefined) {
      const { x: _x, y: _y, ...uiRest } = isObject(ui) ? ui : ({} as JsonObject);
      if (!isObject(ui) || Object.keys(uiRest).length) config.ui = isObject(ui) ? uiRest : ui;
    }
    nodes.push({ id, position: uiPosition(ui) ?? { x: 0, y: 0 }, data: { kind: type, config } });
  }
  const placed = nodes.every((n) => n.id === ENTRY_ID || uiPosition(defNodes.find((d) => d.id === n.id)?.ui) !== null);
  if (!placed) {
    const pos = layeredPositions(nodes.map((n) => n.id), edges);
    for (const n of nodes) n.position = pos.get(n.id) ?? n.position;
  }
  return { nodes, edges, meta };
}

export function graphToJourney(g: Graph): Journey {
  const bySource = new Map<string, GraphEdge[]>();
  for (const e of g.edges) bySource.set(e.source, [...(bySource.get(e.source) ?? []), e]);
  const nodes: JourneyNode[] = [];
  let entry: Json = {};
  let entryPos: Position = { x: 0, y: 0 };
  for (const gn of g.nodes) {
    if (gn.id === ENTRY_ID) {
      entry = gn.data.config.entry ?? {};
      entryPos = gn.position;
      continue;
    }
    const { ui: uiRest, ...config } = gn.data.config;
    const node: JourneyNode = { id: gn.id, type: gn.data.kind, ...config };
    const out = bySource.get(gn.id) ?? [];
    const handles = targetHandles(gn.data.kind, config);
    if (Array.isArray(node.arms)) node.arms = node.arms.map((a) => (isObject(a) ? { ...a } : a));
    for (const e of out) {
      if (!handles.includes(e.sourceHandle)) continue;
      if (e.sourceHandle.startsWith("arm:")) {
        const arm = (node.arms as Json[])[Number(e.sourceHandle.slice(4))];
        if (isObject(arm)) arm.next = e.target;
      } else {
        node[e.sourceHandle] = e.target;
      }
    }
    node.ui = { ...(isObject(uiRest) ? uiRest : {}), x: Math.round(gn.position.x), y: Math.round(gn.position.y) };
    nodes.push(node);
  }
  const def: Journey = { ...g.meta.journey, entry, nodes } as Journey;
  const startEdge = (bySource.get(ENTRY_ID) ?? []).find((e) => e.sourceHandle === "start");
  if (startEdge && (g.meta.hasStart || startEdge.target !== nodes[0]?.id)) def.start = startEdge.target;
  const topUi = isObject(g.meta.journey.ui) ? g.meta.journey.ui : {};
  def.ui = { ...topUi, entry: { x: Math.round(entryPos.x), y: Math.round(entryPos.y) } };
  return def;
}

/* The definition without the canvas's `ui` members: what the compiler reads. */
export function semantics(def: Journey): JsonObject {
  const { ui: _ui, ...rest } = def;
  return {
    ...rest,
    nodes: def.nodes.map((n) => {
      const { ui: _nui, ...nrest } = n;
      return nrest;
    }),
  } as JsonObject;
}

/* The palette: kinds of nodes one can drag onto the canvas, with the fields
 * a new node starts with. Wait kinds are all `wait` nodes. */
export const PALETTE: { kind: string; type: string; init: JsonObject }[] = [
  { kind: "entry", type: "entry", init: { entry: { event: "" } } },
  { kind: "wait_duration", type: "wait", init: { duration: "1d" } },
  { kind: "wait_time", type: "wait", init: { until: { time: "09:30" } } },
  { kind: "wait_date", type: "wait", init: { until: { date: "profile.birthday", offset: "-1d" } } },
  { kind: "wait_trading_day", type: "wait", init: { until: { trading_day: "09:15" } } },
  { kind: "wait_event", type: "wait_event", init: { event: "", timeout: "3d" } },
  { kind: "condition", type: "condition", init: { if: { profile: "risk_level", op: ">=", value: "C3" } } },
  { kind: "branch", type: "branch", init: { arms: [{ name: "A", if: { profile: "tier", op: "=", value: "high_net_worth" } }] } },
  { kind: "split", type: "split", init: { arms: [{ name: "A", percent: 50 }, { name: "control", percent: 50, control: true }] } },
  { kind: "send", type: "send", init: { channel: "", template: "" } },
  { kind: "advisor_task", type: "advisor_task", init: { queue: "wealth", sla: "1d", script: "" } },
  { kind: "update_profile", type: "update_profile", init: { set: {} } },
  { kind: "set_tag", type: "set_tag", init: { tag: "", value: true } },
  { kind: "webhook", type: "webhook", init: { url: "", body: "" } },
  { kind: "jump", type: "jump", init: { journey: "" } },
  { kind: "exit", type: "exit", init: {} },
];

/* The palette kind a node is drawn as (wait nodes by their form). */
export function displayKind(type: string, config: JsonObject): string {
  if (type !== "wait") return type;
  if (config.duration !== undefined) return "wait_duration";
  const until = isObject(config.until) ? config.until : {};
  if (until.trading_day !== undefined) return "wait_trading_day";
  if (until.date !== undefined) return "wait_date";
  return "wait_time";
}

/* A fresh node id for a kind: the type and the first free number. */
export function freshId(type: string, taken: Iterable<string>): string {
  const used = new Set(taken);
  for (let i = 1; ; i++) {
    const id = `${type}_${i}`;
    if (!used.has(id)) return id;
  }
}
