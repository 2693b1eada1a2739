// Customer 360: find a customer by an identity, then the profile,
// identities, tags, segments, journeys, messages and the event timeline.
import { useState, type FormEvent } from "react";
import { useI18n, type MessageKey } from "../i18n";
import { get } from "../api/client";
import { ErrorBox, Loading } from "../components/State";
import Table from "../components/Table";

type User = {
  user_id: string;
  identities: { key: string; value: string }[];
  profile: Record<string, unknown>;
  tags?: Record<string, unknown>;
  segments?: { segment: string; name?: string; since_ms: number }[];
  journeys?: { journey: string; version: number; node: string; state: string; since_ms: number }[];
};
type Message = { id: string; journey: string; node: string; channel: string; status: string; error?: string; created_ms: number; title?: string; text?: string };
type Event = { event?: string; type?: string; time: number; properties?: Record<string, unknown> };
type Found = { user: User; messages: Message[]; events: Event[] };

const ID_TYPES = ["distinct_id", "login_id", "mobile", "customer_no", "wecom_external_userid"];
const show = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));
const time = (ms: number) => (ms ? new Date(ms).toLocaleString() : "");

export default function CustomersPage() {
  const { t } = useI18n();
  const [id, setId] = useState("");
  const [idType, setIdType] = useState("distinct_id");
  const [found, setFound] = useState<Found | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  async function search(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setFound(null);
    try {
      const q = `id_type=${encodeURIComponent(idType)}`;
      const user = await get<User>(`/api/v1/users/${encodeURIComponent(id.trim())}?${q}`);
      const [messages, events] = await Promise.all([
        get<{ messages: Message[] }>(`/api/v1/messages?user=${encodeURIComponent(user.user_id)}&id_type=user_id&limit=50`).then((m) => m.messages ?? [], () => []),
        get<{ events: Event[] }>(`/api/v1/users/${encodeURIComponent(id.trim())}/events?${q}&limit=100`).then((x) => x.events ?? [], () => []),
      ]);
      setFound({ user, messages, events });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  const u = found?.user;
  return (
    <section>
      <h1>{t("customers.title")}</h1>
      <form className="inline-form" onSubmit={search}>
        <input placeholder={t("customers.hint")} value={id} onChange={(e) => setId(e.target.value)} aria-label={t("customers.id")} required data-testid="customer-id" />
        <select value={idType} onChange={(e) => setIdType(e.target.value)} aria-label={t("customers.idType")}>
          {ID_TYPES.map((k) => (
            <option key={k} value={k}>
              {t(`customers.idType.${k}` as MessageKey)}
            </option>
          ))}
        </select>
        <button type="submit" className="primary">
          {t("common.search")}
        </button>
      </form>
      {busy && <Loading />}
      {error ? <ErrorBox error={error} /> : null}
      {found && u && (
        <div className="grid-2" data-testid="customer-360">
          <div className="card">
            <h2>{t("customers.profile")}</h2>
            <dl className="kv">
              {Object.entries(u.profile ?? {}).map(([k, v]) => (
                <div key={k}>
                  <dt>{k}</dt>
                  <dd>{show(v)}</dd>
                </div>
              ))}
            </dl>
            <h2>{t("customers.identities")}</h2>
            <dl className="kv">
              {u.identities.map((i) => (
                <div key={i.key + i.value}>
                  <dt>{i.key}</dt>
                  <dd>{i.value}</dd>
                </div>
              ))}
            </dl>
          </div>
          <div className="card">
            <h2>{t("customers.tags")}</h2>
            <div className="chips">
              {Object.entries(u.tags ?? {}).map(([k, v]) => (
                <span className="chip" key={k}>
                  {k}: {show(v)}
                </span>
              ))}
            </div>
            <h2>{t("customers.segments")}</h2>
            <div className="chips">
              {(u.segments ?? []).map((s) => (
                <span className="chip" key={s.segment}>
                  {s.name ?? s.segment}
                </span>
              ))}
            </div>
            <h2>{t("customers.journeys")}</h2>
            <Table
              rows={u.journeys ?? []}
              rowKey={(j, i) => j.journey + i}
              columns={[
                { head: t("customers.col.journey"), cell: (j) => j.journey },
                { head: t("customers.col.node"), cell: (j) => j.node },
                { head: t("customers.col.state"), cell: (j) => j.state },
                { head: t("customers.col.time"), cell: (j) => time(j.since_ms) },
              ]}
            />
          </div>
          <div className="card">
            <h2>{t("customers.messages")}</h2>
            <Table
              rows={found.messages}
              rowKey={(m) => m.id}
              columns={[
                { head: t("customers.col.time"), cell: (m) => time(m.created_ms) },
                { head: t("customers.col.journey"), cell: (m) => `${m.journey} / ${m.node}` },
                { head: t("customers.col.channel"), cell: (m) => m.channel },
                { head: t("customers.col.status"), cell: (m) => m.status },
                { head: t("customers.col.error"), cell: (m) => m.error ?? "" },
              ]}
            />
          </div>
          <div className="card">
            <h2>{t("customers.timeline")}</h2>
            <Table
              rows={found.events}
              rowKey={(e, i) => String(e.time) + i}
              columns={[
                { head: t("customers.col.time"), cell: (e) => time(e.time) },
                { head: t("customers.col.event"), cell: (e) => e.event ?? e.type ?? "" },
                { head: t("settings.col.value"), cell: (e) => <span className="mono small">{JSON.stringify(e.properties ?? {}).slice(0, 160)}</span> },
              ]}
            />
          </div>
        </div>
      )}
    </section>
  );
}
