// The shell: sign-in with an API key (sessionStorage), then the layout with
// the navigation, the language switch and the page of the current path.
import { Suspense, lazy, useEffect, useState, type FormEvent } from "react";
import { useI18n, LANGS, type Lang, type MessageKey } from "./i18n";
import { api, getKey, setKey, setUnauthorizedHandler } from "./api/client";
import { navigate, usePath } from "./router";
import JourneysPage from "./pages/Journeys";
import CustomersPage from "./pages/Customers";
import CockpitPage from "./pages/Cockpit";
import AudiencePage from "./pages/Audience";
import AdvisorPage from "./pages/Advisor";
import SettingsPage from "./pages/Settings";
import { Empty, Loading } from "./components/State";

// the canvas (React Flow) and the charts (ECharts) are the large parts: they
// load with the first page that needs them, not with the sign-in
const CanvasPage = lazy(() => import("./pages/Canvas"));
const AnalyticsPage = lazy(() => import("./pages/Analytics"));

const NAV: { path: string; label: MessageKey }[] = [
  { path: "/journeys", label: "nav.journeys" },
  { path: "/audience", label: "nav.audience" },
  { path: "/analytics", label: "nav.analytics" },
  { path: "/cockpit", label: "nav.cockpit" },
  { path: "/customers", label: "nav.customers" },
  { path: "/advisor", label: "nav.advisor" },
  { path: "/settings", label: "nav.settings" },
];

export function LangSwitch() {
  const { lang, setLang, t } = useI18n();
  return (
    <label className="lang">
      <span>{t("app.language")}</span>
      <select value={lang} onChange={(e) => setLang(e.target.value as Lang)} data-testid="lang">
        {LANGS.map((l) => (
          <option key={l} value={l}>
            {t(`lang.${l}` as MessageKey)}
          </option>
        ))}
      </select>
    </label>
  );
}

function SignIn({ onSignedIn }: { onSignedIn: () => void }) {
  const { t } = useI18n();
  const [key, setKeyInput] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const k = key.trim();
      await api("GET", "/api/v1/journeys", undefined, { key: k });
      setKey(k);
      onSignedIn();
    } catch (err) {
      setError(t("signin.invalid", { message: (err as Error).message }));
    } finally {
      setBusy(false);
    }
  }
  return (
    <div className="signin">
      <form onSubmit={submit} className="card">
        <h1>{t("app.title")}</h1>
        <h2>{t("signin.title")}</h2>
        <label>
          {t("signin.key")}
          <input type="password" name="apiKey" autoFocus value={key} onChange={(e) => setKeyInput(e.target.value)} autoComplete="off" />
        </label>
        <p className="hint">{t("signin.keyHint")}</p>
        {error && (
          <div className="state state-error" role="alert">
            {error}
          </div>
        )}
        <div className="row">
          <button type="submit" className="primary" disabled={busy || !key.trim()}>
            {busy ? t("signin.checking") : t("signin.submit")}
          </button>
          <LangSwitch />
        </div>
      </form>
    </div>
  );
}

function Page({ path }: { path: string }) {
  const { t } = useI18n();
  const m = path.match(/^\/journeys\/([^/]+)$/);
  if (m) return <CanvasPage journeyKey={decodeURIComponent(m[1])} />;
  switch (path) {
    case "/journeys":
      return <JourneysPage />;
    case "/analytics":
      return <AnalyticsPage />;
    case "/customers":
      return <CustomersPage />;
    case "/cockpit":
      return <CockpitPage />;
    case "/audience":
      return <AudiencePage />;
    case "/advisor":
      return <AdvisorPage />;
    case "/settings":
      return <SettingsPage />;
    default:
      return <Empty>{t("state.notFound")}</Empty>;
  }
}

export default function App() {
  const { t } = useI18n();
  const [signedIn, setSignedIn] = useState(() => !!getKey());
  const path = usePath();
  useEffect(() => {
    setUnauthorizedHandler(() => {
      setKey(null);
      setSignedIn(false);
    });
    return () => setUnauthorizedHandler(null);
  }, []);
  useEffect(() => {
    if (signedIn && (path === "/" || path === "")) navigate("/journeys");
  }, [signedIn, path]);
  if (!signedIn) return <SignIn onSignedIn={() => setSignedIn(true)} />;
  return (
    <div className="layout">
      <header className="top">
        <span className="brand">{t("app.title")}</span>
        <nav aria-label="main">
          {NAV.map((n) => (
            <a
              key={n.path}
              href={n.path}
              className={path === n.path || path.startsWith(n.path + "/") ? "active" : ""}
              onClick={(e) => {
                e.preventDefault();
                navigate(n.path);
              }}
            >
              {t(n.label)}
            </a>
          ))}
        </nav>
        <span className="spacer" />
        <LangSwitch />
        <button
          type="button"
          onClick={() => {
            setKey(null);
            setSignedIn(false);
          }}
        >
          {t("app.signOut")}
        </button>
      </header>
      <main>
        <Suspense fallback={<Loading />}>
          <Page path={path} />
        </Suspense>
      </main>
    </div>
  );
}
