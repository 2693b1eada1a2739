// The one module that talks to the server: same origin, the API key from
// sessionStorage sent as `Authorization: Bearer <key>` (docs/api.md,
// "Management API"). Errors become ApiError with the server's message.
const KEY_STORAGE = "waymark.apiKey";

export class ApiError extends Error {
  status: number;
  code: string;
  field?: string;
  body: unknown;
  constructor(status: number, code: string, message: string, field?: string, body?: unknown) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
    this.body = body;
  }
}

export function getKey(): string | null {
  try {
    return sessionStorage.getItem(KEY_STORAGE);
  } catch {
    return null;
  }
}
export function setKey(key: string | null): void {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

let onUnauthorized: (() => void) | null = null;
export function setUnauthorizedHandler(fn: (() => void) | null): void {
  onUnauthorized = fn;
}

/* The message of an error answer: {"error":{"message"}} or the validation
 * shape {"valid":false,"errors":[{"message"}]}. */
function errorOf(status: number, body: unknown): ApiError {
  const b = body as { error?: { code?: string; message?: string; field?: string; path?: string }; errors?: { message?: string; path?: string; node?: string }[] } | null;
  if (b && b.error) {
    return new ApiError(status, b.error.code ?? "error", b.error.message ?? `HTTP ${status}`, b.error.path ?? b.error.field, body);
  }
  if (b && Array.isArray(b.errors) && b.errors.length) {
    const e = b.errors[0];
    const where = e.node ? `${e.node}: ` : e.path ? `${e.path}: ` : "";
    return new ApiError(status, "invalid", where + (e.message ?? ""), e.path, body);
  }
  return new ApiError(status, "http_" + status, typeof body === "string" && body ? body : `HTTP ${status}`, undefined, body);
}

export type RequestOptions = { key?: string; accept?: number[] };

export async function api<T = unknown>(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
  const key = opts.key ?? getKey();
  const headers: Record<string, string> = { Accept: "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  let payload: string | undefined;
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let resp: Response;
  try {
    resp = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  } catch (e) {
    throw new ApiError(0, "network", (e as Error).message || "network error");
  }
  const text = await resp.text();
  let data: unknown = text;
  if (text && (resp.headers.get("Content-Type") ?? "").includes("json")) {
    try {
      data = JSON.parse(text);
    } catch {
      /* keep the text */
    }
  }
  if (resp.ok || (opts.accept ?? []).includes(resp.status)) return data as T;
  if (resp.status === 401 && !opts.key && onUnauthorized) onUnauthorized();
  throw errorOf(resp.status, data);
}

export const get = <T,>(path: string) => api<T>("GET", path);
export const post = <T,>(path: string, body?: unknown, opts?: RequestOptions) => api<T>("POST", path, body ?? {}, opts);
export const put = <T,>(path: string, body?: unknown) => api<T>("PUT", path, body ?? {});
