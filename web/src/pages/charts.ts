// Query answers (docs/analytics.md) -> ECharts options. Pure, so tests can
// check the numbers a chart shows against the answer.
import type { ChartOption } from "../components/Chart";

export type EventsAnswer = { rows: { series: number; group?: string; bucket: string; value: number | null }[] };
export type FunnelStep = { step: number; name: string; users: number; conversion: number; step_conversion: number; median_ms: number | null };
export type FunnelAnswer = { steps: FunnelStep[] };
export type RetentionAnswer = { cohorts: { cohort: string; users: number; retained: number[] }[] };
export type PathsAnswer = { nodes: { depth: number; name: string; count: number }[]; links: { from_depth: number; from: string; to: string; count: number }[] };

type Labels = { users: string; dropoff: string; conversion: string; cohort: string; period: (n: number) => string };

export function eventsOption(a: EventsAnswer, type: "line" | "bar"): ChartOption {
  const buckets = [...new Set(a.rows.map((r) => r.bucket))];
  const series = new Map<string, Map<string, number | null>>();
  for (const r of a.rows) {
    const name = r.group !== undefined ? `#${r.series} ${r.group}` : `#${r.series}`;
    if (!series.has(name)) series.set(name, new Map());
    series.get(name)!.set(r.bucket, r.value);
  }
  return {
    tooltip: { trigger: "axis" },
    legend: { type: "scroll" },
    grid: { left: 60, right: 20, top: 40, bottom: 40 },
    xAxis: { type: "category", data: buckets },
    yAxis: { type: "value" },
    series: [...series].map(([name, vals]) => ({ name, type, data: buckets.map((b) => vals.get(b) ?? null) })),
  };
}

export function funnelOption(a: FunnelAnswer, l: Labels): ChartOption {
  const names = a.steps.map((s) => s.name);
  const users = a.steps.map((s) => s.users);
  const drop = a.steps.map((s, i) => (i === 0 ? 0 : a.steps[i - 1].users - s.users));
  return {
    tooltip: { trigger: "axis" },
    legend: {},
    grid: { left: 60, right: 20, top: 40, bottom: 40 },
    xAxis: { type: "category", data: names },
    yAxis: { type: "value" },
    series: [
      { name: l.users, type: "bar", stack: "f", data: users, label: { show: true, position: "inside" } },
      { name: l.dropoff, type: "bar", stack: "f", data: drop, itemStyle: { color: "#e8a3a3" } },
    ],
  };
}

export function retentionOption(a: RetentionAnswer, l: Labels): ChartOption {
  const periods = Math.max(0, ...a.cohorts.map((c) => c.retained.length));
  const data: [number, number, number][] = [];
  a.cohorts.forEach((c, y) => c.retained.forEach((n, x) => data.push([x, y, c.users ? Math.round((n / c.users) * 1000) / 10 : 0])));
  return {
    tooltip: { formatter: (p: { value: [number, number, number] }) => `${a.cohorts[p.value[1]].cohort} ${l.period(p.value[0] + 1)}: ${p.value[2]}%` },
    grid: { left: 100, right: 20, top: 20, bottom: 70 },
    xAxis: { type: "category", data: Array.from({ length: periods }, (_, i) => l.period(i + 1)) },
    yAxis: { type: "category", data: a.cohorts.map((c) => `${c.cohort} (${c.users})`) },
    visualMap: { min: 0, max: 100, calculable: true, orient: "horizontal", left: "center", bottom: 0 },
    series: [{ name: l.cohort, type: "heatmap", data, label: { show: true, formatter: (p: { value: number[] }) => `${p.value[2]}%` } }],
  };
}

export function pathsOption(a: PathsAnswer): ChartOption {
  // the same name at two depths is two nodes of the Sankey
  const id = (depth: number, name: string) => `${depth}:${name}`;
  return {
    tooltip: { trigger: "item" },
    series: [
      {
        type: "sankey",
        emphasis: { focus: "adjacency" },
        nodeAlign: "left",
        data: a.nodes.map((n) => ({ name: id(n.depth, n.name), value: n.count })),
        links: a.links.map((k) => ({ source: id(k.from_depth, k.from), target: id(k.from_depth + 1, k.to), value: k.count })),
        label: { formatter: (p: { name: string }) => p.name.slice(p.name.indexOf(":") + 1) },
      },
    ],
  };
}
