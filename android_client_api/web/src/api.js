// The webhook's HTTP API (docs/http-api.md): stored state only; live data comes from the broker.

const TOKEN_KEY = "fitwire.token";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const auth = {
  get token() { return localStorage.getItem(TOKEN_KEY); },
  set token(value) {
    if (value) localStorage.setItem(TOKEN_KEY, value);
    else localStorage.removeItem(TOKEN_KEY);
  },
  /** Called with one sentence when the server no longer accepts the token (set by main.js). */
  onExpired: (_sentence) => {},
};

/**
 * `method path` with the saved token; the parsed JSON answer (null for 204).
 * Throws ApiError with the server's one-sentence message; a 401 on an authenticated call
 * also signs the page out (expired, revoked or logged out elsewhere).
 */
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (auth.token) headers.Authorization = `Bearer ${auth.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "UNREACHABLE", "Can't reach the fitwire server; check your connection.");
  }
  if (response.status === 204) return null;
  let data = null;
  try { data = await response.json(); } catch { /* a proxy's HTML error page */ }
  if (response.ok) return data;
  const message = data?.error?.message || `The server answered ${response.status}.`;
  const error = new ApiError(response.status, data?.error?.code || "HTTP", message);
  if (response.status === 401 && auth.token && !path.startsWith("/auth/") && path !== "/me/password") {
    auth.token = null;
    auth.onExpired("Your session has expired or was signed out elsewhere; sign in again.");
  }
  throw error;
}
