// The journey canvas: palette, graph, side panel, live validation, undo /
// redo, auto-layout, save / publish / pause / resume / stop, and the
// report's counts drawn on the nodes and edges of a published journey.
import { useCallback, useEffect, useMemo, useRef, useState, type DragEvent } from "react";
import {
  ReactFlow,
  ReactFlowProvider,
  Background,
  Controls,
  MiniMap,
  Handle,
  Position as HandlePosition,
  useReactFlow,
  applyNodeChanges,
  applyEdgeChanges,
  type Node,
  type Edge,
  type NodeChange,
  type EdgeChange,
  type Connection,
  type NodeProps,
} from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import { useI18n, type MessageKey } from "../i18n";
import { api, get, post } from "../api/client";
import { navigate } from "../router";
import { ErrorBox, Loading } from "../components/State";
import NodeForm, { type FormOptions } from "../components/NodeForm";
import { ENTRY_ID, PALETTE, displayKind, edgeId, freshId, graphToJourney, journeyToGraph, targetHandles, type Graph, type GraphMeta, type Journey, type JsonObject, type NodeData } from "../journey/graph";
import { autoLayout } from "../journey/layout";
import { initHistory, push, redo, replace, undo, type History } from "../journey/history";
import type { ValidationError } from "../journey/fields";
import { statusLabel } from "./Journeys";

type Snapshot = { nodes: Node<NodeData>[]; edges: Edge[]; meta: GraphMeta };
type ValidateAnswer = { valid: boolean; nodes?: number; errors: ValidationError[] };
type Report = { entered: number; goal_reached: number; nodes: { id: string; entered: number; waiting: number }[]; edges: { from: string; to: string; count: number }[] };
type JourneyAnswer = { key: string; status: string; version: number; definition: Journey };

type ViewData = NodeData & { errors: number; count?: number; title: string; handleLabels: string[] };

function JourneyNodeView({ id, data, selected }: NodeProps<Node<ViewData>>) {
  const { t } = useI18n();
  const handles = targetHandles(data.kind, data.config);
  const kind = displayKind(data.kind, data.config);
  return (
    <div className={`jnode jnode-${data.kind}${data.errors ? " jnode-error" : ""}${selected ? " jnode-selected" : ""}`} data-node={id}>
      {data.kind !== "entry" && <Handle type="target" position={HandlePosition.Top} />}
      <div className="jnode-kind">{t(`kind.${kind}` as MessageKey)}</div>
      <div className="jnode-title">{data.title}</div>
      {data.count !== undefined && <div className="jnode-count" data-testid="node-count">{t("canvas.report", { entered: data.count })}</div>}
      {data.errors > 0 && <div className="jnode-errors">{t("canvas.errors", { count: data.errors })}</div>}
      <div className="jnode-handles">
        {handles.map((h, i) => (
          <span key={h} className="jnode-handle-label" style={{ left: `${((i + 1) / (handles.length + 1)) * 100}%` }}>
            {data.handleLabels[i]}
          </span>
        ))}
      </div>
      {handles.map((h, i) => (
        <Handle key={h} id={h} type="source" position={HandlePosition.Bottom} style={{ left: `${((i + 1) / (handles.length + 1)) * 100}%` }} />
      ))}
    </div>
  );
}

const nodeTypes = { journey: JourneyNodeView };

function toSnapshot(g: Graph): Snapshot {
  return {
    nodes: g.nodes.map((n) => ({ id: n.id, type: "journey", position: n.position, data: n.data, deletable: n.id !== ENTRY_ID })),
    edges: g.edges.map((e) => ({ ...e })),
    meta: g.meta,
  };
}

function toGraph(s: Snapshot): Graph {
  return {
    nodes: s.nodes.map((n) => ({ id: n.id, position: n.position, data: { kind: n.data.kind, config: n.data.config } })),
    edges: s.edges.map((e) => ({ id: e.id, source: e.source, sourceHandle: e.sourceHandle ?? "next", target: e.target })),
    meta: s.meta,
  };
}

