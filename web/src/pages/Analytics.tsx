// Analytics: events (line / bar), funnel (bar with drop-off), retention
// (heat map), paths (Sankey), each from POST /api/v1/query/{kind}.
import { useMemo, useState } from "react";
import { useI18n, type MessageKey } from "../i18n";
import { post } from "../api/client";
import Chart from "../components/Chart";
import { ErrorBox, Loading } from "../components/State";
import { eventsOption, funnelOption, pathsOption, retentionOption, type EventsAnswer, type FunnelAnswer, type PathsAnswer, type RetentionAnswer } from "./charts";

type Kind = "events" | "funnel" | "retention" | "paths";
const KINDS: Kind[] = ["events", "funnel", "retention", "paths"];

function today(offsetDays = 0): string {
  const d = new Date(Date.now() + offsetDays * 86400000);
  return d.toISOString().slice(0, 10);
}

export function defaultRequest(kind: Kind, from: string, to: string): object {
  switch (kind) {
    case "events":
      return { from, to, series: [{ event: "ViewFundDetail", measure: "count" }, { event: "ViewFundDetail", measure: "users" }], interval: "day" };
    case "funnel":
      return { from, to, steps: [{ event: "ViewFundDetail" }, { event: "CompareFunds" }, { event: "SubscribeFund" }], window: "7d" };
    case "retention":
      return { from, to, start: { event: "$AppStart" }, return: { event: "$AppStart" }, period: "day", periods: 7 };
    case "paths":
      return { from, to, start: { event: "$AppStart" }, depth: 4, session_gap: "30m", limit: 10 };
  }
}

export default function AnalyticsPage() {
  const { t } = useI18n();
  const [kind, setKind] = useState<Kind>("events");
  const [from, setFrom] = useState(today(-30));
  const [to, setTo] = useState(today());
  const [texts, setTexts] = useState<Record<string, string>>({});
  const [chartType, setChartType] = useState<"line" | "bar">("line");
  const [answer, setAnswer] = useState<{ kind: Kind; data: unknown } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const text = texts[kind] ?? JSON.stringify(defaultRequest(kind, from, to), null, 2);

  async function run() {
    setError(null);
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(text);
    } catch (e) {
      setError(new Error(t("common.invalidJson", { message: (e as Error).message })));
      return;
    }
    body.from = from;
    body.to = to;
    setBusy(true);
    try {
      const data = await post(`/api/v1/query/${kind}`, body);
      setAnswer({ kind, data });
    } catch (e) {
      setError(e);
      setAnswer(null);
    } finally {
      setBusy(false);
    }
  }

  const labels = useMemo(
    () => ({ users: t("analytics.users"), dropoff: t("analytics.dropoff"), conversion: t("analytics.conversion"), cohort: t("analytics.cohort"), period: (n: number) => t("analytics.period", { n }) }),
    [t],
  );
  const option = useMemo(() => {
    if (!answer) return null;
    switch (answer.kind) {
      case "events":
        return (answer.data as EventsAnswer).rows.length ? eventsOption(answer.data as EventsAnswer, chartType) : null;
      case "funnel":
        return funnelOption(answer.data as FunnelAnswer, labels);
      case "retention":
        return (answer.data as RetentionAnswer).cohorts.length ? retentionOption(answer.data as RetentionAnswer, labels) : null;
      case "paths":
        return (answer.data as PathsAnswer).nodes.length ? pathsOption(answer.data as PathsAnswer) : null;
    }
  }, [answer, chartType, labels]);

  return (
    <section>
      <h1>{t("analytics.title")}</h1>
      <div className="tabs" role="tablist">
        {KINDS.map((k) => (
          <button
            key={k}
            type="button"
            role="tab"
            aria-selected={k === kind}
            className={k === kind ? "active" : ""}
            onClick={() => {
              setKind(k);
              setAnswer(null);
              setError(null);
            }}
            data-kind={k}
          >
            {t(`analytics.${k}` as MessageKey)}
          </button>
        ))}
      </div>
      <div className="query-form">
        <label>
          {t("common.from")}
          <input type="date" value={from} onChange={(e) => setFrom(e.target.value)} />
        </label>
        <label>
          {t("common.to")}
          <input type="date" value={to} onChange={(e) => setTo(e.target.value)} />
        </label>
        {kind === "events" && (
          <select value={chartType} onChange={(e) => setChartType(e.target.value as "line" | "bar")} aria-label="chart">
            <option value="line">{t("analytics.chartLine")}</option>
            <option value="bar">{t("analytics.chartBar")}</option>
          </select>
        )}
        <button type="button" className="primary" onClick={run} disabled={busy} data-testid="run-query">
          {t("common.run")}
        </button>
      </div>
      <label className="block">
        {t("analytics.request")}
        <textarea className="mono" rows={8} value={text} spellCheck={false} onChange={(e) => setTexts({ ...texts, [kind]: e.target.value })} data-testid="query-text" />
      </label>
      {busy && <Loading />}
      {error ? <ErrorBox error={error} /> : null}
      {answer && !option && <div className="state state-empty">{t("analytics.noRows")}</div>}
      {answer && option && <Chart option={option} testId={`chart-${answer.kind}`} height={answer.kind === "paths" ? 480 : 360} />}
      {answer?.kind === "funnel" && (
        <table className="table" data-testid="funnel-table">
          <thead>
            <tr>
              <th>#</th>
              <th>{t("journeys.col.name")}</th>
              <th className="num">{t("analytics.users")}</th>
              <th className="num">{t("analytics.conversion")}</th>
            </tr>
          </thead>
          <tbody>
            {(answer.data as FunnelAnswer).steps.map((s) => (
              <tr key={s.step}>
                <td>{s.step}</td>
                <td>{s.name}</td>
                <td className="num" data-col="users">{s.users}</td>
                <td className="num">{(s.conversion * 100).toFixed(1)}%</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
