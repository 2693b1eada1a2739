// The cockpit (驾驶舱): key figures from the journeys, their reports, the
// leads and the audience.
import { useI18n, type MessageKey } from "../i18n";
import { get } from "../api/client";
import { AsyncView, useAsync } from "../components/State";
import { loadJourneys } from "./Journeys";

type Lead = { status: string; sla_due_ms: number };

async function loadFigures(): Promise<[MessageKey, number][]> {
  const [journeys, leads, segments, tags] = await Promise.all([
    loadJourneys(),
    get<{ leads: Lead[] }>("/api/v1/leads").then((l) => l.leads, () => [] as Lead[]),
    get<{ segments: unknown[] }>("/api/v1/segments").then((s) => s.segments.length, () => 0),
    get<{ tags: unknown[] }>("/api/v1/tags").then((s) => s.tags.length, () => 0),
  ]);
  const now = Date.now();
  const open = leads.filter((l) => l.status !== "completed");
  return [
    ["cockpit.journeysRunning", journeys.filter((j) => j.status === "published").length],
    ["cockpit.journeysTotal", journeys.length],
    ["cockpit.entered", journeys.reduce((s, j) => s + (j.entered ?? 0), 0)],
    ["cockpit.converted", journeys.reduce((s, j) => s + (j.converted ?? 0), 0)],
    ["cockpit.leadsOpen", open.length],
    ["cockpit.leadsOverdue", open.filter((l) => l.sla_due_ms && l.sla_due_ms < now).length],
    ["cockpit.segments", segments],
    ["cockpit.tags", tags],
  ];
}

export default function CockpitPage() {
  const { t } = useI18n();
  const figures = useAsync(loadFigures, []);
  return (
    <section>
      <h1>{t("cockpit.title")}</h1>
      <AsyncView value={figures}>
        {(data) => (
          <div className="figures" data-testid="figures">
            {data.map(([k, v]) => (
              <div className="figure card" key={k}>
                <div className="figure-value">{v.toLocaleString()}</div>
                <div className="figure-label">{t(k)}</div>
              </div>
            ))}
          </div>
        )}
      </AsyncView>
    </section>
  );
}