function handleLabel(t: (k: MessageKey) => string, config: JsonObject, handle: string): string {
  if (handle.startsWith("arm:")) {
    const arms = Array.isArray(config.arms) ? config.arms : [];
    const arm = arms[Number(handle.slice(4))] as JsonObject | undefined;
    return arm && typeof arm.name === "string" ? arm.name : handle;
  }
  return t(`handle.${handle}` as MessageKey);
}

function Editor({ journey, options, onReload }: { journey: JourneyAnswer; options: FormOptions; onReload: () => void }) {
  const { t } = useI18n();
  const flow = useReactFlow();
  const [hist, setHist] = useState<History<Snapshot>>(() => initHistory(toSnapshot(journeyToGraph(journey.definition))));
  const snap = hist.present;
  const [selected, setSelected] = useState<string | null>(null);
  const [errors, setErrors] = useState<ValidationError[] | null>(null);
  const [validating, setValidating] = useState(false);
  const [notice, setNotice] = useState<string | null>(null);
  const [failure, setFailure] = useState<unknown>(null);
  const [report, setReport] = useState<Report | null>(null);
  const dragStart = useRef<Snapshot | null>(null);

  const definition = useMemo(() => graphToJourney(toGraph(snap)), [snap]);
  const defText = useMemo(() => JSON.stringify(definition), [definition]);

  // live validation, debounced
  useEffect(() => {
    setValidating(true);
    const timer = setTimeout(() => {
      api<ValidateAnswer>("POST", "/api/v1/journeys/validate", definition, { accept: [422] }).then(
        (v) => {
          setErrors(v.errors ?? []);
          setValidating(false);
        },
        (e) => {
          setFailure(e);
          setValidating(false);
        },
      );
    }, 400);
    return () => clearTimeout(timer);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [defText]);

  useEffect(() => {
    if (journey.status === "draft") return;
    get<Report>(`/api/v1/journeys/${encodeURIComponent(journey.key)}/report`).then(setReport, () => setReport(null));
  }, [journey.key, journey.status, journey.version]);

  const commit = useCallback((next: Snapshot) => setHist((h) => push(h, next)), []);

  const errorsByNode = useMemo(() => {
    const m = new Map<string, ValidationError[]>();
    for (const e of errors ?? []) {
      const k = e.node ? e.node : e.field?.startsWith("entry") ? ENTRY_ID : "";
      m.set(k, [...(m.get(k) ?? []), e]);
    }
    return m;
  }, [errors]);

  const viewNodes = useMemo<Node<ViewData>[]>(
    () =>
      snap.nodes.map((n) => {
        const label = typeof n.data.config.label === "string" && n.data.config.label ? n.data.config.label : n.id === ENTRY_ID ? t("kind.entry") : n.id;
        const handles = targetHandles(n.data.kind, n.data.config);
        const rn = report?.nodes.find((r) => r.id === n.id);
        return {
          ...n,
          selected: n.id === selected,
          data: {
            ...n.data,
            title: label,
            errors: errorsByNode.get(n.id)?.length ?? 0,
            count: n.id === ENTRY_ID ? report?.entered : rn?.entered,
            handleLabels: handles.map((h) => handleLabel(t, n.data.config, h)),
          },
        };
      }),
    [snap.nodes, selected, errorsByNode, report, t],
  );
  const viewEdges = useMemo<Edge[]>(
    () =>
      snap.edges.map((e) => {
        const count = report?.edges.find((r) => r.from === e.source && r.to === e.target)?.count;
        return { ...e, label: count !== undefined ? String(count) : undefined, animated: count !== undefined && count > 0 };
      }),
    [snap.edges, report],
  );

  const onNodesChange = useCallback(
    (changes: NodeChange<Node<ViewData>>[]) => {
      const kept = changes.filter((c) => c.type !== "select" && !(c.type === "remove" && c.id === ENTRY_ID));
      if (!kept.length) return;
      setHist((h) => {
        const nodes = applyNodeChanges(kept as NodeChange<Node<NodeData>>[], h.present.nodes);
        const removed = new Set(kept.filter((c) => c.type === "remove").map((c) => (c as { id: string }).id));
        const edges = removed.size ? h.present.edges.filter((e) => !removed.has(e.source) && !removed.has(e.target)) : h.present.edges;
        const next = { ...h.present, nodes, edges };
        const structural = kept.some((c) => c.type === "remove" || c.type === "add");
        return structural ? push(h, next) : replace(h, next);
      });
    },
    [],
  );
  const onEdgesChange = useCallback((changes: EdgeChange[]) => {
    const kept = changes.filter((c) => c.type === "remove");
    if (!kept.length) return;
    setHist((h) => push(h, { ...h.present, edges: applyEdgeChanges(kept, h.present.edges) }));
  }, []);
  const onConnect = useCallback((c: Connection) => {
    if (!c.source || !c.target) return;
    const handle = c.sourceHandle ?? "next";
    setHist((h) => {
      const id = edgeId(c.source, handle);
      const edges = [...h.present.edges.filter((e) => e.id !== id), { id, source: c.source, sourceHandle: handle, target: c.target }];
      return push(h, { ...h.present, edges });
    });
  }, []);

  const addNode = useCallback(
    (kind: string, position?: { x: number; y: number }) => {
      const p = PALETTE.find((k) => k.kind === kind);
      if (!p) return;
      if (p.type === "entry") {
        setNotice(t("canvas.entryOnlyOne"));
        setSelected(ENTRY_ID);
        return;
      }
      setHist((h) => {
        const id = freshId(p.type, h.present.nodes.map((n) => n.id));
        const pos = position ?? { x: 0, y: Math.max(0, ...h.present.nodes.map((n) => n.position.y)) + 130 };
        const node: Node<NodeData> = { id, type: "journey", position: pos, data: { kind: p.type, config: JSON.parse(JSON.stringify(p.init)) } };
        setSelected(id);
        return push(h, { ...h.present, nodes: [...h.present.nodes, node] });
      });
    },
    [t],
  );

  const onDrop = useCallback(
    (e: DragEvent) => {
      e.preventDefault();
      const kind = e.dataTransfer.getData("application/x-waymark-kind");
      if (!kind) return;
      addNode(kind, flow.screenToFlowPosition({ x: e.clientX, y: e.clientY }));
    },
    [addNode, flow],
  );

  const setConfig = useCallback((id: string, config: JsonObject) => {
    setHist((h) => {
      const nodes = h.present.nodes.map((n) => (n.id === id ? { ...n, data: { ...n.data, config } } : n));
      const node = nodes.find((n) => n.id === id)!;
      const handles = targetHandles(node.data.kind, config);
      const edges = h.present.edges.filter((e) => e.source !== id || handles.includes(e.sourceHandle ?? ""));
      return push(h, { ...h.present, nodes, edges });
    });
  }, []);

  const setMeta = useCallback((journeyFields: JsonObject) => {
    setHist((h) => push(h, { ...h.present, meta: { ...h.present.meta, journey: journeyFields } }));
  }, []);

  const layout = useCallback(() => {
    setHist((h) => {
      const pos = autoLayout(h.present.nodes, h.present.edges);
      return push(h, { ...h.present, nodes: h.present.nodes.map((n) => ({ ...n, position: pos.get(n.id) ?? n.position })) });
    });
    setTimeout(() => flow.fitView({ duration: 200 }), 50);
  }, [flow]);

  // keyboard: ctrl+z / ctrl+shift+z / ctrl+y
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const target = e.target as HTMLElement;
      if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT")) return;
      if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "z") {
        e.preventDefault();
        setHist((h) => (e.shiftKey ? redo(h) : undo(h)));
      } else if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "y") {
        e.preventDefault();
        setHist(redo);
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);

  const key = encodeURIComponent(journey.key);
  async function run(action: () => Promise<string>) {
    setFailure(null);
    setNotice(null);
    try {
      setNotice(await action());
    } catch (e) {
      const body = (e as { body?: { errors?: ValidationError[] } }).body;
      if (body && Array.isArray(body.errors)) setErrors(body.errors);
      setFailure(e);
    }
  }
  const saveDraft = async () => {
    const v = await api<ValidateAnswer>("PUT", `/api/v1/journeys/${key}`, definition);
    setErrors(v.errors ?? []);
    return v.valid ? t("canvas.saved") : t("canvas.savedInvalid", { count: v.errors.length });
  };
  const publish = async () => {
    await saveDraft();
    const r = await post<{ version?: number }>(`/api/v1/journeys/${key}/publish`);
    onReload();
    return t("canvas.published", { version: r.version ?? "" });
  };
  const action = (name: string) => async () => {
    const r = await post<{ status?: string }>(`/api/v1/journeys/${key}/${name}`);
    onReload();
    return t("canvas.statusChanged", { status: statusLabel(t, r.status ?? name) });
  };

  const sel = snap.nodes.find((n) => n.id === selected);
  const selKind = sel ? (sel.id === ENTRY_ID ? "entry" : displayKind(sel.data.kind, sel.data.config)) : null;
  const journeyErrors = errorsByNode.get("") ?? [];

  return (
    <div className="canvas-page">
      <div className="toolbar">
        <button type="button" onClick={() => navigate("/journeys")}>
          {t("canvas.back")}
        </button>
        <strong>{typeof snap.meta.journey.name === "string" ? snap.meta.journey.name : journey.key}</strong>
        <span className={`badge badge-${journey.status}`} data-testid="journey-status">
          {t("canvas.status", { status: statusLabel(t, journey.status), version: journey.version })}
        </span>
        <span className="spacer" />
        <button type="button" onClick={() => setHist(undo)} disabled={!hist.past.length} data-testid="undo">
          {t("canvas.undo")}
        </button>
        <button type="button" onClick={() => setHist(redo)} disabled={!hist.future.length} data-testid="redo">
          {t("canvas.redo")}
        </button>
        <button type="button" onClick={layout}>
          {t("canvas.layout")}
        </button>
        <button type="button" className="primary" onClick={() => run(saveDraft)} data-testid="save-draft">
          {t("canvas.saveDraft")}
        </button>
        <button type="button" onClick={() => run(publish)} data-testid="publish">
          {t("canvas.publish")}
        </button>
        {journey.status === "published" && (
          <button type="button" onClick={() => run(action("pause"))}>
            {t("canvas.pause")}
          </button>
        )}
        {journey.status === "paused" && (
          <button type="button" onClick={() => run(action("resume"))}>
            {t("canvas.resume")}
          </button>
        )}
        {(journey.status === "published" || journey.status === "paused") && (
          <button type="button" onClick={() => run(action("stop"))}>
            {t("canvas.stop")}
          </button>
        )}
      </div>
      <div className="canvas-status" data-testid="validation">
        {validating || errors === null ? t("canvas.validating") : errors.length ? t("canvas.errors", { count: errors.length }) : t("canvas.valid")}
        {notice && (
          <span className="notice" role="status" data-testid="notice">
            {notice}
          </span>
        )}
      </div>
      {failure ? <ErrorBox error={failure} /> : null}
      <div className="canvas-body">
        <aside className="palette" aria-label={t("canvas.palette")}>
          <h3>{t("canvas.palette")}</h3>
          {PALETTE.map((p) => (
            <button
              type="button"
              key={p.kind}
              className={`palette-item palette-${p.type}`}
              draggable
              data-kind={p.kind}
              onDragStart={(e) => {
                e.dataTransfer.setData("application/x-waymark-kind", p.kind);
                e.dataTransfer.effectAllowed = "move";
              }}
              onClick={() => addNode(p.kind)}
            >
              {t(`kind.${p.kind}` as MessageKey)}
            </button>
          ))}
        </aside>
        <div className="flow" onDrop={onDrop} onDragOver={(e) => { e.preventDefault(); e.dataTransfer.dropEffect = "move"; }} data-testid="flow">
          <ReactFlow
            nodes={viewNodes}
            edges={viewEdges}
            nodeTypes={nodeTypes}
            onNodesChange={onNodesChange}
            onEdgesChange={onEdgesChange}
            onConnect={onConnect}
            onNodeClick={(_, n) => setSelected(n.id)}
            onPaneClick={() => setSelected(null)}
            onNodeDragStart={() => {
              dragStart.current = snap;
            }}
            onNodeDragStop={() => {
              const before = dragStart.current;
              dragStart.current = null;
              if (before) setHist((h) => ({ past: [...h.past, before].slice(-200), present: h.present, future: [] }));
            }}
            fitView
            deleteKeyCode={["Delete", "Backspace"]}
            onlyRenderVisibleElements
          >
            <Background />
            <Controls />
            <MiniMap pannable zoomable />
          </ReactFlow>
        </div>
        <aside className="side" data-testid="side-panel">
          {sel && selKind ? (
            <>
              <h3>
                {t(`kind.${selKind}` as MessageKey)} <span className="mono">{sel.id === ENTRY_ID ? "" : sel.id}</span>
              </h3>
              <NodeForm nodeId={sel.id} kind={selKind} config={sel.data.config} onChange={(c) => setConfig(sel.id, c)} options={options} errors={errorsByNode.get(sel.id) ?? []} />
              {sel.id !== ENTRY_ID && (
                <button
                  type="button"
                  className="danger"
                  onClick={() => {
                    commit({ ...snap, nodes: snap.nodes.filter((n) => n.id !== sel.id), edges: snap.edges.filter((e) => e.source !== sel.id && e.target !== sel.id) });
                    setSelected(null);
                  }}
                >
                  {t("canvas.deleteNode")}
                </button>
              )}
            </>
          ) : (
            <>
              <h3>{t("canvas.settings")}</h3>
              {journeyErrors.map((e, i) => (
                <div key={i} className="field-error" role="alert">
                  {t("canvas.journeyError", { message: (e.field ? e.field + ": " : "") + e.message })}
                </div>
              ))}
              <NodeForm nodeId="$journey" kind="$journey" config={snap.meta.journey} onChange={setMeta} options={options} errors={[]} />
              <p className="hint">{t("canvas.selectHint")}</p>
            </>
          )}
          {errors && errors.length > 0 && (
            <ul className="error-list" data-testid="error-list">
              {errors.map((e, i) => (
                <li key={i}>
                  <button type="button" className="link" onClick={() => e.node && setSelected(e.node)}>
                    {e.node ? t("canvas.nodeError", { node: e.node, message: (e.field ? e.field + ": " : "") + e.message }) : t("canvas.journeyError", { message: (e.field ? e.field + ": " : "") + e.message })}
                  </button>
                </li>
              ))}
            </ul>
          )}
        </aside>
      </div>
    </div>
  );
}

