// Settings: the project's channels, templates and settings, as the API holds them.
import { useI18n, type MessageKey } from "../i18n";
import { get } from "../api/client";
import { AsyncView, useAsync } from "../components/State";
import Table from "../components/Table";

type Items = { items: { name: string; value: unknown }[] };
const SECTIONS: [MessageKey, string][] = [
  ["settings.channels", "/api/v1/channels"],
  ["settings.templates", "/api/v1/templates"],
  ["settings.project", "/api/v1/settings"],
];

export default function SettingsPage() {
  const { t } = useI18n();
  const data = useAsync(() => Promise.all(SECTIONS.map(([, path]) => get<Items>(path).then((x) => x.items))), []);
  return (
    <section>
      <h1>{t("settings.title")}</h1>
      <AsyncView value={data}>
        {(lists) => (
          <>
            {SECTIONS.map(([label], i) => (
              <div key={label}>
                <h2>{t(label)}</h2>
                <Table
                  rows={lists[i]}
                  rowKey={(r) => r.name}
                  columns={[
                    { head: t("settings.col.name"), cell: (r) => <span className="mono">{r.name}</span> },
                    { head: t("settings.col.value"), cell: (r) => <span className="mono small">{JSON.stringify(r.value)}</span> },
                  ]}
                />
              </div>
            ))}
          </>
        )}
      </AsyncView>
    </section>
  );
}
