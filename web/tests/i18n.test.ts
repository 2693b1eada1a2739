// The catalogues: the same keys in both languages, no empty value, the
// same {placeholders}; components hold no CJK text of their own.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import zhCN from "../src/i18n/zh-CN";
import en from "../src/i18n/en";
import { translate } from "../src/i18n";

const placeholders = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) return f === "i18n" ? [] : sources(p);
    return /\.(ts|tsx)$/.test(f) ? [p] : [];
  });
}

describe("i18n catalogues", () => {
  it("have exactly the same keys", () => {
    expect(Object.keys(en).sort()).toEqual(Object.keys(zhCN).sort());
  });
  it("have no empty values", () => {
    for (const cat of [zhCN, en]) for (const [k, v] of Object.entries(cat)) expect(v.trim(), k).not.toBe("");
  });
  it("use the same placeholders in both languages", () => {
    for (const k of Object.keys(zhCN) as (keyof typeof zhCN)[]) expect(placeholders(en[k]), k).toEqual(placeholders(zhCN[k]));
  });
  it("translate with parameters", () => {
    expect(translate("zh-CN", "canvas.errors", { count: 2 })).toBe("2 个问题");
    expect(translate("en", "canvas.errors", { count: 2 })).toBe("2 problems");
  });
  it("are the only place with Chinese text", () => {
    const src = join(__dirname, "..", "src");
    const files = sources(src);
    expect(files.length).toBeGreaterThan(10);
    const cjk = /[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]/;
    const offenders = files.filter((f) => {
      // comments may quote Chinese names (驾驶舱); code may not
      const code = readFileSync(f, "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
      return cjk.test(code);
    });
    expect(offenders).toEqual([]);
  });
  it("every t(\"key\") literal in the sources names a catalogue key", () => {
    const keys = new Set(Object.keys(zhCN));
    const missing: string[] = [];
    for (const f of sources(join(__dirname, "..", "src"))) {
      for (const m of readFileSync(f, "utf8").matchAll(/\bt\("([\w.-]+)"/g)) if (!keys.has(m[1])) missing.push(`${f}: ${m[1]}`);
    }
    expect(missing).toEqual([]);
  });
});
