// The side-panel form of one node: the fields of its kind (journey/fields.ts),
// with the server's validation errors next to the field they name.
import { useEffect, useState } from "react";
import { useI18n, type MessageKey } from "../i18n";
import { COMMON_FIELDS, NODE_FIELDS, fieldOfError, getPath, setPath, type FieldSpec, type ValidationError } from "../journey/fields";
import type { Json, JsonObject } from "../journey/graph";

export type FormOptions = { channels: string[]; templates: string[]; journeys: string[] };

const PRIORITIES = ["urgent", "high", "normal", "low"];

function JsonField({ value, onChange, id, invalidLabel }: { value: Json | undefined; onChange: (v: Json | undefined) => void; id: string; invalidLabel: (m: string) => string }) {
  const text = value === undefined ? "" : JSON.stringify(value, null, 2);
  const [draft, setDraft] = useState(text);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setDraft(text);
    setError(null);
  }, [text]);
  return (
    <>
      <textarea
        id={id}
        rows={Math.min(12, Math.max(3, draft.split("\n").length))}
        value={draft}
        spellCheck={false}
        onChange={(e) => setDraft(e.target.value)}
        onBlur={() => {
          if (draft.trim() === "") {
            setError(null);
            onChange(undefined);
            return;
          }
          try {
            const v = JSON.parse(draft) as Json;
            setError(null);
            if (JSON.stringify(v) !== JSON.stringify(value)) onChange(v);
          } catch (e) {
            setError(invalidLabel((e as Error).message));
          }
        }}
      />
      {error && <div className="field-error">{error}</div>}
    </>
  );
}

function Field({ spec, config, onChange, options, errors, nodeId }: { spec: FieldSpec; config: JsonObject; onChange: (c: JsonObject) => void; options: FormOptions; errors: string[]; nodeId: string }) {
  const { t } = useI18n();
  const id = `f-${nodeId}-${spec.path}`;
  const value = getPath(config, spec.path);
  const set = (v: Json | undefined) => onChange(setPath(config, spec.path, v));
  let input;
  switch (spec.input) {
    case "text":
      input = <input id={id} type="text" value={typeof value === "string" ? value : value === undefined ? "" : String(value)} onChange={(e) => set(e.target.value === "" && !spec.required ? undefined : e.target.value)} />;
      break;
    case "textarea":
      input = <textarea id={id} rows={4} value={typeof value === "string" ? value : ""} onChange={(e) => set(e.target.value)} />;
      break;
    case "list":
      input = (
        <input
          id={id}
          type="text"
          value={Array.isArray(value) ? value.join(",") : ""}
          onChange={(e) => {
            const parts = e.target.value.split(",").map((s) => s.trim()).filter(Boolean);
            set(parts.length ? parts : undefined);
          }}
        />
      );
      break;
    case "bool":
      input = <input id={id} type="checkbox" checked={value !== false} onChange={(e) => set(e.target.checked ? undefined : false)} />;
      break;
    case "json":
      input = <JsonField id={id} value={value} onChange={set} invalidLabel={(m) => t("common.invalidJson", { message: m })} />;
      break;
    case "select": {
      const list = spec.options === "priority" ? PRIORITIES : options[spec.options as "channels" | "templates" | "journeys"] ?? [];
      const cur = typeof value === "string" ? value : "";
      const all = cur && !list.includes(cur) ? [cur, ...list] : list;
      input = (
        <select id={id} value={cur} onChange={(e) => set(e.target.value === "" ? (spec.required ? "" : undefined) : e.target.value)}>
          <option value="">{t("field.choose")}</option>
          {all.map((o) => (
            <option key={o} value={o}>
              {spec.options === "priority" ? t(`priority.${o}` as MessageKey) : o}
            </option>
          ))}
        </select>
      );
      break;
    }
  }
  return (
    <div className={`field${errors.length ? " has-error" : ""}`} data-field={spec.path}>
      <label htmlFor={id}>
        {t(spec.label)}
        {spec.required && <span className="req"> *</span>}
      </label>
      {input}
      {errors.map((m, i) => (
        <div key={i} className="field-error" role="alert">
          {m}
        </div>
      ))}
    </div>
  );
}

export default function NodeForm({ nodeId, kind, config, onChange, options, errors }: { nodeId: string; kind: string; config: JsonObject; onChange: (c: JsonObject) => void; options: FormOptions; errors: ValidationError[] }) {
  const specs = [...(kind === "entry" || kind === "$journey" ? [] : COMMON_FIELDS), ...(NODE_FIELDS[kind] ?? [])];
  const byField = new Map<string, string[]>();
  const general: string[] = [];
  for (const e of errors) {
    const f = fieldOfError(specs, e.field);
    if (f) byField.set(f, [...(byField.get(f) ?? []), e.message]);
    else general.push(e.field ? `${e.field}: ${e.message}` : e.message);
  }
  return (
    <div className="node-form" data-kind={kind}>
      {general.map((m, i) => (
        <div key={i} className="field-error" role="alert">
          {m}
        </div>
      ))}
      {specs.map((s) => (
        <Field key={s.path} spec={s} config={config} onChange={onChange} options={options} errors={byField.get(s.path) ?? []} nodeId={nodeId} />
      ))}
    </div>
  );
}