export default function CanvasPage({ journeyKey }: { journeyKey: string }) {
  const [journey, setJourney] = useState<JourneyAnswer | null>(null);
  const [options, setOptions] = useState<FormOptions | null>(null);
  const [error, setError] = useState<unknown>(null);
  const load = useCallback(() => {
    setError(null);
    const k = encodeURIComponent(journeyKey);
    Promise.all([
      get<JourneyAnswer>(`/api/v1/journeys/${k}`),
      get<{ items: { name: string }[] }>("/api/v1/channels").catch(() => ({ items: [] })),
      get<{ items: { name: string }[] }>("/api/v1/templates").catch(() => ({ items: [] })),
      get<{ journeys: { key: string }[] }>("/api/v1/journeys").catch(() => ({ journeys: [] })),
    ]).then(
      ([j, ch, tp, js]) => {
        setJourney(j);
        setOptions({ channels: ch.items.map((i) => i.name), templates: tp.items.map((i) => i.name), journeys: js.journeys.map((x) => x.key).filter((x) => x !== journeyKey) });
      },
      setError,
    );
  }, [journeyKey]);
  useEffect(load, [load]);
  if (error) return <ErrorBox error={error} onRetry={load} />;
  if (!journey || !options) return <Loading />;
  return (
    <ReactFlowProvider>
      <Editor
        key={journey.key}
        journey={journey}
        options={options}
        onReload={() => {
          get<JourneyAnswer>(`/api/v1/journeys/${encodeURIComponent(journeyKey)}`).then(setJourney, setError);
        }}
      />
    </ReactFlowProvider>
  );
}
