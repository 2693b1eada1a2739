// Loading, empty and error states, and useAsync: every page shows one of
// them instead of a blank area.
import { useCallback, useEffect, useRef, useState, type ReactNode } from "react";
import { useI18n } from "../i18n";

export function Loading() {
  const { t } = useI18n();
  return (
    <div className="state state-loading" role="status">
      {t("state.loading")}
    </div>
  );
}

export function Empty({ children }: { children?: ReactNode }) {
  const { t } = useI18n();
  return <div className="state state-empty">{children ?? t("state.empty")}</div>;
}

export function ErrorBox({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  const { t } = useI18n();
  // the server's message, with the member it names (the query error's path)
  const field = (error as { field?: string } | null)?.field;
  const text = error instanceof Error ? error.message : String(error);
  const message = field && !text.startsWith(field) ? `${field}: ${text}` : text;
  return (
    <div className="state state-error" role="alert">
      <span>{t("state.error", { message })}</span>
      {onRetry && (
        <button type="button" onClick={onRetry}>
          {t("state.retry")}
        </button>
      )}
    </div>
  );
}

export type Async<T> = { data: T | undefined; error: unknown; loading: boolean; reload: () => void };

export function useAsync<T>(fn: () => Promise<T>, deps: unknown[]): Async<T> {
  const [state, setState] = useState<{ data: T | undefined; error: unknown; loading: boolean }>({ data: undefined, error: undefined, loading: true });
  const seq = useRef(0);
  const run = useCallback(() => {
    const mine = ++seq.current;
    setState((s) => ({ ...s, loading: true, error: undefined }));
    fn().then(
      (data) => mine === seq.current && setState({ data, error: undefined, loading: false }),
      (error) => mine === seq.current && setState({ data: undefined, error, loading: false }),
    );
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
  useEffect(run, [run]);
  return { ...state, reload: run };
}

/* Renders the state of an Async, or children(data) once loaded. */
export function AsyncView<T>({ value, children, isEmpty }: { value: Async<T>; children: (data: T) => ReactNode; isEmpty?: (data: T) => boolean }) {
  if (value.error) return <ErrorBox error={value.error} onRetry={value.reload} />;
  if (value.data === undefined) return <Loading />;
  if (isEmpty && isEmpty(value.data)) return <Empty />;
  return <>{children(value.data)}</>;
}
