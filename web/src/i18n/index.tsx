// The i18n layer: zh-CN by default, en second, the choice kept in
// localStorage. Components read strings only through t(key, params).
import { createContext, useCallback, useContext, useMemo, useState, type ReactNode } from "react";
import zhCN, { type MessageKey } from "./zh-CN";
import en from "./en";

export type Lang = "zh-CN" | "en";
export const LANGS: Lang[] = ["zh-CN", "en"];
export const CATALOGUES: Record<Lang, Record<MessageKey, string>> = { "zh-CN": zhCN, en };
const STORAGE_KEY = "waymark.lang";

export type TFn = (key: MessageKey, params?: Record<string, string | number>) => string;

export function translate(lang: Lang, key: MessageKey, params?: Record<string, string | number>): string {
  const text = CATALOGUES[lang][key] ?? CATALOGUES["zh-CN"][key] ?? key;
  if (!params) return text;
  return text.replace(/\{(\w+)\}/g, (m, name: string) => (name in params ? String(params[name]) : m));
}

function initialLang(): Lang {
  try {
    const saved = localStorage.getItem(STORAGE_KEY);
    if (saved === "en" || saved === "zh-CN") return saved;
  } catch {
    /* storage may be unavailable */
  }
  return "zh-CN";
}

type Ctx = { lang: Lang; setLang: (l: Lang) => void; t: TFn };
const I18nContext = createContext<Ctx>({
  lang: "zh-CN",
  setLang: () => {},
  t: (k, p) => translate("zh-CN", k, p),
});

export function I18nProvider({ children, lang: fixed }: { children: ReactNode; lang?: Lang }) {
  const [lang, setLangState] = useState<Lang>(fixed ?? initialLang());
  const setLang = useCallback((l: Lang) => {
    setLangState(l);
    try {
      localStorage.setItem(STORAGE_KEY, l);
    } catch {
      /* ignore */
    }
    document.documentElement.lang = l;
  }, []);
  const t = useCallback<TFn>((k, p) => translate(lang, k, p), [lang]);
  const value = useMemo(() => ({ lang, setLang, t }), [lang, setLang, t]);
  return <I18nContext.Provider value={value}>{children}</I18nContext.Provider>;
}

export function useI18n(): Ctx {
  return useContext(I18nContext);
}
export type { MessageKey };
