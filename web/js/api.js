// The only way the interface reaches the server: the API, with the token
// kept in this browser's localStorage, sent as `Authorization: Bearer`.
// Nothing is ever put in a URL but ids and names.

const TOKEN_KEY = 'genreg.token';

export function token() {
  return localStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  localStorage.setItem(TOKEN_KEY, value);
}

export function forgetToken() {
  localStorage.removeItem(TOKEN_KEY);
}

/** An answer other than 2xx: its status and GitLab's message. */
export class ApiError extends Error {
  constructor(status, body) {
    super(messageOf(status, body));
    this.status = status;
    this.body = body;
  }
}

function messageOf(status, body) {
  const text = body && (body.message ?? body.error);
  if (typeof text === 'string') return text;
  if (text && typeof text === 'object') {
    return Object.entries(text).map(([k, v]) => `${k} ${[].concat(v).join(', ')}`).join('; ');
  }
  return `${status} error`;
}

export function authHeaders() {
  const current = token();
  return current ? { Authorization: `Bearer ${current}` } : {};
}

/** Calls the API; resolves to `{status, data, headers}` or throws ApiError. */
export async function api(path, { method = 'GET', json, form } = {}) {
  const headers = { Accept: 'application/json', ...authHeaders() };
  let body;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  }
  if (form !== undefined) body = new URLSearchParams(form);
  const response = await fetch(path, { method, headers, body, credentials: 'omit', cache: 'no-store' });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { message: text }; }
  if (!response.ok) throw new ApiError(response.status, data);
  return { status: response.status, data, headers: response.headers };
}

/** The same, answering null instead of throwing for the given statuses. */
export async function apiOrNull(path, statuses = [401, 403, 404]) {
  try {
    return await api(path);
  } catch (error) {
    if (error instanceof ApiError && statuses.includes(error.status)) return null;
    throw error;
  }
}

export async function graphql(query, variables) {
  const { data } = await api('/api/graphql', { method: 'POST', json: { query, variables } });
  if (data.errors && data.errors.length) throw new ApiError(400, { message: data.errors[0].message });
  return data.data;
}

/** A project or group id for a path: its full path, URL-encoded. */
export function encodeId(fullPath) {
  return encodeURIComponent(fullPath);
}

/** GitLab's pagination headers. */
export function pageInfo(headers) {
  const number = (name) => {
    const value = headers.get(name);
    return value ? Number(value) : null;
  };
  return {
    page: number('X-Page') ?? 1,
    total: number('X-Total'),
    totalPages: number('X-Total-Pages'),
    next: number('X-Next-Page'),
    prev: number('X-Prev-Page'),
  };
}

/** This registry's base URL, as commands should use it. */
export function registryUrl() {
  return window.location.origin;
}

/** The URL of a generic package file: each path segment encoded. */
export function genericFileUrl(projectId, name, version, fileName) {
  const segments = fileName.split('/').map(encodeURIComponent).join('/');
  return `${registryUrl()}/api/v4/projects/${projectId}/packages/generic/` +
    `${encodeURIComponent(name)}/${encodeURIComponent(version)}/${segments}`;
}

/** A stored file name (`linux%2Famd64%2Ftool`) as people read it. */
export function displayFileName(stored) {
  try { return decodeURIComponent(stored); } catch { return stored; }
}
