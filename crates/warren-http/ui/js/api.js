// The management API, called with the logged-in user's Basic credentials
// (kept in sessionStorage for this tab, as RabbitMQ's UI does).
const KEY = 'warren.auth';

export function credentials() {
  try { return JSON.parse(sessionStorage.getItem(KEY) || 'null'); } catch { return null; }
}

export function remember(user, password) {
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  const auth = btoa(String.fromCharCode(...bytes));
  sessionStorage.setItem(KEY, JSON.stringify({ user, auth }));
}

export function forget() { sessionStorage.removeItem(KEY); }

export class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.reason || body.error)) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export const enc = encodeURIComponent;

// fetch /api + path; JSON in, JSON out. 401s (bad credentials) notify the app.
export async function api(path, { method = 'GET', body, signal, headers: extra } = {}) {
  const c = credentials();
  const headers = { 'X-Requested-With': 'XMLHttpRequest', ...extra };
  if (c) headers.Authorization = 'Basic ' + c.auth;
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    if (typeof body !== 'string') body = JSON.stringify(body);
  }
  const r = await fetch('/api' + path, { method, headers, body, signal });
  const text = await r.text();
  let json = null;
  if (text) { try { json = JSON.parse(text); } catch { json = { reason: text }; } }
  if (!r.ok) {
    if (r.status === 401 && json && json.error === 'not_authorized' && !path.startsWith('/whoami')) {
      window.dispatchEvent(new CustomEvent('warren:unauthorised'));
    }
    throw new ApiError(r.status, json);
  }
  return json;
}

// Optional endpoints (second-phase ones may be missing on older brokers):
// null on 404 instead of an error.
export async function maybe(path) {
  try { return await api(path); } catch (e) { if (e.status === 404) return null; throw e; }
}
