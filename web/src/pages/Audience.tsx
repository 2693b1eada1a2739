// Audience: the segments with their sizes and the tag definitions.
import { useI18n } from "../i18n";
import { get } from "../api/client";
import { AsyncView, useAsync } from "../components/State";
import Table from "../components/Table";
import { statusLabel } from "./Journeys";

type Def = { key: string; status: string; version: number; definition?: { name?: string; kind?: string } };
type Segment = Def & { count?: number };

async function loadAudience(): Promise<{ segments: Segment[]; tags: Def[] }> {
  const [s, tg] = await Promise.all([get<{ segments: Segment[] }>("/api/v1/segments"), get<{ tags: Def[] }>("/api/v1/tags")]);
  const segments = await Promise.all(
    s.segments.map(async (seg) =>
      seg.status === "published" ? { ...seg, count: await get<{ count: number }>(`/api/v1/segments/${encodeURIComponent(seg.key)}/count`).then((c) => c.count, () => undefined) } : seg,
    ),
  );
  return { segments, tags: tg.tags };
}

export default function AudiencePage() {
  const { t } = useI18n();
  const data = useAsync(loadAudience, []);
  return (
    <section>
      <h1>{t("audience.title")}</h1>
      <AsyncView value={data}>
        {(d) => (
          <>
            <h2>{t("audience.segments")}</h2>
            <Table
              rows={d.segments}
              rowKey={(s) => s.key}
              testId="segment-list"
              columns={[
                { head: t("audience.col.name"), cell: (s) => s.definition?.name ?? s.key },
                { head: t("audience.col.key"), cell: (s) => <span className="mono">{s.key}</span> },
                { head: t("audience.col.status"), cell: (s) => statusLabel(t, s.status) },
                { head: t("audience.col.version"), cell: (s) => s.version, num: true },
                { head: t("audience.col.count"), cell: (s) => (s.count === undefined ? t("common.none") : s.count.toLocaleString()), num: true },
              ]}
            />
            <h2>{t("audience.tags")}</h2>
            <Table
              rows={d.tags}
              rowKey={(s) => s.key}
              columns={[
                { head: t("audience.col.name"), cell: (s) => s.definition?.name ?? s.key },
                { head: t("audience.col.key"), cell: (s) => <span className="mono">{s.key}</span> },
                { head: t("audience.col.kind"), cell: (s) => s.definition?.kind ?? "" },
                { head: t("audience.col.status"), cell: (s) => statusLabel(t, s.status) },
                { head: t("audience.col.version"), cell: (s) => s.version, num: true },
              ]}
            />
          </>
        )}
      </AsyncView>
    </section>
  );
}
