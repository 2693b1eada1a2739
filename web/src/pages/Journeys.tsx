// The journey list: status and version from GET /api/v1/journeys, entered /
// active / converted from each journey's report.
import { useState, type FormEvent } from "react";
import { useI18n, type MessageKey } from "../i18n";
import { get, post } from "../api/client";
import { navigate } from "../router";
import { AsyncView, ErrorBox, useAsync } from "../components/State";
import type { Journey } from "../journey/graph";

export type JourneyRow = { key: string; status: string; version: number; updated_ms: number; name?: string; entered?: number; active?: number; converted?: number };
type Report = { entered: number; goal_reached: number; nodes: { waiting: number }[] };

export async function loadJourneys(): Promise<JourneyRow[]> {
  const list = await get<{ journeys: JourneyRow[] }>("/api/v1/journeys");
  return Promise.all(
    list.journeys.map(async (j) => {
      const row: JourneyRow = { ...j };
      const [detail, report] = await Promise.all([
        get<{ definition: Journey }>(`/api/v1/journeys/${encodeURIComponent(j.key)}`).catch(() => null),
        j.status === "draft" ? Promise.resolve(null) : get<Report>(`/api/v1/journeys/${encodeURIComponent(j.key)}/report`).catch(() => null),
      ]);
      row.name = typeof detail?.definition?.name === "string" ? detail.definition.name : undefined;
      if (report) {
        row.entered = report.entered;
        row.converted = report.goal_reached;
        row.active = report.nodes.reduce((s, n) => s + (n.waiting ?? 0), 0);
      }
      return row;
    }),
  );
}

export function statusLabel(t: (k: MessageKey) => string, status: string): string {
  const k = `status.${status}` as MessageKey;
  const s = t(k);
  return s === k ? status : s;
}

function NewJourney({ onCreated }: { onCreated: (key: string) => void }) {
  const { t } = useI18n();
  const [key, setKey] = useState("");
  const [name, setName] = useState("");
  const [error, setError] = useState<unknown>(null);
  async function submit(e: FormEvent) {
    e.preventDefault();
    setError(null);
    try {
      await post("/api/v1/journeys", { key, name, entry: { api: true }, nodes: [{ id: "end", type: "exit" }] });
      onCreated(key);
    } catch (err) {
      setError(err);
    }
  }
  return (
    <form className="inline-form" onSubmit={submit}>
      <input placeholder={t("journeys.newKey")} value={key} onChange={(e) => setKey(e.target.value)} pattern="[a-z][a-z0-9_]{0,63}" required aria-label={t("journeys.newKey")} />
      <input placeholder={t("journeys.newName")} value={name} onChange={(e) => setName(e.target.value)} required aria-label={t("journeys.newName")} />
      <button type="submit" className="primary">
        {t("journeys.create")}
      </button>
      {error ? <ErrorBox error={error} /> : null}
    </form>
  );
}

export default function JourneysPage() {
  const { t } = useI18n();
  const rows = useAsync(loadJourneys, []);
  const [creating, setCreating] = useState(false);
  const n = (v: number | undefined) => (v === undefined ? t("common.none") : v.toLocaleString());
  return (
    <section>
      <div className="page-head">
        <h1>{t("journeys.title")}</h1>
        <button type="button" onClick={() => setCreating((c) => !c)}>
          {t("journeys.new")}
        </button>
      </div>
      {creating && <NewJourney onCreated={(k) => navigate(`/journeys/${encodeURIComponent(k)}`)} />}
      <AsyncView value={rows}>
        {(data) =>
          data.length === 0 ? (
            <div className="state state-empty">{t("journeys.empty")}</div>
          ) : (
            <table className="table" data-testid="journey-list">
              <thead>
                <tr>
                  <th>{t("journeys.col.name")}</th>
                  <th>{t("journeys.col.key")}</th>
                  <th>{t("journeys.col.status")}</th>
                  <th className="num">{t("journeys.col.version")}</th>
                  <th className="num">{t("journeys.col.entered")}</th>
                  <th className="num">{t("journeys.col.active")}</th>
                  <th className="num">{t("journeys.col.converted")}</th>
                  <th>{t("journeys.col.updated")}</th>
                </tr>
              </thead>
              <tbody>
                {data.map((j) => (
                  <tr key={j.key} data-key={j.key}>
                    <td>
                      <a
                        href={`/journeys/${encodeURIComponent(j.key)}`}
                        onClick={(e) => {
                          e.preventDefault();
                          navigate(`/journeys/${encodeURIComponent(j.key)}`);
                        }}
                      >
                        {j.name ?? j.key}
                      </a>
                    </td>
                    <td className="mono">{j.key}</td>
                    <td>
                      <span className={`badge badge-${j.status}`}>{statusLabel(t, j.status)}</span>
                    </td>
                    <td className="num">{j.version}</td>
                    <td className="num" data-col="entered">{n(j.entered)}</td>
                    <td className="num" data-col="active">{n(j.active)}</td>
                    <td className="num" data-col="converted">{n(j.converted)}</td>
                    <td>{j.updated_ms ? new Date(j.updated_ms).toLocaleString() : t("common.none")}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </AsyncView>
    </section>
  );
}
