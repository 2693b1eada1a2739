// The advisor desk (投顾工作台): the lead queue with the SLA, the talk
// track, claim and complete with an outcome.
import { useState } from "react";
import { useI18n, type MessageKey } from "../i18n";
import { get, post } from "../api/client";
import { AsyncView, ErrorBox, useAsync } from "../components/State";
import Table from "../components/Table";

type Lead = { id: string; user_id: string; queue: string; status: string; assignee?: string; priority: string; sla_due_ms: number; talk_track: string | null; profile?: Record<string, unknown> };
const OUTCOMES = ["contacted", "interested", "purchased", "declined"];

export default function AdvisorPage() {
  const { t } = useI18n();
  const [queue, setQueue] = useState("");
  const [assignee, setAssignee] = useState("advisor");
  const [outcome, setOutcome] = useState("contacted");
  const [error, setError] = useState<unknown>(null);
  const leads = useAsync(() => get<{ leads: Lead[] }>(`/api/v1/leads${queue ? `?queue=${encodeURIComponent(queue)}` : ""}`).then((l) => l.leads), [queue]);
  const act = (fn: () => Promise<unknown>) => () => {
    setError(null);
    fn().then(leads.reload, setError);
  };
  const now = Date.now();
  return (
    <section>
      <h1>{t("advisor.title")}</h1>
      <div className="inline-form">
        <label>
          {t("advisor.queue")}
          <input value={queue} onChange={(e) => setQueue(e.target.value)} />
        </label>
        <label>
          {t("advisor.assignee")}
          <input value={assignee} onChange={(e) => setAssignee(e.target.value)} />
        </label>
      </div>
      {error ? <ErrorBox error={error} /> : null}
      <AsyncView value={leads}>
        {(rows) => (
          <Table
            rows={rows}
            rowKey={(l) => l.id}
            testId="lead-list"
            columns={[
              { head: t("advisor.col.customer"), cell: (l) => String(l.profile?.name ?? l.user_id) },
              { head: t("advisor.queue"), cell: (l) => l.queue },
              { head: t("advisor.col.priority"), cell: (l) => t(`priority.${l.priority}` as MessageKey) },
              { head: t("advisor.col.status"), cell: (l) => t(`advisor.leadStatus.${l.status}` as MessageKey) },
              { head: t("advisor.col.sla"), cell: (l) => (l.sla_due_ms < now && l.status !== "completed" ? <span className="overdue">{t("advisor.overdue")}</span> : new Date(l.sla_due_ms).toLocaleString()) },
              { head: t("advisor.col.talk"), cell: (l) => <span className="small">{l.talk_track ?? ""}</span> },
              {
                head: "",
                cell: (l) =>
                  l.status === "open" ? (
                    <button type="button" onClick={act(() => post(`/api/v1/leads/${encodeURIComponent(l.id)}/claim`, { assignee }))}>
                      {t("advisor.claim")}
                    </button>
                  ) : l.status === "claimed" ? (
                    <span className="row">
                      <select value={outcome} onChange={(e) => setOutcome(e.target.value)}>
                        {OUTCOMES.map((o) => (
                          <option key={o} value={o}>
                            {t(`advisor.outcome.${o}` as MessageKey)}
                          </option>
                        ))}
                      </select>
                      <button type="button" onClick={act(() => post(`/api/v1/leads/${encodeURIComponent(l.id)}/complete`, { outcome }))}>
                        {t("advisor.complete")}
                      </button>
                    </span>
                  ) : null,
              },
            ]}
          />
        )}
      </AsyncView>
    </section>
  );
}
